"""pdc generate: pseudocode and code for problems, from a PyTorch student or an ONNX export."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from pdc.options import Inputs, ModelDir, OnErrorOpt, input_paths
from pdc.stream import OnError


def generate(
    inputs: Inputs = None,
    model: ModelDir = ...,
    backend: Annotated[str, typer.Option("--backend", help="auto (the torch-free edge runtime if the directory holds *.onnx files, else PyTorch), torch or onnx.")] = "auto",
    task: Annotated[str, typer.Option("--task", help="both (pseudocode, then code), code or pseudocode.")] = "both",
    num_beams: Annotated[int, typer.Option("--num-beams", "-k", help="Beams (1 = greedy).", min=1)] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generated tokens at most per output (0 = the model's max_target_length, else 64).", min=0)] = 0,
    threads: Annotated[int, typer.Option("--threads", help="Intra-op threads (0 = the library's default).", min=0)] = 0,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Write the student's pseudocode and code for each problem (field nl), or for one problem text.

    Records in (JSONL, files or stdin), one record out per problem: id, nl,
    pseudocode (the steps), code, seconds and generated_by (model, backend,
    precision, beams). An ONNX directory (pdc export's OUT/int8 or OUT/fp32)
    runs without torch. An argument that is not a file and contains a space is
    a one-off problem, shown readably on a terminal (JSONL when piped):

    \b
        pdc generate --model runs/demo/export/int8 "Reverse the string s."

    \b
        pdc prepare --harvest --limit 5 | pdc generate --model runs/demo/export/int8 > generated.jsonl
    """
    from pdc import generate as core
    from pdc.errors import PdcError
    from pdc.jsonl import Writer, read_lines
    from pdc.stream import apply, finish

    cfg = core.GenerateConfig(backend=backend, task=task, num_beams=num_beams,
                              max_new_tokens=max_new_tokens or None, threads=threads or None)
    cfg.check()
    problems = [a for a in (inputs or []) if a != "-" and not os.path.exists(a) and " " in a]
    if problems and len(problems) != len(inputs or []):
        raise PdcError("give either input files or one problem text, not both", exit_code=2)
    if len(problems) > 1:
        raise PdcError("give one problem at a time (quote it)", exit_code=2)
    paths = None if problems else input_paths(inputs)  # refuse a terminal before loading the model
    gen = core.Generator(model, cfg)
    try:
        if problems:
            _show(gen.record({"id": "command line", "nl": problems[0]}, "command line"))
            return
        lines = read_lines(paths, tolerant=on_error is not OnError.stop)
        tally = apply(lines, lambda record, where: iter([gen.record(record, where)]), Writer(), on_error)
    finally:
        gen.close()
    finish(tally, "problems")


def _show(record: dict) -> None:
    """One-off result: readable on a terminal, one JSONL line otherwise."""
    from pdc.jsonl import Writer

    if not sys.stdout.isatty():
        Writer().write(record)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    out = Console()
    by = record["generated_by"]
    out.print(f"[bold]Problem[/]: {record['nl']}", highlight=False)
    out.print(f"[dim]{by['model']} ({by['backend']} {by['precision']}, {record['seconds']:.2f} s)[/]")
    if record["pseudocode"] is not None:
        out.print("[bold]Pseudocode[/]:")
        for i, step in enumerate(record["pseudocode"], 1):
            out.print(f"  {i}. {step}", markup=False, highlight=False)
    if record["code"] is not None:
        out.print("[bold]Code[/]:")
        out.print(Syntax(record["code"], "python"))
