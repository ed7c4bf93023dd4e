"""Human evaluation (the paper's Table 5): blind rating sheets and their aggregation.

`sheet` samples N problems that every run evaluated, takes each run's top-1
prediction for them, hides which run wrote what behind opaque item ids
(`item-0001`, numbered after a seeded shuffle), and writes

    OUT/sheet.csv    one row per item: item, lang, problem, code, reference,
                     then empty correctness, completeness, fluency (1-5), comment
    OUT/sheet.html   the same items as one self-contained page; a rater fills
                     the scores and downloads the CSV (nothing is sent anywhere)
    OUT/key.json     which run and problem each item is: keep it from raters

`aggregate` reads filled sheets (one per rater) and the key: mean and standard
deviation of each criterion per run over all ratings, and inter-rater
agreement per criterion as Krippendorff's alpha (interval by default; ordinal
or nominal on request), computed over every item that two or more raters
scored.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import random
import statistics
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from pdc.errors import PdcError, RecordError

CRITERIA = ("correctness", "completeness", "fluency")
SCALE = (1, 5)
SHEET_COLUMNS = ["item", "lang", "problem", "code", "reference", *CRITERIA, "comment"]
METRICS = ("interval", "ordinal", "nominal")


# ---------------------------------------------------------------- sheet

def read_run(lines: Iterable, fallback_name: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """(run name, {problem id: record}) of one `pdc eval` output; the name is its summary's `run`."""
    name, records = None, {}
    for line in lines:
        if line.error is not None:
            raise line.error
        record, where = line.record, line.where
        if record.get("summary") is True:
            name = record.get("run") or name
            continue
        for field in ("id", "nl", "code"):
            if not isinstance(record.get(field), str):
                raise RecordError(where, field, "missing or not a string")
        preds = record.get("predictions")
        if not isinstance(preds, list) or not preds or not isinstance(preds[0], str):
            raise RecordError(where, "predictions", "expected a non-empty list of strings (pdc eval output)")
        records[record["id"]] = record
    if not records:
        raise PdcError(f"{fallback_name}: no evaluated records, pass `pdc eval` output")
    return str(name or fallback_name), records


def make_sheet(runs: Sequence[tuple[str, dict[str, dict[str, Any]]]], n: int, seed: int = 0,
               with_reference: bool = True) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Sample `n` problems common to every run; return (sheet rows, key)."""
    names = [name for name, _ in runs]
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise PdcError(f"run '{dup}' given twice, name runs apart with `pdc eval --name`")
    common = sorted(set.intersection(*(set(records) for _, records in runs)))
    if not common:
        raise PdcError("the runs share no problem id, evaluate them on the same records")
    if n < 1:
        raise PdcError("--n must be at least 1")
    rng = random.Random(seed)
    problems = sorted(rng.sample(common, min(n, len(common))))
    pairs = [(name, pid) for pid in problems for name, _ in runs]
    rng.shuffle(pairs)
    by_name = dict(runs)
    rows, items = [], {}
    for i, (name, pid) in enumerate(pairs, start=1):
        record = by_name[name][pid]
        item = f"item-{i:04d}"
        rows.append({"item": item, "lang": str(record.get("lang", "")), "problem": record["nl"],
                     "code": record["predictions"][0], "reference": record["code"] if with_reference else "",
                     **{c: "" for c in CRITERIA}, "comment": ""})
        items[item] = {"run": name, "id": pid}
    key = {"kind": "pdc-rating-key", "seed": seed, "n_problems": len(problems), "runs": names,
           "problems_available": len(common), "scale": list(SCALE), "criteria": list(CRITERIA),
           "items": items}
    return rows, key


def sheet_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, SHEET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>pdc rating sheet</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; }
.item { border: 1px solid #ccc; border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0; }
.item.done { border-color: #2a2; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; white-space: pre; }
label { margin-right: 1.2rem; }
#bar { position: sticky; top: 0; background: #fff; padding: .5rem 0; border-bottom: 1px solid #ddd; }
</style></head><body>
<div id="bar">
<label>Rater <input id="rater" autocomplete="off"></label>
<span id="progress"></span>
<button id="download" type="button">Download CSV</button>
</div>
<p>Rate each code snippet from 1 (poor) to 5 (excellent). <b>Correctness</b>: does it do what the problem
asks? <b>Completeness</b>: does it handle the whole problem? <b>Fluency</b>: is it idiomatic and readable?
Leave a score empty if you cannot judge. Scores stay in this browser (saved as you type) until you download
the CSV; send that file back.</p>
<div id="items"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const CRITERIA = DATA.criteria, STORE = "pdc-rate-" + DATA.sheet;
const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
const root = document.getElementById("items");
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
for (const row of DATA.rows) {
  const box = el("div", {class: "item", id: row.item});
  box.appendChild(el("h3", {}, row.item + (row.lang ? " (" + row.lang + ")" : "")));
  box.appendChild(el("p", {}, row.problem));
  box.appendChild(el("pre", {class: "code"}, row.code));
  if (row.reference) {
    const d = el("details"); d.appendChild(el("summary", {}, "reference solution"));
    d.appendChild(el("pre", {}, row.reference)); box.appendChild(d);
  }
  const s = saved[row.item] || {};
  for (const c of CRITERIA) {
    const lab = el("label", {}, c[0].toUpperCase() + c.slice(1) + " ");
    const sel = el("select", {name: c, "data-item": row.item});
    sel.appendChild(el("option", {value: ""}, "-"));
    for (let v = DATA.scale[0]; v <= DATA.scale[1]; v++) sel.appendChild(el("option", {value: String(v)}, String(v)));
    sel.value = s[c] || "";
    lab.appendChild(sel); box.appendChild(lab);
  }
  const com = el("textarea", {name: "comment", "data-item": row.item, rows: "1", cols: "50", placeholder: "comment"});
  com.value = s.comment || "";
  box.appendChild(com);
  root.appendChild(box);
}
const raterBox = document.getElementById("rater");
raterBox.value = saved.__rater || "";
function collect() {
  const out = {__rater: raterBox.value};
  for (const row of DATA.rows) {
    const r = {};
    for (const e of document.querySelectorAll('[data-item="' + row.item + '"]')) r[e.name] = e.value;
    out[row.item] = r;
  }
  return out;
}
function refresh() {
  const st = collect(); let done = 0;
  for (const row of DATA.rows) {
    const full = CRITERIA.every(c => st[row.item][c]);
    document.getElementById(row.item).classList.toggle("done", full); if (full) done++;
  }
  document.getElementById("progress").textContent = done + " / " + DATA.rows.length + " items rated";
  localStorage.setItem(STORE, JSON.stringify(st));
}
document.addEventListener("change", refresh);
document.addEventListener("input", refresh);
function cell(v) { v = String(v); return /[",\\n\\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
function csvText() {
  const st = collect(), cols = DATA.columns.concat(["rater"]);
  const lines = [cols.join(",")];
  for (const row of DATA.rows) {
    const r = Object.assign({}, row, st[row.item], {rater: st.__rater});
    lines.push(cols.map(c => cell(r[c] === undefined ? "" : r[c])).join(","));
  }
  return lines.join("\\n") + "\\n";
}
document.getElementById("download").addEventListener("click", () => {
  const a = el("a", {download: "ratings-" + (raterBox.value.replace(/[^A-Za-z0-9_.-]+/g, "_") || "rater") + ".csv"});
  a.href = URL.createObjectURL(new Blob([csvText()], {type: "text/csv"}));
  document.body.appendChild(a); a.click(); a.remove();
});
refresh();
</script></body></html>
"""


def sheet_html(rows: list[dict[str, str]], sheet_id: str) -> str:
    """A self-contained page (no network, inline script) to fill the sheet and download the CSV."""
    data = json.dumps({"rows": rows, "criteria": list(CRITERIA), "scale": list(SCALE),
                       "columns": SHEET_COLUMNS, "sheet": sheet_id}, ensure_ascii=False)
    # inside <script>, "</script" or "<!--" in the data would end or break the element:
    # "<" only occurs inside JSON strings, where \u003c is the same character
    return _HTML.replace("__DATA__", data.replace("<", "\\u003c"))


def write_sheet(rows: list[dict[str, str]], key: dict[str, Any], out_dir: str, html_page: bool = True,
                provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write sheet.csv, sheet.html and key.json into `out_dir`; return the record to print."""
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise PdcError(f"{out_dir} exists and is not empty, choose another --out")
    os.makedirs(out_dir, exist_ok=True)
    text = sheet_csv(rows)
    sheet_id = hashlib.sha256(text.encode()).hexdigest()[:16]
    key = {**key, "sheet_sha256_16": sheet_id, "provenance": provenance or {}}
    files = {"sheet": os.path.join(out_dir, "sheet.csv"), "key": os.path.join(out_dir, "key.json")}
    _write(files["sheet"], text)
    _write(files["key"], json.dumps(key, indent=1, ensure_ascii=False) + "\n")
    if html_page:
        files["html"] = os.path.join(out_dir, "sheet.html")
        _write(files["html"], sheet_html(rows, sheet_id))
    return {"out": out_dir, "files": files, "items": len(rows), "problems": key["n_problems"],
            "runs": key["runs"], "seed": key["seed"], "sheet": sheet_id}


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- aggregate

def read_filled(path: str, key: dict[str, Any], text: str | None = None) -> tuple[str, dict[str, dict[str, int]]]:
    """(rater, {item: {criterion: score}}) of one filled sheet; empty cells are unrated."""
    if text is None:
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                text = fh.read()
        except OSError as e:
            raise PdcError(f"cannot open {path}: {e.strerror}, check the path") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("item", *CRITERIA) if c not in (reader.fieldnames or [])]
    if missing:
        raise RecordError(f"{path}:1", missing[0], "column missing: pass a sheet written by `pdc rate sheet`")
    rater, scores = None, {}
    low, high = key.get("scale", SCALE)
    start = reader.line_num + 1  # cells may span lines (code): name the line a row starts on
    for row in reader:
        where, start = f"{path}:{start}", reader.line_num + 1
        item = (row.get("item") or "").strip()
        if item not in key["items"]:
            raise RecordError(where, "item", f"'{item}' is not in the key: a sheet of another key?")
        if item in scores:
            raise RecordError(where, "item", f"'{item}' rated twice in one sheet")
        got = {}
        for c in CRITERIA:
            value = (row.get(c) or "").strip()
            if not value:
                continue
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not (number == int(number) if math.isfinite(number) else False) or not low <= number <= high:
                raise RecordError(where, c, f"'{value}' is not a whole number from {low} to {high}")
            got[c] = int(number)
        scores[item] = got
        rater = rater or (row.get("rater") or "").strip() or None
    return rater or os.path.splitext(os.path.basename(path))[0], scores


def krippendorff_alpha(units: Iterable[Sequence[float]], metric: str = "interval") -> float | None:
    """Krippendorff's alpha over units (each the values its raters gave; unrated left out).

    alpha = 1 - (n - 1) * sum_ck o_ck d_ck / sum_ck n_c n_k d_ck, with o the
    coincidence matrix of pairable values (units with 2+ values, each pair
    weighted 1 / (m_u - 1)), n_c its marginals, n their total, and d the
    squared distance of `metric`: interval (c - k)^2; ordinal (sum of n_g for g
    from c to k, minus (n_c + n_k) / 2)^2; nominal 0 if c == k else 1.
    None when fewer than two values are pairable or every value is the same.
    """
    if metric not in METRICS:
        raise PdcError(f"unknown agreement metric '{metric}', choose {', '.join(METRICS)}")
    coincidence: Counter = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidence[(c, k)] += 1.0 / (m - 1)
    marginals: Counter = Counter()
    for (c, _), o in coincidence.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n < 2 or len(marginals) < 2:
        return None
    levels = sorted(marginals)
    delta = _distance(metric, levels, marginals)
    observed = sum(o * delta(c, k) for (c, k), o in coincidence.items())
    expected = sum(marginals[c] * marginals[k] * delta(c, k) for c in levels for k in levels)
    return 1.0 - (n - 1) * observed / expected


def _distance(metric: str, levels: list, marginals: Counter) -> Callable[[Any, Any], float]:
    if metric == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if metric == "interval":
        return lambda c, k: float(c - k) ** 2
    index = {v: i for i, v in enumerate(levels)}

    def ordinal(c, k):
        lo, hi = sorted((index[c], index[k]))
        between = sum(marginals[levels[g]] for g in range(lo, hi + 1))
        return (between - (marginals[c] + marginals[k]) / 2.0) ** 2
    return ordinal


def aggregate(sheets: list[tuple[str, dict[str, dict[str, int]]]], key: dict[str, Any],
              metric: str = "interval") -> list[dict[str, Any]]:
    """Per-run records (mean and sd of each criterion over all ratings) then the agreement record."""
    raters = [r for r, _ in sheets]
    if len(set(raters)) != len(raters):
        dup = next(r for r in raters if raters.count(r) > 1)
        raise PdcError(f"rater '{dup}' appears in two sheets, give each rater's sheet once "
                       "(the rater column, else the file name, names the rater)")
    out = []
    for run in key["runs"]:
        items = [i for i, v in key["items"].items() if v["run"] == run]
        record: dict[str, Any] = {"run": run, "items": len(items)}
        rated = 0
        sds = {}
        for c in CRITERIA:
            values = [s[i][c] for _, s in sheets for i in items if c in s.get(i, {})]
            rated = max(rated, len(values))
            record[c] = round(statistics.fmean(values), 4) if values else None
            sds[c] = round(statistics.stdev(values), 4) if len(values) > 1 else None
        record["ratings"] = rated
        record["sd"] = sds
        out.append(record)
    agreement: dict[str, Any] = {"method": f"krippendorff-alpha/{metric}"}
    for c in CRITERIA:
        units = [[s[i][c] for _, s in sheets if c in s.get(i, {})] for i in key["items"]]
        alpha = krippendorff_alpha(units, metric)
        agreement[c] = None if alpha is None else round(alpha, 4)
    pairable = sum(1 for i in key["items"] if sum(1 for _, s in sheets if s.get(i)) >= 2)
    out.append({"agreement": agreement, "raters": len(sheets), "rater_names": raters,
                "items": len(key["items"]), "items_rated_twice_or_more": pairable,
                "sheet": key.get("sheet_sha256_16")})
    return out


def read_key(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            key = json.load(fh)
    except OSError as e:
        raise PdcError(f"cannot open {path}: {e.strerror}, pass the key.json `pdc rate sheet` wrote") from None
    except ValueError as e:
        raise PdcError(f"{path}: not valid JSON ({e}), pass the key.json `pdc rate sheet` wrote") from None
    if not isinstance(key, dict) or key.get("kind") != "pdc-rating-key" or not isinstance(key.get("items"), dict):
        raise PdcError(f"{path}: not a pdc rating key, pass the key.json `pdc rate sheet` wrote")
    return key
