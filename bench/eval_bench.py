"""make bench-eval: pdc eval's batched generation against a per-record generation loop.

A tiny scratch student (random weights, a tokenizer trained on pdc's own
source) and real problems harvested from the standard library. Both sides run
in this one process on the same records with the same settings (k beams, the
same maximum length): `batched` calls pdc.eval.Generator with --batch-size B,
`per-record` calls it once per record (B = 1), as a plain loop over records
would. The figure is batched records/s divided by per-record records/s
(target >= 2). The sides alternate twice and each keeps its best time.

    python bench/eval_bench.py [--records 32] [--beams 5] [--batch-size 16] [--max-new-tokens 64]

Prints one JSON line on stdout and a readable summary on stderr.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=32)
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = ap.parse_args()

    import torch

    from pdc import eval as core
    from pdc import jsonl, students, tasks
    from pdc.prepare import PrepareConfig, harvest

    torch.set_num_threads(args.threads)
    texts = [inspect.getsource(m) for m in (jsonl, students, tasks, os)]
    with tempfile.TemporaryDirectory() as tmp:
        student = students.build_scratch("tiny", texts, seed=0)
        students.save_student(student, tmp, {"markers": tasks.DEFAULT_MARKERS.to_dict(), "student": "scratch:tiny",
                                             "max_source_length": 128, "max_target_length": args.max_new_tokens,
                                             "code_input": "nl", "seed": 0})
        student = students.load_trained(tmp)
    nls = [p["nl"] for p in harvest(config=PrepareConfig(limit=args.records))]

    def batched() -> list:
        gen = core.Generator(student, core.EvalConfig(beams=args.beams, batch_size=args.batch_size,
                                                      max_new_tokens=args.max_new_tokens))
        return [p for i in range(0, len(nls), args.batch_size) for p in gen.code(nls[i:i + args.batch_size])[0]]

    def per_record() -> list:
        gen = core.Generator(student, core.EvalConfig(beams=args.beams, batch_size=1,
                                                      max_new_tokens=args.max_new_tokens))
        return [gen.code([nl])[0][0] for nl in nls]

    times: dict[str, float] = {"batched": float("inf"), "per_record": float("inf")}
    outputs: dict[str, list] = {}
    batched()  # warm-up: first-call allocations
    for _ in range(2):
        for name, fn in (("per_record", per_record), ("batched", batched)):
            start = time.perf_counter()
            outputs[name] = fn()
            times[name] = min(times[name], time.perf_counter() - start)
    same_top1 = sum(a[0] == b[0] for a, b in zip(outputs["batched"], outputs["per_record"])) / len(nls)
    rate = {name: len(nls) / t for name, t in times.items()}
    result = {"bench": "eval", "records": len(nls), "beams": args.beams, "batch_size": args.batch_size,
              "max_new_tokens": args.max_new_tokens, "torch_threads": args.threads,
              "batched_records_per_s": round(rate["batched"], 2),
              "per_record_records_per_s": round(rate["per_record"], 2),
              "ratio": round(rate["batched"] / rate["per_record"], 2), "target": 2.0,
              "same_top1_share": round(same_top1, 3)}
    print(json.dumps(result), flush=True)
    print(f"eval generation: batched {rate['batched']:.1f} rec/s, per-record {rate['per_record']:.1f} rec/s, "
          f"ratio {result['ratio']}x (target >= 2); first beams identical for {100 * same_top1:.0f}% "
          "(padding changes beam search a little)", file=sys.stderr)


if __name__ == "__main__":
    main()
