"""pdc table: eval summaries (or rating aggregates) -> the paper's tables."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from pdc.options import Inputs, input_paths


def table(
    inputs: Inputs = None,
    layout: Annotated[str, typer.Option("--layout", "-l", help="runs (one row per run), table3 (students x teachers), table4 (ablation), table5 (human rating, from `pdc rate aggregate`).")] = "runs",
    baseline: Annotated[Optional[str], typer.Option("--baseline", "-b", help="Layout runs: run name to compare every other row against.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, csv, latex (booktabs) or rich.")] = "markdown",
) -> None:
    """Print the paper's tables (3: runs x TM/SM/DM/CB at top-1 and top-k, 4: ablation, 5: human rating).

    Reads `pdc eval` output (only its summary lines are used), or for table5
    `pdc rate aggregate` output, from files or stdin.

    \b
        cat runs/demo/eval-*.jsonl | pdc table --baseline baseline
        cat runs/grid/cells/*/*/eval.jsonl | pdc table --layout table3 --format latex
    """
    from pdc import table as core
    from pdc.errors import PdcError
    from pdc.jsonl import read_lines

    if fmt not in core.FORMATS:
        raise PdcError(f"unknown table format '{fmt}', choose {', '.join(core.FORMATS)}")
    if baseline is not None and layout != "runs":
        raise PdcError("--baseline applies to --layout runs; table4 compares against its distilled row")
    built = core.build(layout, read_lines(input_paths(inputs)), baseline)
    if fmt == "rich":
        from rich.console import Console
        from rich.table import Table

        t = Table(*built.headers, title=built.caption)
        for row in built.rows:
            t.add_row(*row)
        console = Console(file=sys.stdout)
        console.print(t)
        for note in built.notes:
            console.print(note, markup=False)
        return
    sys.stdout.write(core.render(built, fmt))
