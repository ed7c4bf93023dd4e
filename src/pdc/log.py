"""The stderr console: progress, logs and summaries (never data).

rich disables colour when stderr is not a terminal and honours NO_COLOR.
"""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    console.print(message, markup=False)
