"""pdc prepare: CodeSearchNet rows or harvested Python source in, problem records out."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from pdc.options import OnErrorOpt
from pdc.prepare import Lang, PrepareConfig, SplitMode
from pdc.stream import OnError

Sources = Annotated[
    Optional[List[str]],
    typer.Argument(
        help="CodeSearchNet, MBPP or HumanEval .jsonl/.jsonl.gz files or .json arrays ('-' or nothing "
             "reads stdin), the format told by each row's fields; with --harvest, "
             "Python source directories (default: this interpreter's standard library).",
        show_default=False, metavar="FILE|DIR",
    ),
]


def prepare(
    sources: Sources = None,
    harvest: Annotated[bool, typer.Option(
        "--harvest", help="Harvest docstring/function pairs from Python source instead of reading CodeSearchNet.")] = False,
    split: Annotated[SplitMode, typer.Option(
        "--split", help="resplit: the paper's 80/10/10 split by sha256 of the id; partition: CodeSearchNet's own.")
    ] = PrepareConfig.split,
    lang: Annotated[Optional[List[Lang]], typer.Option(
        "--lang", help="Keep only this language (repeatable; default: all six).", show_default=False,
        metavar="[python|ruby|go|java|javascript|php]")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Stop after this many records.", show_default=False)] = None,
    min_nl_tokens: Annotated[int, typer.Option(
        "--min-nl-tokens", min=0, help="Skip records whose cleaned docstring has fewer tokens.")
    ] = PrepareConfig.min_nl_tokens,
    min_code_lines: Annotated[int, typer.Option(
        "--min-code-lines", min=0, help="--harvest: skip functions with fewer non-blank lines once the docstring is removed.")
    ] = PrepareConfig.min_code_lines,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Turn CodeSearchNet, MBPP or HumanEval rows, or Python source, into problem records (JSONL).

    Each record is {id, lang, nl, code, split, source}: nl is the docstring's
    first paragraph without parameter sections, code the function without its
    docstring. MBPP and HumanEval rows also get `tests` (Python run after
    the code by `pdc eval --exec`) and keep their own split. Skipped rows are
    counted on stderr.

    \b
        pdc prepare --harvest --limit 500 | pdc extract --teacher ast > cot.jsonl
        pdc prepare python_test_0.jsonl.gz --split partition > problems.jsonl
        pdc prepare --harvest ~/src/myproject > mine.jsonl
        pdc prepare mbpp.jsonl | pdc eval --exec --score-field code --split all
    """
    import time
    from collections import Counter

    from pdc import prepare as core
    from pdc.jsonl import Writer
    from pdc.options import input_paths
    from pdc.stream import apply, finish

    langs = tuple(x.value for x in lang) if lang else core.LANGS
    config = PrepareConfig(split=split, langs=langs, min_nl_tokens=min_nl_tokens,
                           min_code_lines=min_code_lines, limit=limit)
    writer = Writer()
    if harvest:
        if split is SplitMode.partition:
            raise typer.BadParameter("harvested code has no partition; use --split resplit", param_hint="--split")
        if "python" not in langs:
            raise typer.BadParameter("--harvest reads Python only; drop --lang or add --lang python",
                                     param_hint="--lang")
        stats: Counter = Counter()
        started = time.perf_counter()
        for record in core.harvest(sources or None, config, stats):
            writer.write(record)
        skipped = {k: v for k, v in stats.items() if k not in ("files", "unparsable files", "functions", "records")}
        _note(f"prepare: {stats['records']} records from {stats['functions']} functions in {stats['files']} files "
              f"({stats['unparsable files']} unparsable) in {time.perf_counter() - started:.1f} s; "
              f"skipped {_counts(skipped)}")
        return
    preparer = core.CsnPreparer(config, note=_note)
    tally = apply(preparer.take(core.read_rows(input_paths(sources))), preparer, writer, on_error)
    _note(f"prepare: {preparer.written} records from {tally.read} rows; "
          f"skipped {_counts(preparer.skipped)}")
    finish(tally, "rows")


def _note(message: str) -> None:
    from pdc.log import console

    console.print(message, markup=False, soft_wrap=True)


def _counts(counts: dict) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) + ")"
