"""make bench-edge: a CodeT5-base-shaped student, PyTorch eager vs ONNX fp32 vs ONNX int8 (edge runtime).

A T5 with CodeT5-base's shape (d_model 768, d_ff 3072, 12 heads, 12 + 12 layers,
vocabulary 32,100) and random weights (timing does not depend on them) is
exported with `pdc.export.export` (optimum, merged decoder; int8 by
onnxruntime's dynamic quantization, EnableSubgraph). Each backend then runs in
its own fresh process, so its peak memory is its own: load the model, generate
from the same 64-token input, batch 1, greedy, exactly 128 new tokens (</s> is
disabled so every backend decodes all 128), one untimed warm-up run, then
`--runs` timed runs (median reported). ONNX runs on `pdc.edge`, the torch-free
runtime `pdc generate` / `pdc bench` use. Ratios against eager are printed,
with the targets: int8 latency <= 0.2x eager, int8 peak memory <= 0.7x eager.

    python bench/edge_bench.py [--runs 3] [--work DIR] [--threads N]

One JSON line on stdout, a readable table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPE = dict(vocab_size=32100, d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12,
             num_decoder_layers=12, feed_forward_proj="relu")
INPUT_TOKENS, NEW_TOKENS = 64, 128


def build(model_dir: str) -> None:
    """The random CodeT5-base-shaped T5, a small tokenizer (decode only) and pdc_config.json."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from pdc.students import Student, save_student, train_tokenizer
    from pdc.tasks import DEFAULT_MARKERS

    torch.manual_seed(0)
    config = T5Config(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **SHAPE)
    model = T5ForConditionalGeneration(config).eval()
    tokenizer = train_tokenizer([open(__file__).read()] * 4, 300)
    save_student(Student(model, tokenizer, "codet5-base-shaped", {}), model_dir,
                 {"markers": DEFAULT_MARKERS.to_dict(), "student": "random T5, CodeT5-base shape",
                  "max_source_length": 512, "max_target_length": NEW_TOKENS})


def input_ids() -> list[int]:
    import random

    rng = random.Random(0)
    return [rng.randrange(10, SHAPE["vocab_size"]) for _ in range(INPUT_TOKENS - 1)] + [1]  # ends with </s>


def worker(backend: str, model_dir: str, runs: int, threads: int) -> dict:
    """Runs in its own process: load, warm up, time `runs` generations of exactly NEW_TOKENS."""
    from pdc.bench import peak_rss_mb
    ids = input_ids()
    if backend == "torch":
        import torch
        from transformers import T5ForConditionalGeneration

        torch.set_num_threads(threads)
        start = time.perf_counter()
        model = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
        load_s = time.perf_counter() - start
        model.generation_config.eos_token_id = None  # exactly NEW_TOKENS tokens

        def once() -> list[int]:
            with torch.inference_mode():
                out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=NEW_TOKENS, num_beams=1, do_sample=False)  # (1, 1 + T)
            return out[0, 1:].tolist()
    else:
        import onnxruntime  # noqa: F401  (imported before the clock starts)

        from pdc.edge import EdgeModel

        start = time.perf_counter()
        model = EdgeModel(model_dir, threads=threads)
        load_s = time.perf_counter() - start
        model.eos_id = -1  # exactly NEW_TOKENS tokens

        def once() -> list[int]:
            return model.generate(ids, NEW_TOKENS)

    tokens = once()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        tokens = once()
        times.append(time.perf_counter() - t)
    assert len(tokens) == NEW_TOKENS, len(tokens)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "optimum"})
    return {"backend": backend, "load_s": round(load_s, 3), "latency_s": round(statistics.median(times), 4),
            "runs_s": [round(t, 4) for t in times], "tokens_per_s": round(NEW_TOKENS / statistics.median(times), 2),
            "peak_rss_mb": peak_rss_mb(),  # VmHWM: this process's own high-water mark
            "heavy_modules": heavy, "tokens": tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--work", default=None, help="Keep the model and export here (reused when present).")
    ap.add_argument("--worker", nargs=2, metavar=("BACKEND", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.runs, args.threads)))
        return
    work = args.work or tempfile.mkdtemp(prefix="pdc-bench-edge-")
    model_dir, out = os.path.join(work, "model"), os.path.join(work, "export")
    timings = {}
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                        f"import edge_bench; edge_bench.build({model_dir!r})"], check=True)
        timings["build_s"] = round(time.perf_counter() - t, 1)
    if not os.path.exists(os.path.join(out, "export.json")):
        print("exporting (optimum) and quantizing; a few minutes ...", file=sys.stderr)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"from pdc.export import export; "
                        f"export({model_dir!r}, {out!r}, parity_n=0, force=True)"], check=True)
        timings["export_s"] = round(time.perf_counter() - t, 1)
    results = {}
    for name, path in (("torch", model_dir), ("onnx_fp32", os.path.join(out, "fp32")),
                       ("onnx_int8", os.path.join(out, "int8"))):
        print(f"measuring {name} ...", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--runs", str(args.runs), "--threads", str(args.threads),
                               "--worker", "torch" if name == "torch" else "onnx", path],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{name} failed: {proc.stderr[-2000:]}")
        results[name] = json.loads(proc.stdout.splitlines()[-1])
    eager = results["torch"]
    reference = eager.pop("tokens")
    for name in ("onnx_fp32", "onnx_int8"):
        r = results[name]
        tokens = r.pop("tokens")
        r["same_tokens_as_eager"] = tokens == reference
        r["first_divergence"] = next((i for i, (a, b) in enumerate(zip(tokens, reference)) if a != b), None)
        r["latency_ratio"] = round(r["latency_s"] / eager["latency_s"], 3)
        r["peak_rss_ratio"] = round(r["peak_rss_mb"] / eager["peak_rss_mb"], 3)
    int8 = results["onnx_int8"]
    record = {"bench": "edge", "shape": SHAPE, "input_tokens": INPUT_TOKENS, "new_tokens": NEW_TOKENS,
              "batch_size": 1, "threads": args.threads, "runs": args.runs, "results": results, "timings": timings,
              "targets": {"int8_latency_ratio_max": 0.2, "int8_peak_rss_ratio_max": 0.7},
              "met": {"latency": int8["latency_ratio"] <= 0.2, "memory": int8["peak_rss_ratio"] <= 0.7},
              "onnxruntime_threads": args.threads, "work": work}
    print(json.dumps(record))
    print(f"{'backend':<10} {'latency s':>10} {'tokens/s':>9} {'peak MB':>8} {'lat ratio':>9} {'mem ratio':>9}  same tokens",
          file=sys.stderr)
    for name, r in results.items():
        print(f"{name:<10} {r['latency_s']:>10.3f} {r['tokens_per_s']:>9.1f} {r['peak_rss_mb']:>8.0f} "
              f"{r.get('latency_ratio', 1.0):>9.3f} {r.get('peak_rss_ratio', 1.0):>9.3f}  "
              f"{r.get('same_tokens_as_eager', '-')}", file=sys.stderr)
    print(f"targets: int8 latency <= 0.2x eager ({'met' if record['met']['latency'] else 'NOT met'}), "
          f"int8 peak memory <= 0.7x eager ({'met' if record['met']['memory'] else 'NOT met'})", file=sys.stderr)


if __name__ == "__main__":
    main()
