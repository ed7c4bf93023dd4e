"""pdc table: the paper's layout from eval summaries."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pdc import table as core
from pdc.cli import app
from pdc.errors import PdcError
from pdc.jsonl import Line


def summary(run: str, tm: float, cb: float) -> dict:
    part = {"tm": tm, "sm": 30.0, "dm": 40.0, "cb": cb, "em": 1.0, "em_any": 2.0}
    return {"summary": True, "run": run, "n": 10, "top1": dict(part), "topk": {**part, "tm": tm + 1}}


def test_markdown_rows_and_deltas_against_baseline():
    runs = [summary("baseline", 9.2, 22.2), summary("distilled", 16.0, 32.5)]
    text = core.render(runs, "markdown", baseline="baseline")
    lines = text.splitlines()
    assert lines[0].startswith("| run ") and "TM@1" in lines[0] and "CB@k" in lines[0]
    assert lines[1].startswith("|---")
    assert "| baseline " in lines[2] and "9.2 " in lines[2]
    assert "16.0 (+6.8)" in lines[3] and "32.5 (+10.3)" in lines[3]


def test_csv_has_header_and_one_row_per_run():
    text = core.render([summary("a", 1, 2), summary("b", 3, 4)], "csv")
    rows = text.splitlines()
    assert rows[0].split(",")[:3] == ["run", "n", "TM@1"]
    assert len(rows) == 3


def test_unknown_baseline_is_an_error():
    with pytest.raises(PdcError, match="baseline run 'x'"):
        core.rows([summary("a", 1, 2)], baseline="x")


def test_per_record_lines_are_ignored_and_bad_summary_named():
    lines = [Line("f:1", {"id": "r1", "predictions": ["x"]}), Line("f:2", summary("a", 1, 2))]
    assert [r["run"] for r in core.summaries(lines)] == ["a"]
    with pytest.raises(Exception, match="f:3, field 'top1'"):
        core.summaries([Line("f:3", {"summary": True, "top1": {"tm": 1}})])


def test_cli_reads_eval_output_from_stdin():
    text = json.dumps({"id": "r"}) + "\n" + json.dumps(summary("distilled", 16.0, 32.5)) + "\n"
    result = CliRunner().invoke(app, ["table"], input=text)
    assert result.exit_code == 0, result.output
    assert "distilled" in result.stdout and "32.5" in result.stdout


def test_cli_without_summaries_fails_clearly():
    result = CliRunner().invoke(app, ["table"], input=json.dumps({"id": "r"}) + "\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no eval summaries")


# ---------------------------------------------------------------- layouts table3 / table4 / table5

def full_summary(run: str, tm: float, *, student="scratch:tiny", teacher_key="ast/tree-sitter-python 0.21.0/ast-v1",
                 alpha=0.5, k=5) -> dict:
    part = {"tm": tm, "sm": 30.0, "dm": None, "cb": 25.25, "em": 0.0, "em_any": 0.0}
    return {"summary": True, "run": run, "n": 40, "k": k, "top1": dict(part), "topk": {**part, "tm": tm + 2},
            "provenance": {"student": student, "seed": 0, "train": {"alpha": alpha},
                           "data": {"provenance": {teacher_key: 30}}}}


def test_identity_from_name_convention_and_from_provenance():
    assert core.identity(full_summary("small@deepseek", 1)) == ("small", "deepseek", "distilled")
    assert core.identity(full_summary("small@deepseek@shuffled", 1)) == ("small", "deepseek", "shuffled")
    assert core.identity(full_summary("x", 1)) == ("scratch:tiny", "ast", "distilled")
    assert core.identity(full_summary("x", 1, alpha=0)) == ("scratch:tiny", "ast", "baseline")
    replaced = full_summary("x", 1, teacher_key="deepseek/deepseek-chat/paper-v1/python/3-shot/ablation=replace")
    assert core.identity(replaced) == ("scratch:tiny", "deepseek", "replaced")
    teacher_scored = {"run": "teacher", "provenance": {"scored_field": "teacher_code"}}
    assert core.identity(teacher_scored) == ("teacher", "(teacher_code)", "distilled")


GOLDEN_TABLE3 = """\
| Student | Teacher  | n  | TM@1 | SM@1 | DM@1 | CB@1 | TM@5 | SM@5 | DM@5 | CB@5 |
|---------|----------|----|------|------|------|------|------|------|------|------|
| tiny    | ast      | 40 | 10.0 | 30.0 | -    | 25.2 | 12.0 | 30.0 | -    | 25.2 |
| tiny    | deepseek | 40 | 11.5 | 30.0 | -    | 25.2 | 13.5 | 30.0 | -    | 25.2 |
| small   | ast      | 40 | 20.0 | 30.0 | -    | 25.2 | 22.0 | 30.0 | -    | 25.2 |
"""


def test_table3_golden_markdown():
    runs = [full_summary("tiny@ast", 10), full_summary("small@ast", 20), full_summary("tiny@deepseek", 11.5)]
    assert core.render(core.table3(runs), "markdown") == GOLDEN_TABLE3


def test_table3_csv_and_latex():
    runs = [full_summary("tiny@ast", 10), full_summary("small@a_b", 20)]
    text = core.render(core.table3(runs), "csv")
    assert text.splitlines()[0] == "Student,Teacher,n,TM@1,SM@1,DM@1,CB@1,TM@5,SM@5,DM@5,CB@5"
    assert text.splitlines()[2] == "small,a_b,40,20.0,30.0,-,25.2,22.0,30.0,-,25.2"
    tex = core.render(core.table3(runs), "latex")
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[ht]" and lines[-1] == r"\end{table}"
    assert r"\begin{tabular}{llrrrrrrrrr}" in lines and r"\toprule" in lines and r"\bottomrule" in lines
    assert r" & \multicolumn{4}{c}{Top-1} & \multicolumn{4}{c}{Top-5} \\" in tex
    assert r"small & a\_b & 40 & 20.0 & 30.0 & - & 25.2 & 22.0 & 30.0 & - & 25.2 \\" in lines
    assert r"\cmidrule(lr){4-7} \cmidrule(lr){8-11}" in lines


def test_table4_orders_settings_and_shows_deltas_against_distilled():
    runs = [full_summary("tiny@ast@baseline", 9.2), full_summary("tiny@ast@shuffled", 12.5),
            full_summary("tiny@ast@distilled", 16.0), full_summary("tiny@ast@replaced", 11.0)]
    table = core.table4(runs)
    assert [r[2] for r in table.rows] == ["distilled", "shuffled", "replaced", "baseline"]
    assert table.rows[0][4] == "16.0"
    assert table.rows[1][4] == "12.5 (-3.5)" and table.rows[1][8] == "14.5 (-3.5)"
    assert table.rows[3][4] == "9.2 (-6.8)"
    assert table.rows[3][6] == "-"  # DM undefined: no delta


def test_table4_settings_from_provenance_without_names():
    runs = [full_summary("a", 10, alpha=0), full_summary("b", 12),
            full_summary("c", 11, teacher_key="ast/tree-sitter-python 0.21.0/ast-v1/ablation=shuffle")]
    table = core.table4(runs)
    assert [(r[0], r[1], r[2]) for r in table.rows] == [
        ("scratch:tiny", "ast", "distilled"), ("scratch:tiny", "ast", "shuffled"), ("scratch:tiny", "ast", "baseline")]
    assert table.rows[2][4] == "10.0 (-2.0)"


def rating_lines() -> list[Line]:
    records = [
        {"run": "distilled", "items": 10, "ratings": 30, "correctness": 3.5, "completeness": 3.25, "fluency": 4.0},
        {"run": "baseline", "items": 10, "ratings": 30, "correctness": 2.0, "completeness": None, "fluency": 3.125},
        {"agreement": {"method": "krippendorff-alpha/interval", "correctness": 0.8123, "completeness": 0.5,
                       "fluency": None}, "raters": 3, "items": 20},
    ]
    return [Line(f"r:{i}", r) for i, r in enumerate(records, 1)]


GOLDEN_TABLE5 = """\
| Run       | Items | Ratings | Correctness | Completeness | Fluency |
|-----------|-------|---------|-------------|--------------|---------|
| distilled | 10    | 30      | 3.50        | 3.25         | 4.00    |
| baseline  | 10    | 30      | 2.00        | -            | 3.12    |

Inter-rater agreement (krippendorff-alpha/interval, 3 raters): correctness 0.812, completeness 0.500, fluency -
"""


def test_table5_golden_markdown():
    assert core.render(core.build("table5", rating_lines()), "markdown") == GOLDEN_TABLE5


def test_table5_needs_rating_records():
    with pytest.raises(PdcError, match="no rating records"):
        core.build("table5", [Line("f:1", summary("a", 1, 2))])
    with pytest.raises(Exception, match="f:1, field 'fluency'"):
        core.build("table5", [Line("f:1", {"run": "a", "fluency": "good"})])


def test_cli_layouts_and_formats():
    text = "".join(json.dumps(full_summary(n, 10)) + "\n" for n in ("tiny@ast", "small@ast"))
    result = CliRunner().invoke(app, ["table", "--layout", "table3", "--format", "latex"], input=text)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(r"\begin{table}") and "tiny & ast & 40" in result.stdout
    result = CliRunner().invoke(app, ["table", "--layout", "table9"], input=text)
    assert result.exit_code == 1 and "unknown layout 'table9'" in result.stderr
    result = CliRunner().invoke(app, ["table", "--format", "html"], input=text)
    assert result.exit_code == 1 and "unknown table format 'html'" in result.stderr
    result = CliRunner().invoke(app, ["table", "--layout", "table4", "--baseline", "x"], input=text)
    assert result.exit_code == 1 and "--baseline applies to --layout runs" in result.stderr
    result = CliRunner().invoke(app, ["table", "--layout", "table3", "--format", "rich"], input=text)
    assert result.exit_code == 0 and "Table 3" in result.stdout
