"""pdc extract: one output record per input record, success or failure."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pdc.cli import app

FLATTEN = '''def flatten(items):
    result = []
    for item in items:
        if isinstance(item, list):
            result.extend(flatten(item))
        else:
            result.append(item)
    return result
'''


def problem(i: int, code: str = FLATTEN, lang: str = "python") -> dict:
    return {"id": f"p{i}", "lang": lang, "nl": "Flatten a nested list.", "code": code, "split": "train"}


def invoke(args, records):
    text = "".join(json.dumps(r) + "\n" for r in records)
    return CliRunner().invoke(app, ["extract", *args], input=text)


def test_records_in_records_out_with_provenance():
    result = invoke(["--teacher", "ast"], [problem(1), problem(2)])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["p1", "p2"]
    for o in out:
        assert o["teacher"] == "ast" and o["prompt_id"] == "ast-v1"
        assert o["model"].startswith("tree-sitter-python")
        assert o["status"] == "ok" and "error" not in o
        assert o["teacher_code"] == FLATTEN
        assert o["pseudocode"][0].startswith("Define a function")
        assert o["split"] == "train" and o["nl"] == "Flatten a nested list."


def test_teacher_failure_is_a_failure_record_and_exit_3():
    result = invoke([], [problem(1), problem(2, code="def broken(:\n  ((("), problem(3, lang="cobol")])
    assert result.exit_code == 3
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["p1", "p2", "p3"]
    assert out[0]["status"] == "ok"
    for o in out[1:]:
        assert o["status"] == "error" and o["pseudocode"] is None and o["teacher_code"] is None
        assert o["error"]["retryable"] is False and o["error"]["message"]
    assert out[2]["error"]["type"] == "unsupported_language"
    assert "2 of 3 record(s) could not be annotated" in result.stderr


def test_missing_field_names_line_and_field():
    bad = problem(2)
    del bad["nl"]
    result = invoke([], [problem(1), bad])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: stdin:2, field 'nl': missing"
    assert json.loads(result.stdout)["id"] == "p1"


def test_on_error_skip_and_emit():
    bad = problem(2)
    bad["lang"] = 7
    skipped = invoke(["--on-error", "skip"], [problem(1), bad, problem(3)])
    assert skipped.exit_code == 3
    assert [json.loads(x)["id"] for x in skipped.stdout.splitlines()] == ["p1", "p3"]
    emitted = invoke(["--on-error", "emit"], [problem(1), bad, problem(3)])
    out = [json.loads(x) for x in emitted.stdout.splitlines()]
    assert [o["id"] for o in out] == ["p1", "p2", "p3"]
    assert out[1]["status"] == "error" and out[1]["error"]["field"] == "lang"


def test_one_off_problem_from_the_command_line():
    result = CliRunner().invoke(app, ["extract", "--teacher", "ast", "Flatten a nested list.", "--code", FLATTEN])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # not a terminal: JSONL
    assert record["id"] == "cli-1" and record["status"] == "ok"
    assert any("Iterate" in step or "For each" in step for step in record["pseudocode"])


def test_one_off_problem_without_code_fails_clearly_for_ast():
    result = CliRunner().invoke(app, ["extract", "Flatten a nested list."])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: the ast teacher failed")


def test_unknown_teacher_is_an_error():
    result = invoke(["--teacher", "gpt-17"], [problem(1)])
    assert result.exit_code == 2
    assert "unknown teacher 'gpt-17'" in result.stderr
