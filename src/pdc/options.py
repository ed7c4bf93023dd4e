"""Options shared by several commands, defined once so they mean the same everywhere."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from pdc.stream import OnError

Inputs = Annotated[
    Optional[List[str]],
    typer.Argument(help="JSONL input files (.jsonl or .jsonl.gz); '-' or nothing reads stdin.",
                   show_default=False),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; same seed, same output.")]
ModelDir = Annotated[str, typer.Option("--model", "-m", help="Trained student: a pdc/Hugging Face model directory.")]
OnErrorOpt = Annotated[
    OnError,
    typer.Option("--on-error", help="Bad record: stop (exit 1), skip it, or emit an error record in its place (exit 3)."),
]


def input_paths(inputs: list[str] | None) -> list[str]:
    """The input paths a command reads, stdin when none are given."""
    from pdc.jsonl import check_not_terminal

    paths = list(inputs) if inputs else ["-"]
    check_not_terminal(paths)
    return paths
