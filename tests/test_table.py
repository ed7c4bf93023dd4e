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
