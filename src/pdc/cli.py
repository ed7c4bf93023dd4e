"""The `pdc` entry point: registers the commands and applies the error policy.

Each command lives in `pdc.commands.<name>` and is a thin shell over the core
module of the same name. Heavy libraries (torch, transformers) are imported
inside the commands so that `pdc --help` is instant.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

import typer

from pdc.errors import EXIT_INTERRUPTED, PdcError

app = typer.Typer(
    name="pdc",
    help=(
        "Distil the pseudocode reasoning of large code models into small students.\n\n"
        "Every command reads JSONL on stdin (or files) and writes JSONL on stdout:\n\n"
        "\b\n    pdc prepare --harvest | pdc extract --teacher ast | pdc shuffle-cot --mode shuffle > cot.jsonl\n\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 3 finished with failed records, 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

COMMANDS = ["prepare", "extract", "shuffle_cot", "train", "eval", "export", "bench", "table", "plot_loss",
            "rate", "generate"]


def _with_error_policy(command):
    """Apply the one error policy around a command.

    PdcError -> `Error: ...` on one stderr line and its exit code; Ctrl-C ->
    exit 130; a closed stdout (`| head -1`) -> quiet exit 0.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PdcError as e:
            if os.environ.get("PDC_DEBUG") == "1":
                raise
            _print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
            raise typer.Exit(0) from None

    return run


def _register() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"pdc.commands.{name}")
        app.command(name.replace("_", "-"))(_with_error_policy(getattr(module, name)))


_register()


def _quiet_broken_pipe() -> None:
    # The CPython recipe (signal module docs): point stdout at devnull so the
    # interpreter's final flush does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main() -> None:
    """Run pdc (typer reports usage errors with exit 2)."""
    try:
        app()
    except BrokenPipeError:  # stdout closed while typer itself was writing (help text)
        _quiet_broken_pipe()
        sys.exit(0)


def _print_error(message: str) -> None:
    try:
        print(f"Error: {message}", file=sys.stderr)
    except BrokenPipeError:
        pass
