"""Multi-task student training: the paper's Algorithm 1.

Each usable record (status "ok", split "train" or "valid") yields two examples
that differ only in the task marker of the input:

    [pseudocode] <nl>   ->  "1. step\\n2. step ..."       (teacher pseudocode)
    [code] <nl>         ->  teacher code                   (--code-input nl)
    [code] <nl> [plan] <numbered steps>  ->  teacher code  (--code-input nl+pseudocode)

A batch holds both examples of `batch_size` records; the loss is

    loss = alpha * CE(pseudocode tokens) + beta * CE(code tokens)

with each CE the mean over that task's target tokens in the batch. `--alpha 0`
is the undistilled baseline: the same records, batches, seed and budget, with
the pseudocode examples left out of the forward pass (they would add zero).

Early stopping watches the same weighted loss on the valid split and keeps the
best epoch's weights, which is what the output directory holds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator

from pdc.errors import PdcError, RecordError
from pdc.tasks import DEFAULT_MARKERS, Markers, code_input, format_pseudocode, pseudocode_input


@dataclass
class TrainConfig:
    student: str = "scratch:small"   # hub id, local HF directory, or scratch:tiny|small
    alpha: float = 0.5               # weight of the pseudocode loss (paper: 0.5; 0 = baseline)
    beta: float = 0.5                # weight of the code loss (paper: 0.5)
    lr: float = 1e-5                 # Adam learning rate (paper: 1e-5)
    batch_size: int = 16             # records per step (each gives up to two examples)
    epochs: int = 30                 # upper bound (paper: up to 30)
    patience: int = 3                # epochs without valid-loss improvement before stopping
    seed: int = 0
    max_source_length: int = 256     # input tokens kept (truncation)
    max_target_length: int = 256     # target tokens kept, both tasks
    code_input: str = "nl"           # "nl" or "nl+pseudocode"
    code_target: str = "teacher"     # "teacher" (teacher_code) or "reference" (code)
    grad_clip: float = 1.0           # max gradient norm (0 = off)
    max_train_records: int = 0       # 0 = all; else the first N usable train records
    max_valid_records: int = 0       # 0 = all
    device: str = "auto"             # auto, cpu, cuda

    def check(self) -> None:
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta == 0:
            raise PdcError("--alpha and --beta must be >= 0 and not both 0")
        if self.code_input not in ("nl", "nl+pseudocode"):
            raise PdcError(f"--code-input must be nl or nl+pseudocode, not {self.code_input!r}")
        if self.code_target not in ("teacher", "reference"):
            raise PdcError(f"--code-target must be teacher or reference, not {self.code_target!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 1:
            raise PdcError("--batch-size, --epochs and --patience must be at least 1")


@dataclass
class Example:
    """One record's two training examples (texts), plus where it came from."""

    id: str
    pseudo_src: str
    pseudo_tgt: str
    code_src: str
    code_tgt: str


@dataclass
class Dataset:
    train: list[Example] = field(default_factory=list)
    valid: list[Example] = field(default_factory=list)
    skipped: int = 0                       # records without usable pseudocode
    provenance: dict[str, int] = field(default_factory=dict)  # "teacher/model/prompt_id[/ablation]" -> count
    fingerprint: str = ""


def examples_from(records: Iterable[tuple[dict[str, Any], str]], cfg: TrainConfig,
                  markers: Markers = DEFAULT_MARKERS) -> Dataset:
    """Turn extract output into train/valid examples (records of other splits are ignored)."""
    data = Dataset()
    digest = hashlib.sha256()
    for record, where in records:
        split = record.get("split")
        if split not in ("train", "valid"):
            continue
        if record.get("status", "ok") != "ok" or not record.get("pseudocode"):
            data.skipped += 1
            continue
        ex = _example(record, where, cfg, markers)
        target = data.train if split == "train" else data.valid
        limit = cfg.max_train_records if split == "train" else cfg.max_valid_records
        if limit and len(target) >= limit:
            continue
        target.append(ex)
        digest.update(json.dumps([split, ex.pseudo_src, ex.pseudo_tgt, ex.code_src, ex.code_tgt]).encode())
        key = "/".join(str(record.get(k)) for k in ("teacher", "model", "prompt_id"))
        if isinstance(record.get("ablation"), dict):
            key += f"/ablation={record['ablation'].get('mode')}"
        data.provenance[key] = data.provenance.get(key, 0) + 1
    data.fingerprint = digest.hexdigest()
    return data


def _example(record: dict[str, Any], where: str, cfg: TrainConfig, markers: Markers) -> Example:
    for name in ("id", "nl"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise RecordError(where, name, "missing or not a string")
    steps = record["pseudocode"]
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise RecordError(where, "pseudocode", "expected a list of strings")
    code_field = "teacher_code" if cfg.code_target == "teacher" and record.get("teacher_code") else "code"
    code = record.get(code_field)
    if not isinstance(code, str) or not code:
        raise RecordError(where, code_field, "missing or not a string")
    plan = steps if cfg.code_input == "nl+pseudocode" else None
    return Example(
        id=record["id"],
        pseudo_src=pseudocode_input(record["nl"], markers),
        pseudo_tgt=format_pseudocode(steps),
        code_src=code_input(record["nl"], markers, plan),
        code_tgt=code,
    )


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class Encoded:
    """Token ids of every example, computed once; batches are padded per batch."""

    def __init__(self, examples: list[Example], tokenizer, cfg: TrainConfig):
        def enc(texts: list[str], limit: int) -> list[list[int]]:
            return tokenizer(texts, truncation=True, max_length=limit)["input_ids"]

        self.n = len(examples)
        self.pseudo_src = enc([e.pseudo_src for e in examples], cfg.max_source_length)
        self.pseudo_tgt = enc([e.pseudo_tgt for e in examples], cfg.max_target_length)
        self.code_src = enc([e.code_src for e in examples], cfg.max_source_length)
        self.code_tgt = enc([e.code_tgt for e in examples], cfg.max_target_length)


def length_grouped_batches(enc: Encoded, batch_size: int, rng: random.Random,
                           pool_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length records, so little compute goes to padding.

    Records are shuffled, cut into pools of `pool_batches` batches, sorted by
    length inside each pool and batched; the batch order is shuffled again.
    """
    order = list(range(enc.n))
    rng.shuffle(order)
    length = lambda i: len(enc.code_src[i]) + len(enc.code_tgt[i]) + len(enc.pseudo_tgt[i])  # noqa: E731
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, enc.n, pool):
        chunk = sorted(order[start:start + pool], key=length)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def make_batch(enc: Encoded, idx: list[int], with_pseudo: bool, pad_id: int, device: str):
    """Stack a batch: code examples, then (if used) pseudocode examples.

    Returns input_ids, attention_mask, labels (-100 = padding) of shape
    (rows, max_len) and is_pseudo (rows,), rows = len(idx) * (2 if with_pseudo else 1).
    """
    import torch

    srcs = [enc.code_src[i] for i in idx]
    tgts = [enc.code_tgt[i] for i in idx]
    flags = [False] * len(idx)
    if with_pseudo:
        srcs += [enc.pseudo_src[i] for i in idx]
        tgts += [enc.pseudo_tgt[i] for i in idx]
        flags += [True] * len(idx)

    def pad(seqs: list[list[int]], value: int):
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)

    input_ids = pad(srcs, pad_id)
    attention_mask = pad([[1] * len(s) for s in srcs], 0)
    labels = pad(tgts, -100)
    is_pseudo = torch.tensor(flags)
    return (input_ids.to(device), attention_mask.to(device), labels.to(device), is_pseudo.to(device))


def task_losses(model, batch) -> tuple[Any, Any]:
    """Mean token cross-entropy of the code rows and of the pseudocode rows."""
    import torch
    import torch.nn.functional as F

    input_ids, attention_mask, labels, is_pseudo = batch
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)  # shift right, -100 -> pad
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   decoder_input_ids=decoder_input_ids).logits  # (rows, T, V)
    token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (rows, T)
    counted = (labels != -100).float()  # (rows, T)

    def mean_over(rows):
        n = counted[rows].sum()
        return (token_loss[rows] * counted[rows]).sum() / n if n > 0 else torch.zeros((), device=logits.device)

    return mean_over(~is_pseudo), mean_over(is_pseudo)


def combine(cfg: TrainConfig, l_code, l_pseudo):
    return cfg.beta * l_code + (cfg.alpha * l_pseudo if cfg.alpha > 0 else 0.0)


def evaluate_loss(model, enc: Encoded, cfg: TrainConfig, pad_id: int, device: str) -> dict[str, float]:
    """Weighted loss and per-task losses on a dataset (mean over batches of records)."""
    import torch

    model.eval()
    totals = {"loss": 0.0, "loss_code": 0.0, "loss_pseudocode": 0.0}
    batches = 0
    with torch.inference_mode():
        for start in range(0, enc.n, cfg.batch_size):
            idx = list(range(start, min(start + cfg.batch_size, enc.n)))
            l_code, l_pseudo = task_losses(model, make_batch(enc, idx, True, pad_id, device))
            totals["loss"] += float(combine(cfg, l_code, l_pseudo))
            totals["loss_code"] += float(l_code)
            totals["loss_pseudocode"] += float(l_pseudo)
            batches += 1
    model.train()
    return {k: v / max(batches, 1) for k, v in totals.items()}


def train(data: Dataset, cfg: TrainConfig, out_dir: str, *, overwrite: bool = False,
          emit: Callable[[dict[str, Any]], None] = lambda event: None,
          progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, Any]:
    """Train a student on `data` and save the best epoch to `out_dir`; return the final event."""
    import torch

    from pdc import __version__
    from pdc.students import build_scratch, load_pretrained

    cfg.check()
    if not data.train:
        raise PdcError("no usable training records (split 'train' with status 'ok' and pseudocode), "
                       "pipe `pdc extract` output in")
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise PdcError(f"{out_dir} exists and is not empty, choose another --out or pass --overwrite")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    if cfg.student.startswith("scratch:"):
        texts = (t for e in data.train for t in (e.pseudo_src, e.pseudo_tgt, e.code_src, e.code_tgt))
        student = build_scratch(cfg.student.split(":", 1)[1], texts, cfg.seed)
    else:
        student = load_pretrained(cfg.student)
    model, tokenizer = student.model.to(device), student.tokenizer
    pad_id = tokenizer.pad_token_id
    train_enc = Encoded(data.train, tokenizer, cfg)
    valid_enc = Encoded(data.valid, tokenizer, cfg) if data.valid else None
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    with_pseudo = cfg.alpha > 0
    steps_per_epoch = math.ceil(train_enc.n / cfg.batch_size)
    emit({"event": "start", "student": cfg.student, "device": device,
          "parameters": sum(p.numel() for p in model.parameters()),
          "train_records": train_enc.n, "valid_records": valid_enc.n if valid_enc else 0,
          "skipped_records": data.skipped, "steps_per_epoch": steps_per_epoch})

    best: dict[str, Any] = {"epoch": 0, "valid_loss": math.inf, "state": None}
    history: list[dict[str, Any]] = []
    bad_epochs, step, started = 0, 0, time.time()
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.time()
        batches = length_grouped_batches(train_enc, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
        sums = {"loss": 0.0, "loss_code": 0.0, "loss_pseudocode": 0.0}
        for b, idx in enumerate(batches):
            l_code, l_pseudo = task_losses(model, make_batch(train_enc, idx, with_pseudo, pad_id, device))
            loss = combine(cfg, l_code, l_pseudo)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            sums["loss"] += loss.item()
            sums["loss_code"] += l_code.item()
            sums["loss_pseudocode"] += l_pseudo.item()
            progress((epoch - 1) * steps_per_epoch + b + 1, cfg.epochs * steps_per_epoch)
        event: dict[str, Any] = {"event": "epoch", "epoch": epoch, "step": step,
                                 **{f"train_{k}": round(v / steps_per_epoch, 5) for k, v in sums.items()}}
        if valid_enc is not None:
            valid = evaluate_loss(model, valid_enc, cfg, pad_id, device)
            event.update({f"valid_{k}": round(v, 5) for k, v in valid.items()})
            improved = valid["loss"] < best["valid_loss"]
        else:
            improved = True  # no valid split: the last epoch is the best
        if improved:
            best = {"epoch": epoch, "valid_loss": event.get("valid_loss", math.nan),
                    "state": copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})}
            bad_epochs = 0
        else:
            bad_epochs += 1
        event.update({"best": improved, "seconds": round(time.time() - t0, 2)})
        history.append(event)
        emit(event)
        if bad_epochs >= cfg.patience:
            emit({"event": "early_stop", "epoch": epoch, "best_epoch": best["epoch"]})
            break

    model.load_state_dict(best["state"])
    pdc_config = {
        "pdc_version": __version__,
        "student": cfg.student,
        "markers": DEFAULT_MARKERS.to_dict(),
        "max_source_length": cfg.max_source_length,
        "max_target_length": cfg.max_target_length,
        "code_input": cfg.code_input,
        "seed": cfg.seed,
        "train": asdict(cfg),
        "data": {"train_records": train_enc.n, "valid_records": valid_enc.n if valid_enc else 0,
                 "skipped_records": data.skipped, "fingerprint": data.fingerprint,
                 "provenance": data.provenance},
        "best_epoch": best["epoch"],
        "best_valid_loss": None if math.isnan(best["valid_loss"]) else best["valid_loss"],
        "history": history,
        "seconds": round(time.time() - started, 2),
    }
    _save_atomically(student, out_dir, pdc_config)
    done = {"event": "done", "out": out_dir, "best_epoch": best["epoch"],
            "best_valid_loss": pdc_config["best_valid_loss"], "epochs_run": len(history),
            "steps": step, "seconds": pdc_config["seconds"]}
    emit(done)
    return done


def _save_atomically(student, out_dir: str, pdc_config: dict[str, Any]) -> None:
    """Save into a sibling temporary directory, then swap it into place."""
    from pdc.students import save_student

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(out_dir))}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_student(student, tmp, pdc_config)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def read_training_records(lines: Iterator) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, where) pairs from pdc.jsonl lines (strict: a bad line raises)."""
    for line in lines:
        if line.error is not None:
            raise line.error
        yield line.record, line.where
