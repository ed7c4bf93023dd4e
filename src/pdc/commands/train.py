"""pdc train: the multi-task student."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pdc.options import Inputs, Seed, input_paths


def train(
    inputs: Inputs = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output model directory.")] = ...,
    student: Annotated[str, typer.Option("--student", help="Hub id or local HF seq2seq directory (Salesforce/codet5-base, saikatc/NatGen), or scratch:tiny|small.")] = "scratch:small",
    alpha: Annotated[float, typer.Option("--alpha", help="Weight of the pseudocode loss; 0 = undistilled baseline.")] = 0.5,
    beta: Annotated[float, typer.Option("--beta", help="Weight of the code loss.")] = 0.5,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (paper: 1e-5; scratch students want ~1e-3).")] = 1e-5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per step.")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", help="Most epochs to run.")] = 30,
    patience: Annotated[int, typer.Option("--patience", help="Stop after this many epochs without a better valid loss.")] = 3,
    seed: Seed = 0,
    max_source_length: Annotated[int, typer.Option("--max-source-length", help="Input tokens kept.")] = 256,
    max_target_length: Annotated[int, typer.Option("--max-target-length", help="Target tokens kept.")] = 256,
    code_input: Annotated[str, typer.Option("--code-input", help="Code task input: nl, or nl+pseudocode (teacher steps after a [plan] marker).")] = "nl",
    code_target: Annotated[str, typer.Option("--code-target", help="Code task target: teacher (teacher_code) or reference (code).")] = "teacher",
    max_pseudocode_length: Annotated[int, typer.Option("--max-pseudocode-length", help="Pseudocode target tokens kept (0 = --max-target-length).")] = 0,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-batches per step in each process; the step still covers --batch-size records.")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="fp32, bf16 (autocast, CPU or CUDA) or fp16 (autocast + loss scaling, CUDA only).")] = "fp32",
    dropout: Annotated[Optional[float], typer.Option("--dropout", help="Set every dropout probability of the student (default: the student's own).")] = None,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute activations in the backward pass: far less memory, about 30% more time.")] = False,
    select_by: Annotated[str, typer.Option("--select-by", help="Best epoch by valid loss (paper), or by greedy-decoded code: bleu or codebleu.")] = "loss",
    select_samples: Annotated[int, typer.Option("--select-samples", help="Valid records decoded for --select-by bleu|codebleu.")] = 64,
    checkpoint_dir: Annotated[Optional[str], typer.Option("--checkpoint-dir", help="Where checkpoints go (default: OUT.checkpoints next to --out).")] = None,
    save_every: Annotated[int, typer.Option("--save-every", help="Also checkpoint every N steps (0 = once per epoch).")] = 0,
    keep_checkpoints: Annotated[int, typer.Option("--keep-checkpoints", help="Newest checkpoints kept (0 = write none).")] = 2,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint that verifies (start fresh if there is none).")] = False,
    max_train_records: Annotated[int, typer.Option("--max-train-records", help="Use at most N train records (0 = all).")] = 0,
    max_valid_records: Annotated[int, typer.Option("--max-valid-records", help="Use at most N valid records (0 = all).")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out directory.")] = False,
) -> None:
    """Train a student on teacher pseudocode and code (loss = alpha*L_pseudocode + beta*L_code).

    Reads extract output (records with split train/valid, status ok); writes a
    Hugging Face model directory with pdc_config.json (config, seed, data
    fingerprint, teachers). Progress: JSONL events on stdout, a bar on stderr.
    Checkpoints every epoch (--save-every N: also every N steps); --resume
    continues a killed run exactly. Under `torchrun --nproc_per_node N` it
    trains data-parallel with the same global batch.

    \b
        pdc prepare --harvest --limit 400 | pdc extract -t ast | pdc train --student scratch:tiny --lr 1e-3 --epochs 2 --out runs/tiny
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pdc import train as core
    from pdc.jsonl import Writer, read_lines
    from pdc.log import console

    cfg = core.TrainConfig(
        student=student, alpha=alpha, beta=beta, lr=lr, batch_size=batch_size, epochs=epochs,
        patience=patience, seed=seed, max_source_length=max_source_length,
        max_target_length=max_target_length, code_input=code_input, code_target=code_target,
        max_train_records=max_train_records, max_valid_records=max_valid_records, device=device,
        max_pseudocode_length=max_pseudocode_length, grad_accum=grad_accum, precision=precision,
        dropout=dropout, gradient_checkpointing=gradient_checkpointing, select_by=select_by, select_samples=select_samples, save_every=save_every,
        keep_checkpoints=keep_checkpoints,
    )
    cfg.check()
    data = core.examples_from(core.read_training_records(read_lines(input_paths(inputs))), cfg)
    writer = Writer()
    with Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)
        core.train(data, cfg, out, overwrite=overwrite, resume=resume, checkpoint_dir=checkpoint_dir,
                   emit=writer.write,
                   progress=lambda done, total: bar.update(task, completed=done, total=total))
