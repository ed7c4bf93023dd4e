"""pdc table: eval summaries -> the paper's table."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from pdc.options import Inputs, input_paths


def table(
    inputs: Inputs = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", "-b", help="Run name to compare every other row against.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, csv or rich.")] = "markdown",
) -> None:
    """Print Table 3/4 (runs x TM/SM/DM/CB at top-1 and top-k) from eval summaries.

    Reads `pdc eval` output (only its summary lines are used), from files or stdin.

    \b
        cat runs/demo/eval-*.jsonl | pdc table --baseline baseline
    """
    from pdc import table as core
    from pdc.jsonl import read_lines

    runs = core.summaries(read_lines(input_paths(inputs)))
    if fmt == "rich":
        from rich.console import Console
        from rich.table import Table

        t = Table(*core.HEADERS, title="pdc: TM / SM / DM / CB (0-100), top-1 and top-k")
        for row in core.rows(runs, baseline):
            t.add_row(*row)
        Console(file=sys.stdout).print(t)
        return
    sys.stdout.write(core.render(runs, fmt, baseline))
