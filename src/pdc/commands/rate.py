"""pdc rate: blind human-rating sheets from eval outputs, and their aggregation (Table 5)."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated, List, Optional

import typer

from pdc.options import Seed


class Action(str, Enum):
    sheet = "sheet"
    aggregate = "aggregate"


def rate(
    action: Annotated[Action, typer.Argument(help="sheet: write a blind rating sheet; aggregate: score filled sheets.")],
    files: Annotated[Optional[List[str]], typer.Argument(help="sheet: `pdc eval` outputs, one per run; aggregate: filled sheets (CSV), one per rater.", show_default=False)] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="sheet: folder for sheet.csv, sheet.html and key.json.")] = None,
    n: Annotated[int, typer.Option("--n", help="sheet: problems sampled (each rated once per run).")] = 50,
    seed: Seed = 0,
    reference: Annotated[bool, typer.Option("--reference/--no-reference", help="sheet: show raters the reference solution.")] = True,
    html: Annotated[bool, typer.Option("--html/--no-html", help="sheet: also write the self-contained HTML page.")] = True,
    key: Annotated[Optional[str], typer.Option("--key", help="aggregate: the key.json `pdc rate sheet` wrote.")] = None,
    metric: Annotated[str, typer.Option("--metric", help="aggregate: Krippendorff's alpha distance: interval, ordinal or nominal.")] = "interval",
) -> None:
    """Human evaluation (Table 5): blind rating sheets, then mean scores per run with agreement.

    `sheet` samples --n problems every run evaluated, shuffles their top-1
    outputs under --seed behind opaque item ids and writes OUT/sheet.csv,
    OUT/sheet.html and OUT/key.json (keep the key from raters). `aggregate`
    prints, per run, mean Correctness / Completeness / Fluency (1-5), then
    Krippendorff's alpha per criterion, as JSONL.

    \b
        pdc rate sheet eval-baseline.jsonl eval-distilled.jsonl --n 50 --out rating/
        pdc rate aggregate --key rating/key.json alice.csv bob.csv | pdc table --layout table5
    """
    from pdc import rate as core
    from pdc.errors import PdcError
    from pdc.jsonl import Writer, read_lines

    files = files or []
    if action is Action.sheet:
        if not files or out is None:
            raise PdcError("rate sheet needs eval outputs (files) and --out FOLDER")
        runs = [core.read_run(read_lines([path]), os.path.splitext(os.path.basename(path))[0]) for path in files]
        rows, made = core.make_sheet(runs, n, seed, reference)
        provenance = {"inputs": files, "n": n, "seed": seed, "reference": reference}
        Writer().write(core.write_sheet(rows, made, out, html, provenance))
        return
    if key is None or not files:
        raise PdcError("rate aggregate needs --key key.json and the filled sheets (files)")
    the_key = core.read_key(key)
    sheets = [core.read_filled(path, the_key) for path in files]
    writer = Writer()
    for record in core.aggregate(sheets, the_key, metric):
        writer.write(record)
