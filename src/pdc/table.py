"""The paper's Table 3 / Table 4 layout from eval summaries.

Rows are runs (the summary's `run`), columns TM / SM / DM / CB for the top-1
beam and for the top-k choice, then exact match. With a baseline row, every
other row also shows its change against it: `12.0 (+2.8)`.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable

from pdc.errors import PdcError, RecordError

METRICS = ("tm", "sm", "dm", "cb")
HEADERS = ["run", "n"] + [f"{m.upper()}@1" for m in METRICS] + [f"{m.upper()}@k" for m in METRICS] + ["EM@1", "EM@k"]


def summaries(lines: Iterable) -> list[dict[str, Any]]:
    """The summary records among eval output lines (per-record lines are skipped)."""
    found = []
    for line in lines:
        if line.error is not None:
            raise line.error
        record = line.record
        if record.get("summary") is not True:
            continue
        for part in ("top1", "topk"):
            if not isinstance(record.get(part), dict) or any(m not in record[part] for m in METRICS):
                raise RecordError(line.where, part, f"expected an object with {', '.join(METRICS)}")
        record.setdefault("run", line.where)
        found.append(record)
    if not found:
        raise PdcError("no eval summaries in the input, pipe `pdc eval` output (its last line) in")
    return found


def rows(runs: list[dict[str, Any]], baseline: str | None = None, digits: int = 1) -> list[list[str]]:
    """Table cells, one row per run; values on the paper's 0-100 scale."""
    base = None
    if baseline is not None:
        matches = [r for r in runs if r["run"] == baseline]
        if not matches:
            raise PdcError(f"baseline run '{baseline}' is not among: {', '.join(r['run'] for r in runs)}")
        base = matches[0]

    def cell(run: dict, part: str, metric: str) -> str:
        value = run[part].get(metric)
        if value is None:
            return "-"
        text = f"{value:.{digits}f}"
        if base is not None and run is not base and base[part].get(metric) is not None:
            text += f" ({value - base[part][metric]:+.{digits}f})"
        return text

    table = []
    for run in runs:
        row = [str(run["run"]), str(run.get("n", ""))]
        row += [cell(run, "top1", m) for m in METRICS] + [cell(run, "topk", m) for m in METRICS]
        row += [cell(run, "top1", "em"), cell(run, "topk", "em_any")]
        table.append(row)
    return table


def render(runs: list[dict[str, Any]], fmt: str = "markdown", baseline: str | None = None) -> str:
    """The table as markdown or CSV text."""
    cells = rows(runs, baseline)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADERS)
        writer.writerows(cells)
        return buf.getvalue()
    if fmt != "markdown":
        raise PdcError(f"unknown table format '{fmt}', choose markdown, csv or rich")
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(HEADERS)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    out = [line(HEADERS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out) + "\n"
