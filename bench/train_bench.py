"""make bench-train: pdc train's throughput against Hugging Face Seq2SeqTrainer, side by side.

Both train the same student (one saved initialisation, loaded by each), on the
same records (standard-library functions, `prepare --harvest | extract -t ast`),
with the same batch (--batch-size records = 2 x batch rows: code and
pseudocode), truncation, Adam (Trainer: AdamW with weight decay 0, constant
lr), gradient clipping and loss (alpha * mean pseudocode CE + beta * mean code
CE, per batch). Seq2SeqTrainer runs with its defaults otherwise: random
batches padded per batch (DataCollatorForSeq2Seq). Each run is its own
process, so peak RSS is honest; pdc and Trainer alternate, `--repeats` times,
and the best time of each counts.

    tokens/s = real (non-pad) source + target tokens of one epoch / training seconds

Then a CodeT5-base-shaped T5 (d_model 768, 12+12 layers, vocab 32100, random
weights) takes `--base-steps` optimiser steps of `--batch-size` records on CPU:
step time and peak RSS (it must fit in memory).

    python bench/train_bench.py [--records 128] [--batch-size 16] [--repeats 2] [--base-steps 1]

Prints one JSON line on stdout and a readable summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
sys.path.insert(0, SRC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def config(args):
    from pdc.train import TrainConfig

    return TrainConfig(student=args.init, lr=1e-4, batch_size=args.batch_size, epochs=1, seed=0,
                       max_source_length=args.max_length, max_target_length=args.max_length,
                       keep_checkpoints=0, device="cpu")


def load_data(args):
    from pdc import train as core
    from pdc.jsonl import read_lines

    cfg = config(args)
    data = core.examples_from(core.read_training_records(read_lines([args.cot])), cfg)
    data.valid = []  # time training only
    return cfg, data


def real_tokens(enc) -> int:
    return sum(len(x) for part in (enc.code_src, enc.code_tgt, enc.pseudo_src, enc.pseudo_tgt) for x in part)


# ---------------------------------------------------------------- children


def threads(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def child_pdc(args) -> dict:
    import random

    from pdc import train as core
    from pdc.students import load_pretrained

    threads(args)
    cfg, data = load_data(args)
    events = []
    core.train(data, cfg, os.path.join(args.tmp, f"pdc-out-{os.getpid()}"), overwrite=True, emit=events.append)
    epoch = next(e for e in events if e["event"] == "epoch")
    tok = load_pretrained(args.init).tokenizer
    enc = core.Encoded(data.train, tok, cfg)
    padded = 0
    for idx in core.length_grouped_batches(enc, cfg.batch_size, random.Random(cfg.seed * 1000 + 1)):
        for part_src, part_tgt in ((enc.code_src, enc.code_tgt), (enc.pseudo_src, enc.pseudo_tgt)):
            padded += len(idx) * (max(len(part_src[i]) for i in idx) + max(len(part_tgt[i]) for i in idx))
    return {"seconds": epoch["seconds"], "tokens": real_tokens(enc), "padded_tokens": padded,
            "steps": epoch["step"], "peak_rss_mb": peak_rss_mb()}


def child_hf(args) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from pdc import train as core
    from pdc.students import add_marker_tokens, load_pretrained

    threads(args)
    cfg, data = load_data(args)
    student = load_pretrained(args.init)
    add_marker_tokens(student)
    enc = core.Encoded(data.train, student.tokenizer, cfg)
    rows = [{"input_ids": s, "labels": t, "is_pseudo": 0} for s, t in zip(enc.code_src, enc.code_tgt)]
    rows += [{"input_ids": s, "labels": t, "is_pseudo": 1} for s, t in zip(enc.pseudo_src, enc.pseudo_tgt)]
    collate = DataCollatorForSeq2Seq(student.tokenizer, model=student.model)
    padded = [0]

    def collator(features):
        flags = torch.tensor([f["is_pseudo"] for f in features], dtype=torch.bool)
        batch = collate([{k: v for k, v in f.items() if k != "is_pseudo"} for f in features])
        padded[0] += batch["input_ids"].numel() + batch["labels"].numel()
        batch["is_pseudo"] = flags
        return batch

    class WeightedTrainer(Seq2SeqTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """pdc's loss written the usual way: full logits, then per-task token means."""
            is_pseudo, labels = inputs.pop("is_pseudo"), inputs["labels"]
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                           decoder_input_ids=inputs["decoder_input_ids"]).logits  # (rows, T, V)
            token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
            counted = (labels != -100).float()
            l_code = (token_loss[~is_pseudo] * counted[~is_pseudo]).sum() / counted[~is_pseudo].sum()
            l_pseudo = (token_loss[is_pseudo] * counted[is_pseudo]).sum() / counted[is_pseudo].sum()
            loss = core.combine(cfg, l_code, l_pseudo)
            return (loss, None) if return_outputs else loss

    targs = Seq2SeqTrainingArguments(
        output_dir=os.path.join(args.tmp, f"hf-out-{os.getpid()}"), per_device_train_batch_size=2 * cfg.batch_size,
        num_train_epochs=1, learning_rate=cfg.lr, weight_decay=0.0, lr_scheduler_type="constant",
        max_grad_norm=cfg.grad_clip, optim="adamw_torch", seed=cfg.seed, report_to=[], save_strategy="no",
        logging_strategy="no", eval_strategy="no", dataloader_num_workers=0, remove_unused_columns=False,
        use_cpu=True, disable_tqdm=True,
    )
    trainer = WeightedTrainer(model=student.model, args=targs, train_dataset=rows, data_collator=collator)
    metrics = trainer.train().metrics
    return {"seconds": metrics["train_runtime"], "tokens": real_tokens(enc), "padded_tokens": padded[0],
            "steps": trainer.state.global_step, "peak_rss_mb": peak_rss_mb()}


def child_base(args) -> dict:
    """CodeT5-base-shaped T5, random weights: a few optimiser steps of one batch on CPU."""
    import random

    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from pdc import train as core
    from pdc.distributed import Dist
    from pdc.students import load_pretrained

    threads(args)
    cfg, data = load_data(args)
    tok = load_pretrained(args.init).tokenizer
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=32100, d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
        feed_forward_proj="relu", pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id, tie_word_embeddings=True))
    if args.base_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    cfg.grad_accum = args.base_accum
    model.train()
    params = sum(p.numel() for p in model.parameters())
    enc = core.Encoded(data.train, tok, cfg)
    batches = core.length_grouped_batches(enc, cfg.batch_size, random.Random(0))
    full = [b for b in batches if len(b) == cfg.batch_size]
    lengths = lambda b: sum(len(enc.code_src[i]) + len(enc.code_tgt[i]) + len(enc.pseudo_tgt[i]) for i in b)  # noqa: E731
    full.sort(key=lengths)
    batch = full[len(full) // 2]  # a batch of median length
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    times = []
    for _ in range(args.base_steps):
        t0 = time.perf_counter()
        core._train_step(model, model, optimizer, None, enc, batch, cfg, Dist(), True,
                         tok.pad_token_id, "cpu")
        times.append(time.perf_counter() - t0)
        print(f"base step {len(times)}: {times[-1]:.1f} s, peak RSS {peak_rss_mb():.0f} MB", file=sys.stderr, flush=True)
    return {"parameters": params, "step_seconds": [round(t, 2) for t in times],
            "rows": 2 * len(batch), "source_tokens_max": max(len(enc.code_src[i]) for i in batch),
            "target_tokens_max": max(max(len(enc.code_tgt[i]), len(enc.pseudo_tgt[i])) for i in batch),
            "grad_accum": args.base_accum, "gradient_checkpointing": bool(args.base_checkpointing),
            "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------- parent


def prepare(args, tmp: str) -> tuple[str, str]:
    """The records (harvest | extract -t ast) and one saved scratch:small initialisation."""
    from pdc import train as core
    from pdc.extract import extract_record
    from pdc.jsonl import read_lines, write_jsonl_file
    from pdc.prepare import PrepareConfig, harvest
    from pdc.students import build_scratch, save_student
    from pdc.teachers import get_teacher

    teacher = get_teacher("ast")
    cot = os.path.join(tmp, "cot.jsonl")
    problems = [p for p in harvest(config=PrepareConfig(limit=args.records * 2)) if p["split"] != "test"]
    for p in problems:
        p["split"] = "train"
    write_jsonl_file(cot, (extract_record(teacher, p, p["id"]) for p in problems[:args.records]))
    cfg = core.TrainConfig(max_train_records=args.records)
    data = core.examples_from(core.read_training_records(read_lines([cot])), cfg)
    texts = [t for e in data.train for t in (e.pseudo_src, e.pseudo_tgt, e.code_src, e.code_tgt)]
    student = build_scratch(args.size, texts, seed=0)
    init = os.path.join(tmp, "init")
    save_student(student, init, {})
    return cot, init


def run_child(kind: str, args, cot: str, init: str, tmp: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--cot", cot, "--init", init, "--tmp", tmp,
           "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--base-steps", str(args.base_steps), "--threads", str(args.threads),
           "--base-accum", str(args.base_accum), "--base-checkpointing", str(args.base_checkpointing)]
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC), "TOKENIZERS_PARALLELISM": "false"}
    live = kind == "base"  # minutes per step: show each as it finishes
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if live else subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode == -9 else (proc.stderr or "")[-3000:]
        sys.exit(f"{kind} run failed ({proc.returncode}): {why}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=128, help="train records")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256, help="truncation, every task")
    ap.add_argument("--size", default="small", help="scratch student size for the side-by-side runs")
    ap.add_argument("--repeats", type=int, default=2, help="pdc/Trainer pairs (0 = only the CodeT5-base-shaped steps)")
    ap.add_argument("--base-steps", type=int, default=1, help="CodeT5-base-shaped steps (0 = skip)")
    ap.add_argument("--base-accum", type=int, default=1, help="--grad-accum of the CodeT5-base-shaped steps")
    ap.add_argument("--base-checkpointing", type=int, default=1,
                    help="gradient checkpointing in the CodeT5-base-shaped steps (1/0); without it batch 16 "
                         "at length 256 needs about 20 GB")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every run (0 = torch's default)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cot", help=argparse.SUPPRESS)
    ap.add_argument("--init", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = {"pdc": child_pdc, "hf": child_hf, "base": child_base}[args.child](args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        cot, init = prepare(args, tmp)
        runs: dict[str, list[dict]] = {"pdc": [], "hf": []}
        for r in range(args.repeats):
            for kind in (("pdc", "hf") if r % 2 == 0 else ("hf", "pdc")):
                runs[kind].append(run_child(kind, args, cot, init, tmp))
                print(f"{kind}: {runs[kind][-1]}", file=sys.stderr)
        base = run_child("base", args, cot, init, tmp) if args.base_steps else None
    if not args.repeats:
        print(json.dumps({"bench": "train", "codet5_base_shaped": base, "load_average": os.getloadavg()}))
        return
    best = {k: min(v, key=lambda x: x["seconds"]) for k, v in runs.items()}
    tps = {k: b["tokens"] / b["seconds"] for k, b in best.items()}
    result = {
        "bench": "train", "records": args.records, "batch_size": args.batch_size, "student": f"scratch:{args.size}",
        "pdc_tokens_per_s": round(tps["pdc"], 1), "hf_tokens_per_s": round(tps["hf"], 1),
        "ratio": round(tps["pdc"] / tps["hf"], 3), "target_ratio": 1.3,
        "pdc_seconds": [x["seconds"] for x in runs["pdc"]], "hf_seconds": [round(x["seconds"], 2) for x in runs["hf"]],
        "pdc_padding_share": round(1 - best["pdc"]["tokens"] / best["pdc"]["padded_tokens"], 3),
        "hf_padding_share": round(1 - best["hf"]["tokens"] / best["hf"]["padded_tokens"], 3),
        "pdc_peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs["pdc"])),
        "hf_peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs["hf"])),
        "steps": {k: best[k]["steps"] for k in best},
        "codet5_base_shaped": base, "cpu_count": os.cpu_count(), "threads": args.threads or "default",
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result))
    print(f"pdc {tps['pdc']:.0f} tokens/s vs Seq2SeqTrainer {tps['hf']:.0f} tokens/s: ratio {result['ratio']} "
          f"(target >= 1.3); padding {result['pdc_padding_share']:.0%} vs {result['hf_padding_share']:.0%}; "
          f"peak RSS {result['pdc_peak_rss_mb']} MB vs {result['hf_peak_rss_mb']} MB", file=sys.stderr)
    if base:
        print(f"CodeT5-base-shaped ({base['parameters'] / 1e6:.0f}M params), batch {args.batch_size}: "
              f"step {base['step_seconds']} s, peak RSS {base['peak_rss_mb'] / 1024:.1f} GB", file=sys.stderr)


if __name__ == "__main__":
    main()
