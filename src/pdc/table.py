"""The paper's tables from eval summaries and rating aggregates.

Layouts (`--layout`):

    runs    (default) one row per run: TM / SM / DM / CB at top-1 and top-k,
            then exact match; with a baseline, every other row shows its
            change against it: `12.0 (+2.8)`.
    table3  the paper's Table 3: one row per student x teacher, TM / SM / DM /
            CB at top-1 and top-k.
    table4  the paper's Table 4 (ablation): per student x teacher the rows
            distilled, shuffled, replaced, baseline, each but distilled with
            its change against distilled.
    table5  the paper's Table 5 (human rating): mean Correctness /
            Completeness / Fluency per run, from `pdc rate aggregate`.

Who is who: a run named `STUDENT@TEACHER` or `STUDENT@TEACHER@SETTING`
(eval's `--name`; the grid names its runs so) says it directly; otherwise the
student is the summary's `provenance.student`, the teacher the first field of
the most frequent `provenance.data.provenance` key (`teacher/model/prompt_id`)
and the setting `baseline` when the student was trained with `alpha` 0,
`shuffled` / `replaced` when its records carried that ablation, else
`distilled`.

Formats: markdown, csv, latex (booktabs) or rich (the command renders it).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Iterable

from pdc.errors import PdcError, RecordError

METRICS = ("tm", "sm", "dm", "cb")
HEADERS = ["run", "n"] + [f"{m.upper()}@1" for m in METRICS] + [f"{m.upper()}@k" for m in METRICS] + ["EM@1", "EM@k"]
LAYOUTS = ("runs", "table3", "table4", "table5")
FORMATS = ("markdown", "csv", "latex", "rich")
SETTINGS = ("distilled", "shuffled", "replaced", "baseline")
RATING_FIELDS = ("correctness", "completeness", "fluency")


@dataclass
class Table:
    """Headers, rows of cells and a caption: what every format renders."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)  # column group headers (latex), (label, span)


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


def ratings(lines: Iterable) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per-run rating records and the agreement record of `pdc rate aggregate` output."""
    runs, agreement = [], None
    for line in lines:
        if line.error is not None:
            raise line.error
        record = line.record
        if isinstance(record.get("agreement"), dict):
            agreement = record
            continue
        if "run" not in record or not any(f in record for f in RATING_FIELDS):
            continue
        for name in RATING_FIELDS:
            value = record.get(name)
            if value is not None and not isinstance(value, (int, float)):
                raise RecordError(line.where, name, "expected a number or null")
        runs.append(record)
    if not runs:
        raise PdcError("no rating records in the input, pipe `pdc rate aggregate` output in")
    return runs, agreement


# ---------------------------------------------------------------- who is who

def identity(summary: dict[str, Any]) -> tuple[str, str, str]:
    """(student, teacher, setting) of an eval summary; see the module docstring."""
    name = str(summary.get("run", ""))
    parts = name.split("@")
    if len(parts) in (2, 3) and all(parts):
        setting = parts[2] if len(parts) == 3 else _setting_from_provenance(summary)
        return parts[0], parts[1], setting
    prov = summary.get("provenance") or {}
    student = prov.get("student") or name or "-"
    return str(student), _teacher_from_provenance(summary), _setting_from_provenance(summary)


def _data_keys(summary: dict[str, Any]) -> dict[str, int]:
    data = (summary.get("provenance") or {}).get("data") or {}
    keys = data.get("provenance") if isinstance(data, dict) else None
    return keys if isinstance(keys, dict) else {}


def _teacher_from_provenance(summary: dict[str, Any]) -> str:
    keys = _data_keys(summary)
    if not keys:
        scored = (summary.get("provenance") or {}).get("scored_field")
        return f"({scored})" if scored else "-"
    top = max(keys, key=lambda k: (keys[k], k))
    return top.split("/", 1)[0]


def _setting_from_provenance(summary: dict[str, Any]) -> str:
    prov = summary.get("provenance") or {}
    train = prov.get("train") if isinstance(prov.get("train"), dict) else {}
    if train.get("alpha") == 0:
        return "baseline"
    keys = " ".join(_data_keys(summary))
    if "ablation=shuffle" in keys:
        return "shuffled"
    if "ablation=replace" in keys:
        return "replaced"
    return "distilled"


# ---------------------------------------------------------------- layouts

def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _delta(value: Any, base: Any, digits: int) -> str:
    text = _fmt(value, digits)
    if value is not None and base is not None:
        text += f" ({value - base:+.{digits}f})"
    return text


def _k_label(runs: list[dict[str, Any]]) -> str:
    ks = {r.get("k") for r in runs}
    return str(ks.pop()) if len(ks) == 1 and None not in ks else "k"


def rows(runs: list[dict[str, Any]], baseline: str | None = None, digits: int = 1) -> list[list[str]]:
    """Cells of the default layout, one row per run; values on the paper's 0-100 scale."""
    base = None
    if baseline is not None:
        matches = [r for r in runs if r["run"] == baseline]
        if not matches:
            raise PdcError(f"baseline run '{baseline}' is not among: {', '.join(r['run'] for r in runs)}")
        base = matches[0]

    def cell(run: dict, part: str, metric: str) -> str:
        value = run[part].get(metric)
        if base is None or run is base:
            return _fmt(value, digits)
        return _delta(value, base[part].get(metric), digits)

    table = []
    for run in runs:
        row = [str(run["run"]), str(run.get("n", ""))]
        row += [cell(run, "top1", m) for m in METRICS] + [cell(run, "topk", m) for m in METRICS]
        row += [cell(run, "top1", "em"), cell(run, "topk", "em_any")]
        table.append(row)
    return table


def runs_table(runs: list[dict[str, Any]], baseline: str | None = None, digits: int = 1) -> Table:
    return Table(list(HEADERS), rows(runs, baseline, digits),
                 "TM / SM / DM / CB (0-100), top-1 and top-k; EM@k: any beam exact",
                 groups=[("", 2), ("Top-1", 4), ("Top-k", 4), ("Exact", 2)])


def table3(runs: list[dict[str, Any]], digits: int = 1) -> Table:
    """Students x teachers, TM / SM / DM / CB at top-1 and top-k (a later run of a cell wins)."""
    k = _k_label(runs)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        student, teacher, _ = identity(run)
        cells[(student, teacher)] = run
    order = _first_seen([s for s, _ in cells])
    headers = ["Student", "Teacher", "n"] + [f"{m.upper()}@1" for m in METRICS] + [f"{m.upper()}@{k}" for m in METRICS]
    body = []
    for student in order:
        for (s, teacher), run in cells.items():
            if s != student:
                continue
            body.append([student, teacher, str(run.get("n", ""))]
                        + [_fmt(run["top1"].get(m), digits) for m in METRICS]
                        + [_fmt(run["topk"].get(m), digits) for m in METRICS])
    return Table(headers, body, f"Table 3: students x teachers, TM / SM / DM / CB (0-100), top-1 and top-{k}",
                 groups=[("", 3), ("Top-1", 4), (f"Top-{k}", 4)])


def table4(runs: list[dict[str, Any]], digits: int = 1) -> Table:
    """Ablation: per student x teacher, distilled / shuffled / replaced / baseline, deltas against distilled."""
    k = _k_label(runs)
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for run in runs:
        student, teacher, setting = identity(run)
        groups.setdefault((student, teacher), {})[setting] = run
    headers = ["Student", "Teacher", "Setting", "n"] + [f"{m.upper()}@1" for m in METRICS] + [f"{m.upper()}@{k}" for m in METRICS]
    body = []
    for (student, teacher), settings in groups.items():
        base = settings.get("distilled")
        order = [s for s in SETTINGS if s in settings] + sorted(s for s in settings if s not in SETTINGS)
        for setting in order:
            run = settings[setting]
            row = [student, teacher, setting, str(run.get("n", ""))]
            for part in ("top1", "topk"):
                for m in METRICS:
                    value = run[part].get(m)
                    row.append(_fmt(value, digits) if base is None or run is base
                               else _delta(value, base[part].get(m), digits))
            body.append(row)
    return Table(headers, body, f"Table 4: ablation, TM / SM / DM / CB (0-100), change against distilled in brackets",
                 groups=[("", 4), ("Top-1", 4), (f"Top-{k}", 4)])


def table5(runs: list[dict[str, Any]], agreement: dict[str, Any] | None = None, digits: int = 2) -> Table:
    """Human rating: mean Correctness / Completeness / Fluency per run (1-5)."""
    headers = ["Run", "Items", "Ratings", "Correctness", "Completeness", "Fluency"]
    body = [[str(r["run"]), str(r.get("items", "")), str(r.get("ratings", ""))]
            + [_fmt(r.get(f), digits) for f in RATING_FIELDS] for r in runs]
    notes = []
    if agreement is not None:
        agree = agreement["agreement"]
        method = agree.get("method", "agreement")
        notes.append(f"Inter-rater agreement ({method}, {agreement.get('raters', '?')} raters): "
                     + ", ".join(f"{f} {_fmt(agree.get(f), 3)}" for f in RATING_FIELDS))
    return Table(headers, body, "Table 5: human evaluation, mean score (1-5)", notes,
                 groups=[("", 3), ("Mean score", 3)])


def _first_seen(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build(layout: str, lines: Iterable, baseline: str | None = None) -> Table:
    """Read the input lines and build the table of `layout`."""
    if layout not in LAYOUTS:
        raise PdcError(f"unknown layout '{layout}', choose {', '.join(LAYOUTS)}")
    if layout == "table5":
        return table5(*ratings(lines))
    runs = summaries(lines)
    if layout == "table3":
        return table3(runs)
    if layout == "table4":
        return table4(runs)
    return runs_table(runs, baseline)


# ---------------------------------------------------------------- formats

def render(runs_or_table, fmt: str = "markdown", baseline: str | None = None) -> str:
    """The table as markdown, CSV or LaTeX text (eval summaries give the default layout)."""
    table = runs_or_table if isinstance(runs_or_table, Table) else runs_table(runs_or_table, baseline)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.headers)
        writer.writerows(table.rows)
        return buf.getvalue()
    if fmt == "latex":
        return latex(table)
    if fmt != "markdown":
        raise PdcError(f"unknown table format '{fmt}', choose {', '.join(FORMATS)}")
    cells = table.rows
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(table.headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    out = [line(table.headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    text = "\n".join(out) + "\n"
    if table.notes:
        text += "\n" + "\n".join(table.notes) + "\n"
    return text


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def latex(table: Table) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs})."""
    n = len(table.headers)
    numeric = [all(_numeric(r[i]) for r in table.rows) and table.rows for i in range(n)]
    spec = "".join("r" if numeric[i] else "l" for i in range(n))
    out = [r"\begin{table}[ht]", r"\centering"]
    if table.caption:
        out.append(r"\caption{" + latex_escape(table.caption) + "}")
    out += [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    if table.groups and any(label for label, _ in table.groups) and sum(s for _, s in table.groups) == n:
        heads, rules, col = [], [], 1
        for label, span in table.groups:
            heads.append(r"\multicolumn{%d}{c}{%s}" % (span, latex_escape(label)) if label and span > 1
                         else latex_escape(label) if span == 1 else " & ".join([""] * span))
            if label:
                rules.append(r"\cmidrule(lr){%d-%d}" % (col, col + span - 1))
            col += span
        out.append(" & ".join(heads) + r" \\")
        out.append(" ".join(rules))
    out.append(" & ".join(latex_escape(h) for h in table.headers) + r" \\")
    out.append(r"\midrule")
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\smallskip{\footnotesize " + latex_escape(note) + "}" for note in table.notes]
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _numeric(cell: str) -> bool:
    head = cell.split(" (")[0]
    try:
        float(head)
        return True
    except ValueError:
        return head == "-"
