"""pdc generate: pseudocode and code per problem, PyTorch or ONNX, JSONL or a one-off text."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pdc import generate as core
from pdc.cli import app

PROBLEMS = [{"id": "a", "nl": "Reverse the string s."}, {"id": "b", "nl": "Return the sum of a and b."}]
KEYS = {"id", "nl", "pseudocode", "code", "seconds", "generated_by"}


def invoke(args, stdin=""):
    result = CliRunner().invoke(app, ["generate", *args], input=stdin)
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_torch_student_writes_pseudocode_then_code(tiny_student_dir):
    import torch

    threads = torch.get_num_threads()
    other = "1" if threads != 1 else "2"
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "5", "--threads", other], jsonl(PROBLEMS))
    assert result.exit_code == 0, result.stderr
    assert torch.get_num_threads() == threads  # left as found: training results depend on the count
    assert [r["id"] for r in records] == ["a", "b"]
    for r, p in zip(records, PROBLEMS):
        assert set(r) == KEYS and r["nl"] == p["nl"]
        assert isinstance(r["pseudocode"], list) and isinstance(r["code"], str)
        assert r["generated_by"] == {"model": tiny_student_dir, "backend": "torch", "precision": "float32",
                                     "num_beams": 1, "max_new_tokens": 5, "code_input": "nl"}


def test_one_off_text_and_tasks(tiny_student_dir):
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "3", "--task", "code",
                              "Reverse the string s."])
    assert result.exit_code == 0, result.stderr
    assert len(records) == 1 and records[0]["id"] == "command line"
    assert records[0]["pseudocode"] is None and isinstance(records[0]["code"], str)
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "3", "--task", "pseudocode", "x y"])
    assert records[0]["code"] is None and isinstance(records[0]["pseudocode"], list)


def test_code_matches_what_the_student_generates(tiny_student_dir):
    from pdc.export import encode, generate
    from pdc.students import load_trained
    from pdc.tasks import code_input

    student = load_trained(tiny_student_dir)
    record = next(core.generate(tiny_student_dir, ["Reverse the string s."], max_new_tokens=6, task="code"))
    ids = generate(student, encode(student, code_input("Reverse the string s.", student.markers)), 6)
    assert record["code"] == student.tokenizer.decode(ids, skip_special_tokens=True)


def test_bad_records_and_bad_options(tiny_student_dir, tmp_path):
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "2", "--on-error", "emit"],
                             jsonl([PROBLEMS[0], {"id": "x", "text": "no nl"}]))
    assert result.exit_code == 3
    assert records[1]["status"] == "error" and records[1]["error"]["field"] == "nl"
    result, _ = invoke(["-m", tiny_student_dir], '{"id": "x"}\n')
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1].startswith(
        "Error: stdin:1, field 'nl': missing")
    result, _ = invoke(["-m", tiny_student_dir, "--task", "poem"], jsonl(PROBLEMS))
    assert result.exit_code == 1 and "unknown task 'poem'" in result.stderr
    result, _ = invoke(["-m", str(tmp_path / "nope")], jsonl(PROBLEMS))
    assert result.exit_code == 1 and "does not exist" in result.stderr
    (tmp_path / "exp" / "int8").mkdir(parents=True)
    (tmp_path / "exp" / "int8" / "encoder_model.onnx").write_bytes(b"x")
    result, _ = invoke(["-m", str(tmp_path / "exp")], jsonl(PROBLEMS))
    assert result.exit_code == 1 and f"--model {tmp_path / 'exp' / 'int8'}" in result.stderr


@pytest.mark.slow
def test_onnx_export_generates_what_pytorch_does(tiny_student_dir, tmp_path):
    from pdc.export import export

    export(tiny_student_dir, str(tmp_path / "export"), quantize=False, parity_n=0)
    args = ["--max-new-tokens", "6", "-k", "2", "--threads", "1"]
    _, torch_records = invoke(["-m", tiny_student_dir, *args], jsonl(PROBLEMS))
    result, onnx_records = invoke(["-m", str(tmp_path / "export" / "fp32"), *args], jsonl(PROBLEMS))
    assert result.exit_code == 0, result.stderr
    assert onnx_records[0]["generated_by"]["backend"] == "onnx"
    assert [(r["pseudocode"], r["code"]) for r in onnx_records] == [(r["pseudocode"], r["code"]) for r in torch_records]
