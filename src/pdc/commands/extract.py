"""pdc extract: the teacher step."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from pdc.options import Inputs, OnErrorOpt, input_paths
from pdc.stream import OnError


def extract(
    inputs: Inputs = None,
    teacher: Annotated[str, typer.Option("--teacher", "-t", help="Teacher: 'ast' (offline, tree-sitter rules).")] = "ast",
    lang: Annotated[str, typer.Option("--lang", help="Language of a one-off problem.")] = "python",
    code: Annotated[Optional[str], typer.Option("--code", help="Reference code of a one-off problem (the ast teacher needs it).")] = None,
    code_file: Annotated[Optional[str], typer.Option("--code-file", help="Read the one-off problem's code from this file.")] = None,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Annotate problems with a teacher's numbered pseudocode and code.

    Records in (JSONL, files or stdin), the same records out with teacher,
    model, prompt_id, pseudocode, teacher_code and status added. A record the
    teacher cannot annotate becomes a failure record (status "error"); the run
    then exits 3. An argument that is not a file and contains a space is a
    one-off problem:

    \b
        pdc prepare --harvest --limit 100 | pdc extract --teacher ast > cot.jsonl

    \b
        pdc extract --teacher ast "Add one to x." --code 'def inc(x):\\n    return x + 1'
    """
    from pdc.errors import PdcError
    from pdc.extract import extract as extract_step, extract_record, one_off_problem
    from pdc.jsonl import Writer, read_lines
    from pdc.stream import apply, finish
    from pdc.teachers import get_teacher

    the_teacher = get_teacher(teacher)
    problems = [a for a in (inputs or []) if a != "-" and not os.path.exists(a) and " " in a]
    if code_file is not None:
        try:
            with open(code_file, encoding="utf-8") as fh:
                code = fh.read()
        except OSError as e:
            raise PdcError(f"cannot read --code-file {code_file}: {e.strerror}") from None
    if problems:
        if len(problems) != len(inputs or []):
            raise PdcError("give either input files or one problem text, not both", exit_code=2)
        if len(problems) > 1:
            raise PdcError("give one problem at a time (quote it)", exit_code=2)
        out = extract_record(the_teacher, one_off_problem(problems[0], lang, code), "command line")
        _show(out)
        if out["status"] != "ok":
            raise PdcError(f"the {teacher} teacher failed: {out['error']['message']}", exit_code=3)
        return
    failed = 0

    def step(record: dict, where: str):
        nonlocal failed
        for out in extract_step(the_teacher, record, where):
            failed += out["status"] != "ok"
            yield out

    tally = apply(read_lines(input_paths(inputs), tolerant=True), step, Writer(), on_error)
    finish(tally)
    if failed:
        raise PdcError(f"{failed} of {tally.read} record(s) could not be annotated "
                       "(status 'error' in the output)", exit_code=3)


def _show(record: dict) -> None:
    """One-off result: readable on a terminal, one JSONL line otherwise."""
    from pdc.jsonl import Writer

    if not sys.stdout.isatty():
        Writer().write(record)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    out = Console()
    out.print(f"[bold]Problem[/]: {record['nl']}")
    out.print(f"[dim]{record['teacher']} / {record['model']} / {record['prompt_id']}[/]")
    if record["status"] != "ok":
        out.print(f"[red]failed[/]: {record['error']['message']}")
        return
    out.print("[bold]Pseudocode[/]:")
    for i, step in enumerate(record["pseudocode"], 1):
        out.print(f"  {i}. {step}", markup=False)
    out.print("[bold]Code[/]:")
    out.print(Syntax(record["teacher_code"], record["lang"]))
