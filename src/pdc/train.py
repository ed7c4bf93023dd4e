"""Multi-task student training: the paper's Algorithm 1.

Each usable record (status "ok", split "train" or "valid") yields two examples
that differ only in the task marker of the input:

    [pseudocode] <nl>   ->  "1. step\\n2. step ..."       (teacher pseudocode)
    [code] <nl>         ->  teacher code                   (--code-input nl)
    [code] <nl> [plan] <numbered steps>  ->  teacher code  (--code-input nl+pseudocode)

A step holds both examples of `batch_size` records; the loss is

    loss = alpha * CE(pseudocode tokens) + beta * CE(code tokens)

with each CE the mean over that task's target tokens in the step. `--alpha 0`
is the undistilled baseline: the same records, batches, seed and budget, with
the pseudocode examples left out of the forward pass (they would add zero).
A step may be split into micro-batches (`grad_accum`) and over processes
(torchrun); each micro-batch divides its summed token losses by the token
counts of the whole step, so the gradient is the same.

Early stopping watches the weighted valid loss (or BLEU / CodeBLEU of greedy
code on a valid subset, `select_by`) and keeps the best epoch's weights, which
is what the output directory holds. Checkpoints (`pdc.checkpoint`) carry
everything needed to continue exactly: weights, optimizer, RNG states, the
position in the epoch and the early-stopping state.
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


# Fields that may change between an interrupted run and its --resume.
RESUMABLE_CHANGES = ("epochs", "patience", "device", "save_every", "keep_checkpoints")


@dataclass
class TrainConfig:
    student: str = "scratch:small"   # hub id, local HF directory, or scratch:tiny|small
    alpha: float = 0.5               # weight of the pseudocode loss (paper: 0.5; 0 = baseline)
    beta: float = 0.5                # weight of the code loss (paper: 0.5)
    lr: float = 1e-5                 # Adam learning rate (paper: 1e-5)
    batch_size: int = 16             # records per optimiser step, over all processes and micro-batches
    epochs: int = 30                 # upper bound (paper: up to 30)
    patience: int = 3                # epochs without a better selection score before stopping
    seed: int = 0
    max_source_length: int = 256     # input tokens kept (truncation)
    max_target_length: int = 256     # code target tokens kept
    max_pseudocode_length: int = 0   # pseudocode target tokens kept (0 = max_target_length)
    code_input: str = "nl"           # "nl" or "nl+pseudocode"
    code_target: str = "teacher"     # "teacher" (teacher_code) or "reference" (code)
    grad_clip: float = 1.0           # max gradient norm (0 = off)
    grad_accum: int = 1              # micro-batches per step in each process (same batch, less memory)
    precision: str = "fp32"          # fp32; bf16 autocast (CPU or CUDA); fp16 autocast + loss scaling (CUDA)
    dropout: float | None = None     # override every dropout probability of the student (None = keep)
    gradient_checkpointing: bool = False  # recompute activations in backward: far less memory, ~30% more time
    select_by: str = "loss"          # best epoch by valid "loss" (paper), or code "bleu" / "codebleu"
    select_samples: int = 64         # valid records decoded (greedy) for bleu/codebleu selection
    save_every: int = 0              # also checkpoint every N steps (0 = once per epoch)
    keep_checkpoints: int = 2        # newest checkpoints kept (0 = write none)
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
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 1 or self.grad_accum < 1:
            raise PdcError("--batch-size, --epochs, --patience and --grad-accum must be at least 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise PdcError(f"--precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if self.select_by not in ("loss", "bleu", "codebleu"):
            raise PdcError(f"--select-by must be loss, bleu or codebleu, not {self.select_by!r}")
        if self.select_samples < 1:
            raise PdcError("--select-samples must be at least 1")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise PdcError("--dropout must be in [0, 1)")
        if self.save_every < 0 or self.keep_checkpoints < 0 or self.max_pseudocode_length < 0:
            raise PdcError("--save-every, --keep-checkpoints and --max-pseudocode-length must be >= 0")

    @property
    def pseudocode_length(self) -> int:
        return self.max_pseudocode_length or self.max_target_length


@dataclass
class Example:
    """One record's two training examples (texts), plus where it came from."""

    id: str
    pseudo_src: str
    pseudo_tgt: str
    code_src: str
    code_tgt: str
    nl: str = ""            # the problem, for decoding during selection
    lang: str = "python"
    reference: str = ""     # the record's reference code (what `pdc eval` scores)


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
        nl=record["nl"],
        lang=record.get("lang") if isinstance(record.get("lang"), str) else "python",
        reference=record.get("code") if isinstance(record.get("code"), str) else code,
    )


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> str:
    from pdc.distributed import pick_device as pick

    return pick(name)


class Encoded:
    """Token ids of every example, computed once; batches are padded per batch."""

    def __init__(self, examples: list[Example], tokenizer, cfg: TrainConfig):
        def enc(texts: list[str], limit: int) -> list[list[int]]:
            return tokenizer(texts, truncation=True, max_length=limit)["input_ids"]

        self.n = len(examples)
        self.pseudo_src = enc([e.pseudo_src for e in examples], cfg.max_source_length)
        self.pseudo_tgt = enc([e.pseudo_tgt for e in examples], cfg.pseudocode_length)
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


def task_token_sums(model, batch, forward=None) -> tuple[Any, Any]:
    """Summed token cross-entropy of the code rows and of the pseudocode rows.

    The output layer runs only on positions that have a target token (a
    pre-hook on the model's output embeddings drops the padding first), so
    no compute or memory goes to the logits of padding: (N, V) instead of
    (rows, T, V). `forward` is the module to call (a DistributedDataParallel
    wrapper of `model`); `model` supplies the right-shift of the labels.
    """
    import torch.nn.functional as F

    input_ids, attention_mask, labels, is_pseudo = batch
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)  # shift right, -100 -> pad
    keep = labels != -100  # (rows, T)
    head = model.get_output_embeddings()
    hook = head.register_forward_pre_hook(
        lambda _module, args: (args[0][keep],) + tuple(args[1:])) if head is not None else None  # (rows, T, d) -> (N, d)
    try:
        logits = (forward or model)(input_ids=input_ids, attention_mask=attention_mask,
                                    decoder_input_ids=decoder_input_ids).logits  # (N, V)
    finally:
        if hook is not None:
            hook.remove()
    if logits.dim() == 3:  # no output embeddings to hook: full logits (rows, T, V)
        logits = logits[keep]
    token_loss = F.cross_entropy(logits.float(), labels[keep], reduction="none")  # (N,)
    pseudo = is_pseudo[keep.nonzero()[:, 0]]  # (N,) the task of each target token
    return token_loss[~pseudo].sum(), token_loss[pseudo].sum()


def task_losses(model, batch) -> tuple[Any, Any]:
    """Mean token cross-entropy of the code rows and of the pseudocode rows."""
    import torch

    labels, is_pseudo = batch[2], batch[3]
    counted = (labels != -100).sum(dim=1)  # (rows,)
    s_code, s_pseudo = task_token_sums(model, batch)
    n_code, n_pseudo = counted[~is_pseudo].sum(), counted[is_pseudo].sum()
    zero = torch.zeros((), device=labels.device)
    return (s_code / n_code if n_code > 0 else zero), (s_pseudo / n_pseudo if n_pseudo > 0 else zero)


def combine(cfg: TrainConfig, l_code, l_pseudo):
    return cfg.beta * l_code + (cfg.alpha * l_pseudo if cfg.alpha > 0 else 0.0)


def split_evenly(items: list, parts: int) -> list[list]:
    """`parts` contiguous chunks whose sizes differ by at most one (some empty if too few items)."""
    q, r = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + q + (1 if k < r else 0)
        out.append(items[start:end])
        start = end
    return out


def micro_batches(enc: Encoded, idx: list[int], world: int, accum: int) -> list[list[list[int]]]:
    """One step's records as world x accum micro-batches of similar length.

    The step's records are sorted by length, cut into one contiguous shard per
    process, and each shard into `accum` micro-batches, so every process sees
    the same global batch a single process would, with little padding.
    """
    length = lambda i: (len(enc.code_src[i]) + len(enc.code_tgt[i]) + len(enc.pseudo_tgt[i]), i)  # noqa: E731
    ordered = sorted(idx, key=length)
    return [split_evenly(shard, accum) for shard in split_evenly(ordered, world)]


def evaluate_loss(model, enc: Encoded, cfg: TrainConfig, pad_id: int, device: str, dist=None) -> dict[str, float]:
    """Weighted loss and per-task losses on a dataset (mean over batches of records).

    Under torchrun each process takes every world-th batch and the sums are all-reduced.
    """
    import torch

    from pdc.distributed import Dist, all_sum

    dist = dist or Dist()
    model.eval()
    totals = [0.0, 0.0, 0.0, 0.0]  # loss, loss_code, loss_pseudocode, batches
    with torch.inference_mode(), autocast(cfg, device):
        for b, start in enumerate(range(0, enc.n, cfg.batch_size)):
            if b % dist.world != dist.rank:
                continue
            idx = list(range(start, min(start + cfg.batch_size, enc.n)))
            l_code, l_pseudo = task_losses(model, make_batch(enc, idx, True, pad_id, device))
            totals[0] += float(combine(cfg, l_code, l_pseudo))
            totals[1] += float(l_code)
            totals[2] += float(l_pseudo)
            totals[3] += 1
    model.train()
    loss, code, pseudo, batches = all_sum(totals, dist, device)
    return {k: v / max(batches, 1) for k, v in zip(("loss", "loss_code", "loss_pseudocode"), (loss, code, pseudo))}


def code_score(student, examples: list[Example], cfg: TrainConfig, dist=None) -> float:
    """BLEU or CodeBLEU (0-100) of greedy code on `examples` against their reference code.

    Students trained with --code-input nl+pseudocode write their own
    pseudocode first (eval's plan mode), as they would at inference.
    """
    from pdc.distributed import Dist, gather_objects
    from pdc.eval import EvalConfig, Generator
    from pdc.metrics import bleu_corpus, score

    dist = dist or Dist()
    mode = "plan" if cfg.code_input == "nl+pseudocode" else "direct"
    gen = Generator(student, EvalConfig(beams=1, batch_size=cfg.batch_size, mode=mode))
    mine = list(range(dist.rank, len(examples), dist.world))
    preds: dict[int, str] = {}
    student.model.eval()
    for start in range(0, len(mine), cfg.batch_size):
        chunk = mine[start:start + cfg.batch_size]
        out, _, _ = gen.code([examples[i].nl for i in chunk])
        preds.update({i: p[0] for i, p in zip(chunk, out)})
    student.model.train()
    for part in gather_objects(preds, dist):
        preds.update(part)
    predictions = [preds[i] for i in range(len(examples))]
    references = [e.reference for e in examples]
    if cfg.select_by == "bleu":
        return bleu_corpus(predictions, references)
    total = 0.0
    for lang in sorted({e.lang for e in examples}):
        rows = [i for i, e in enumerate(examples) if e.lang == lang]
        total += score([predictions[i] for i in rows], [references[i] for i in rows], lang)["cb"] * len(rows)
    return total / len(examples)


def autocast(cfg: TrainConfig, device: str):
    """The autocast context of --precision (a no-op for fp32)."""
    import contextlib

    import torch

    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def _check_precision(cfg: TrainConfig, device: str) -> None:
    if cfg.precision == "fp16" and not device.startswith("cuda"):
        raise PdcError("--precision fp16 needs a CUDA device, use bf16 (or fp32) on CPU")


def _check_resumable(state: dict[str, Any], cfg: TrainConfig, data: Dataset, path: str) -> None:
    saved = state["config"]
    now = asdict(cfg)
    differ = sorted(k for k in set(saved) | set(now)
                    if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if differ:
        raise PdcError(f"checkpoint {path} was written with other settings ({', '.join(differ)}), "
                       "rerun with the same options or drop --resume and pass --overwrite")
    if state["data_fingerprint"] != data.fingerprint:
        raise PdcError(f"checkpoint {path} was trained on other records (data fingerprint differs), "
                       "resume with the same input")


def train(data: Dataset, cfg: TrainConfig, out_dir: str, *, overwrite: bool = False,
          resume: bool = False, checkpoint_dir: str | None = None,
          emit: Callable[[dict[str, Any]], None] = lambda event: None,
          progress: Callable[[int, int], None] = lambda done, total: None,
          on_step: Callable[[int], None] = lambda step: None) -> dict[str, Any]:
    """Train a student on `data` and save the best epoch to `out_dir`; return the final event.

    Checkpoints go to `checkpoint_dir` (default: `<out_dir>.checkpoints`);
    `resume=True` continues from the newest one that verifies. `on_step(step)`
    runs after every optimiser step (and its checkpoint, if any).
    """
    import torch

    from pdc import __version__
    from pdc import checkpoint as ckpt
    from pdc import distributed
    from pdc.students import add_marker_tokens, set_dropout

    cfg.check()
    if not data.train:
        raise PdcError("no usable training records (split 'train' with status 'ok' and pseudocode), "
                       "pipe `pdc extract` output in")
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise PdcError(f"{out_dir} exists and is not empty, choose another --out or pass --overwrite")
    ckpt_dir = checkpoint_dir or os.path.abspath(out_dir).rstrip(os.sep) + ".checkpoints"
    if ckpt.complete(ckpt_dir) and not resume and not overwrite:
        raise PdcError(f"{ckpt_dir} holds checkpoints of an earlier run, pass --resume to continue it "
                       "or --overwrite to start again")
    dist, device = distributed.setup(cfg.device)
    _check_precision(cfg, device)
    say = emit if dist.main else (lambda event: None)
    if dist.main:
        if ckpt.complete(ckpt_dir) and not resume:
            shutil.rmtree(ckpt_dir)
        ckpt.remove_torn(ckpt_dir)
    distributed.barrier(dist)
    seed_everything(cfg.seed)

    state: dict[str, Any] | None = None
    resumed_from = None
    if resume:
        resumed_from, rejected = ckpt.latest(ckpt_dir)
        for r in rejected:
            say({"event": "checkpoint_rejected", **r})
        if resumed_from is not None:
            state, tensors = ckpt.load(resumed_from)
            _check_resumable(state, cfg, data, resumed_from)
    student = _student(cfg, data, dist, resumed_from)
    add_marker_tokens(student, DEFAULT_MARKERS)
    if cfg.dropout is not None:
        set_dropout(student.model, cfg.dropout)
    if cfg.gradient_checkpointing:
        student.model.config.use_cache = False
        student.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model, tokenizer = student.model.to(device), student.tokenizer
    model.train()
    pad_id = tokenizer.pad_token_id
    train_enc = Encoded(data.train, tokenizer, cfg)
    valid_enc = Encoded(data.valid, tokenizer, cfg) if data.valid else None
    select_examples = data.valid[:cfg.select_samples]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    forward = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)
    with_pseudo = cfg.alpha > 0
    steps_per_epoch = math.ceil(train_enc.n / cfg.batch_size)
    higher_is_better = cfg.select_by != "loss"
    pdc_base = {
        "pdc_version": __version__, "student": cfg.student, "markers": DEFAULT_MARKERS.to_dict(),
        "max_source_length": cfg.max_source_length, "max_target_length": cfg.max_target_length,
        "max_pseudocode_length": cfg.pseudocode_length, "code_input": cfg.code_input, "seed": cfg.seed,
        "train": asdict(cfg),
    }

    # Training state: everything a checkpoint must carry to continue exactly.
    best: dict[str, Any] = {"epoch": 0, "score": None, "valid_loss": None}
    best_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    bad_epochs, step, epoch, next_batch, stopped = 0, 0, 1, 0, False
    sums = [0.0, 0.0, 0.0]  # this epoch's summed step losses: loss, code, pseudocode
    seconds_before = 0.0
    if state is not None:
        optimizer.load_state_dict(tensors["optimizer"]["optimizer"])
        if scaler is not None and "scaler" in tensors["optimizer"]:
            scaler.load_state_dict(tensors["optimizer"]["scaler"])
        best, history, bad_epochs, stopped = state["best"], state["history"], state["bad_epochs"], state["stopped"]
        step, epoch, next_batch, sums = state["step"], state["epoch"], state["next_batch"], state["sums"]
        seconds_before = state["seconds"]
        # no best.pt: the checkpoint's own weights are the best ones (or there is no best yet)
        best_state = tensors["best"] if "best" in tensors else (_cpu_state(model) if best["epoch"] else None)
        if state["world"] == dist.world:
            ckpt.set_rng_state(state["rng"][dist.rank], tensors["rng"]["ranks"][dist.rank])
        else:
            say({"event": "warning", "message": f"checkpoint written by {state['world']} processes, "
                 f"resumed on {dist.world}: same global batch, other dropout draws"})
        if state.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            say({"event": "warning", "message": f"checkpoint written with {state['threads']} torch threads, "
                 f"resumed with {torch.get_num_threads()}: not bit-identical to an uninterrupted run"})
        say({"event": "resume", "checkpoint": resumed_from, "step": step, "epoch": epoch,
             "next_batch": next_batch})

    say({"event": "start", "student": cfg.student, "device": device, "world_size": dist.world,
         "parameters": sum(p.numel() for p in model.parameters()),
         "train_records": train_enc.n, "valid_records": valid_enc.n if valid_enc else 0,
         "skipped_records": data.skipped, "steps_per_epoch": steps_per_epoch})

    started = time.time()
    records_here = 0  # training records this process ran forward since it started

    def save_checkpoint(next_epoch: int, next_batch_: int, sums_: list[float], best_is_current: bool) -> str | None:
        """Gather every process's RNG state; rank 0 writes, the others wait for it.

        best.pt is left out when the best weights are the model's own (right
        after the epoch that set them).
        """
        if cfg.keep_checkpoints == 0:
            return None
        ranks = distributed.gather_objects(ckpt.rng_state(), dist)
        path = None
        if dist.main:
            student.config = {**pdc_base, "checkpoint_step": step}
            blobs: dict[str, Any] = {
                "optimizer": {"optimizer": optimizer.state_dict(),
                              **({"scaler": scaler.state_dict()} if scaler is not None else {})},
                "rng": {"ranks": [t for _, t in ranks]},
            }
            if best_state is not None and not best_is_current:
                blobs["best"] = best_state
            path = ckpt.write(ckpt_dir, step, student, blobs, {
                "step": step, "epoch": next_epoch, "next_batch": next_batch_, "sums": sums_,
                "best": best, "history": history, "bad_epochs": bad_epochs, "stopped": stopped,
                "seconds": seconds_before + time.time() - started, "world": dist.world,
                "threads": torch.get_num_threads(),
                "rng": [p for p, _ in ranks], "config": asdict(cfg),
                "data_fingerprint": data.fingerprint,
            }, cfg.keep_checkpoints)
        distributed.barrier(dist)
        return path

    while epoch <= cfg.epochs and not stopped:
        t0 = time.time()
        batches = length_grouped_batches(train_enc, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
        for b in range(next_batch, len(batches)):
            parts, rows = _train_step(model, forward, optimizer, scaler, train_enc, batches[b], cfg, dist,
                                with_pseudo, pad_id, device)
            step += 1
            sums = [s + p for s, p in zip(sums, parts)]
            records_here += rows
            if dist.main:
                progress((epoch - 1) * steps_per_epoch + b + 1, cfg.epochs * steps_per_epoch)
            if cfg.save_every and step % cfg.save_every == 0 and b + 1 < len(batches):
                save_checkpoint(epoch, b + 1, sums, best_is_current=False)
            on_step(step)
        event: dict[str, Any] = {"event": "epoch", "epoch": epoch, "step": step,
                                 **{f"train_{k}": round(v / len(batches), 5)
                                    for k, v in zip(("loss", "loss_code", "loss_pseudocode"), sums)}}
        if valid_enc is not None:
            valid = evaluate_loss(model, valid_enc, cfg, pad_id, device, dist)
            event.update({f"valid_{k}": round(v, 5) for k, v in valid.items()})
            value = valid["loss"]
            if higher_is_better:
                student.config = pdc_base
                value = code_score(student, select_examples, cfg, dist)
                event[f"valid_{cfg.select_by}"] = round(value, 4)
            improved = best["score"] is None or (value > best["score"] if higher_is_better else value < best["score"])
        else:
            value, improved = None, True  # no valid split: the last epoch is the best
        if improved:
            best = {"epoch": epoch, "score": value, "valid_loss": event.get("valid_loss")}
            best_state = _cpu_state(model)
            bad_epochs = 0
        else:
            bad_epochs += 1
        stopped = bad_epochs >= cfg.patience
        event.update({"best": improved, "seconds": round(time.time() - t0, 2)})
        history.append(event)
        epoch, next_batch, sums = epoch + 1, 0, [0.0, 0.0, 0.0]
        path = save_checkpoint(epoch, 0, sums, best_is_current=improved)
        if path:
            event = {**event, "checkpoint": path}
        say(event)
        if stopped:
            say({"event": "early_stop", "epoch": epoch - 1, "best_epoch": best["epoch"]})

    model.load_state_dict(best_state)
    seconds = round(seconds_before + time.time() - started, 2)
    pdc_config = {
        **pdc_base,
        "data": {"train_records": train_enc.n, "valid_records": valid_enc.n if valid_enc else 0,
                 "skipped_records": data.skipped, "fingerprint": data.fingerprint,
                 "provenance": data.provenance},
        "select_by": cfg.select_by,
        "best_epoch": best["epoch"],
        "best_score": best["score"],
        "best_valid_loss": best["valid_loss"],
        "history": [{k: v for k, v in h.items() if k != "checkpoint"} for h in history],
        "seconds": seconds,
        "world_size": dist.world,
    }
    if dist.main:
        _save_atomically(student, out_dir, pdc_config)
    distributed.barrier(dist)
    done = {"event": "done", "out": out_dir, "best_epoch": best["epoch"],
            "best_valid_loss": best["valid_loss"], "select_by": cfg.select_by, "best_score": best["score"],
            "epochs_run": len(history), "steps": step, "seconds": seconds,
            "records_per_process": distributed.gather_objects(records_here, dist)}
    say(done)
    distributed.teardown(dist)
    return done


def _student(cfg: TrainConfig, data: Dataset, dist, resumed_from: str | None):
    """The student to train: the checkpoint's, a scratch one, or a pre-trained one."""
    from pdc import distributed
    from pdc.students import SCRATCH_SIZES, build_scratch, load_pretrained, train_tokenizer, wrap_tokenizer

    if resumed_from is not None:
        return load_pretrained(os.path.join(resumed_from, "model"))
    if not cfg.student.startswith("scratch:"):
        return load_pretrained(cfg.student)
    size = cfg.student.split(":", 1)[1]
    tok_json = None
    if dist.main and size in SCRATCH_SIZES:  # one tokenizer for every process, trained once
        texts = (t for e in data.train for t in (e.pseudo_src, e.pseudo_tgt, e.code_src, e.code_tgt))
        tok_json = train_tokenizer(texts, SCRATCH_SIZES[size]["vocab_size"]).backend_tokenizer.to_str()
    tok_json = distributed.broadcast_object(tok_json, dist)
    tokenizer = None
    if tok_json:
        from tokenizers import Tokenizer

        tokenizer = wrap_tokenizer(Tokenizer.from_str(tok_json))
    return build_scratch(size, [], cfg.seed, tokenizer=tokenizer)


def _cpu_state(model) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _train_step(model, forward, optimizer, scaler, enc: Encoded, idx: list[int], cfg: TrainConfig,
                dist, with_pseudo: bool, pad_id: int, device: str) -> tuple[list[float], int]:
    """One optimiser step on the records `idx`.

    Returns [loss, loss_code, loss_pseudocode] of the step and how many of its
    records this process ran.

    Every micro-batch adds its summed token losses divided by the token counts
    of the whole step (all processes), so the gradient is that of the step's
    mean losses whatever the number of processes and micro-batches.
    """
    import contextlib

    import torch

    from pdc.distributed import all_sum

    n_code = sum(len(enc.code_tgt[i]) for i in idx)
    n_pseudo = sum(len(enc.pseudo_tgt[i]) for i in idx) if with_pseudo else 0
    shards = micro_batches(enc, idx, dist.world, cfg.grad_accum)[dist.rank]
    work = [m for m in shards if m]
    weight = 1.0
    if not work:  # fewer records than processes: take part in the all-reduce with a zero loss
        work, weight = [idx[:1]], 0.0
    optimizer.zero_grad(set_to_none=True)
    got_code = got_pseudo = 0.0
    for j, micro in enumerate(work):
        last = j == len(work) - 1
        sync = contextlib.nullcontext() if last or forward is model else forward.no_sync()
        with sync:
            with autocast(cfg, device):
                s_code, s_pseudo = task_token_sums(model, make_batch(enc, micro, with_pseudo, pad_id, device), forward)
            part_code = s_code * (weight / n_code)
            part_pseudo = s_pseudo * (weight / n_pseudo) if with_pseudo else s_pseudo * 0.0
            loss = combine(cfg, part_code, part_pseudo) * dist.world  # DDP averages over processes
            (scaler.scale(loss) if scaler is not None else loss).backward()
        got_code += part_code.item()
        got_pseudo += part_pseudo.item()
    if scaler is not None:
        scaler.unscale_(optimizer)
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    l_code, l_pseudo = all_sum([got_code, got_pseudo], dist, device)
    return [float(combine(cfg, l_code, l_pseudo)), l_code, l_pseudo], int(weight) * sum(map(len, work))


def _save_atomically(student, out_dir: str, pdc_config: dict[str, Any]) -> None:
    """Save into a sibling temporary directory, then swap it into place."""
    from pdc.students import save_student

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(os.path.abspath(out_dir))
    for stale in os.listdir(parent):  # left by a run killed while saving
        if stale.startswith(f".{base}.tmp-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = os.path.join(parent, f".{base}.tmp-{os.getpid()}")
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
