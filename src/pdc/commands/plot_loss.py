"""pdc plot-loss: train's JSONL events -> a loss-curve PNG (the paper's Figure 3)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer


def plot_loss(
    logs: Annotated[List[str], typer.Argument(help="`pdc train` JSONL logs, one per run ('-' = stdin, once).", show_default=False)],
    out: Annotated[str, typer.Option("--out", "-o", help="PNG file to write.")] = ...,
    label: Annotated[Optional[List[str]], typer.Option("--label", help="Run names, in the order of the logs (default: file stem, or the folder of .../NAME/train.jsonl).")] = None,
    part: Annotated[str, typer.Option("--part", help="total (the weighted loss), code or pseudocode.")] = "total",
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
    log_scale: Annotated[bool, typer.Option("--log", help="Logarithmic loss axis.")] = False,
) -> None:
    """Draw training and validation loss per epoch for one or more runs into a PNG (Figure 3).

    Prints one JSON record: the file written and every point drawn.

    \b
        pdc train --out runs/distilled < cot.jsonl > train-distilled.jsonl
        pdc plot-loss train-baseline.jsonl train-distilled.jsonl --out loss.png
    """
    from pdc import plot_loss as core
    from pdc.errors import PdcError
    from pdc.jsonl import Writer, read_lines

    if label and len(label) != len(logs):
        raise PdcError(f"{len(label)} --label for {len(logs)} logs, give one per log or none")
    if logs.count("-") > 1:
        raise PdcError("stdin ('-') can be read once")
    names = label or [("stdin" if p == "-" else core.run_label(p)) for p in logs]
    runs = [core.loss_series(read_lines([path]), name) for path, name in zip(logs, names)]
    Writer().write(core.plot_loss(runs, out, part=part, title=title, log_scale=log_scale))
