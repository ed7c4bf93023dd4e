"""pdc train and pdc eval on a tiny student and real standard-library functions."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from pdc import train as core
from pdc.cli import app
from pdc.jsonl import read_lines, read_records
from pdc.students import load_trained

TINY = ["--student", "scratch:tiny", "--lr", "1e-3", "--batch-size", "8", "--max-source-length", "48",
        "--max-target-length", "48", "--max-train-records", "48", "--max-valid-records", "16"]


def records_of(path):
    return core.read_training_records(read_lines([path]))


def test_examples_carry_task_markers_and_skip_failed_records(cot_file):
    cfg = core.TrainConfig()
    data = core.examples_from(records_of(cot_file), cfg)
    assert data.train and data.valid
    ex = data.train[0]
    assert ex.pseudo_src.startswith("[pseudocode] ") and ex.code_src.startswith("[code] ")
    assert ex.pseudo_tgt.startswith("1. Define")
    failed = {"id": "x", "nl": "n", "split": "train", "status": "error", "pseudocode": None}
    assert core.examples_from(iter([(failed, "f:1")]), cfg).skipped == 1
    plan = core.examples_from(records_of(cot_file), core.TrainConfig(code_input="nl+pseudocode"))
    assert " [plan] 1. Define" in plan.train[0].code_src
    assert plan.fingerprint != data.fingerprint
    assert core.examples_from(records_of(cot_file), cfg).fingerprint == data.fingerprint


def test_loss_is_alpha_pseudocode_plus_beta_code(tiny_student_dir, cot_file):
    student = load_trained(tiny_student_dir)
    cfg = core.TrainConfig(max_source_length=32, max_target_length=32)
    data = core.examples_from(records_of(cot_file), cfg)
    enc = core.Encoded(data.train[:4], student.tokenizer, cfg)
    pad = student.tokenizer.pad_token_id
    with torch.no_grad():
        l_code, l_pseudo = core.task_losses(student.model, core.make_batch(enc, [0, 1, 2, 3], True, pad, "cpu"))
        only_code, _ = core.task_losses(student.model, core.make_batch(enc, [0, 1, 2, 3], False, pad, "cpu"))
    assert l_code > 0 and l_pseudo > 0
    assert torch.allclose(only_code, l_code, atol=1e-5)  # the code rows do not depend on the pseudocode rows
    weighted = core.combine(core.TrainConfig(alpha=0.3, beta=0.7), l_code, l_pseudo)
    assert torch.allclose(weighted, 0.3 * l_pseudo + 0.7 * l_code)
    assert torch.allclose(torch.as_tensor(core.combine(core.TrainConfig(alpha=0.0), l_code, l_pseudo)), 0.5 * l_code)


def test_length_grouped_batches_cover_every_record_once(tiny_student_dir, cot_file):
    import random

    student = load_trained(tiny_student_dir)
    cfg = core.TrainConfig(max_source_length=32, max_target_length=64)
    enc = core.Encoded(core.examples_from(records_of(cot_file), cfg).train, student.tokenizer, cfg)
    batches = core.length_grouped_batches(enc, 8, random.Random(0), pool_batches=4)
    assert sorted(i for b in batches for i in b) == list(range(enc.n))
    assert batches == core.length_grouped_batches(enc, 8, random.Random(0), pool_batches=4)


def train_cli(cot_file, out, *extra):
    result = CliRunner().invoke(app, ["train", cot_file, *TINY, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_train_writes_a_model_with_provenance_and_is_reproducible(cot_file, tmp_path):
    events = train_cli(cot_file, tmp_path / "a", "--epochs", "2", "--seed", "3")
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "done"]
    assert events[0]["train_records"] == 48 and 0 < events[0]["valid_records"] <= 16
    epoch = events[1]
    assert {"train_loss", "train_loss_code", "train_loss_pseudocode", "valid_loss"} <= set(epoch)
    config = json.load(open(tmp_path / "a" / "pdc_config.json"))
    assert config["seed"] == 3 and config["train"]["alpha"] == 0.5 and config["student"] == "scratch:tiny"
    assert config["markers"]["code"] == "[code]"
    assert len(config["data"]["fingerprint"]) == 64
    assert list(config["data"]["provenance"]) == ["ast/tree-sitter-python 0.21.0/ast-v1"]
    assert config["best_epoch"] == events[-1]["best_epoch"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left behind

    train_cli(cot_file, tmp_path / "b", "--epochs", "2", "--seed", "3")
    a = load_trained(str(tmp_path / "a")).model.state_dict()
    b = load_trained(str(tmp_path / "b")).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_alpha_zero_baseline_trains_on_code_only(cot_file, tmp_path):
    events = train_cli(cot_file, tmp_path / "base", "--epochs", "1", "--alpha", "0")
    epoch = events[1]
    assert epoch["train_loss"] == pytest.approx(0.5 * epoch["train_loss_code"], abs=1e-4)
    assert epoch["train_loss_pseudocode"] == 0.0
    assert json.load(open(tmp_path / "base" / "pdc_config.json"))["train"]["alpha"] == 0.0


def test_train_refuses_existing_output_and_empty_input(cot_file, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    result = CliRunner().invoke(app, ["train", cot_file, *TINY, "--epochs", "1", "--out", str(tmp_path / "busy")])
    assert result.exit_code == 1 and "is not empty" in result.stderr
    assert (tmp_path / "busy" / "x").read_text() == "keep me"
    none = CliRunner().invoke(app, ["train", *TINY, "--out", str(tmp_path / "none")], input="")
    assert none.exit_code == 1 and "no usable training records" in none.stderr


def test_eval_generates_k_beams_and_a_summary(tiny_student_dir, cot_file):
    result = CliRunner().invoke(app, ["eval", cot_file, "--model", tiny_student_dir, "-k", "3", "--limit", "4",
                                      "--max-new-tokens", "12", "--name", "tiny"])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    rows, summary = out[:-1], out[-1]
    assert len(rows) == 4 and all(r["split"] == "test" for r in rows)
    for r in rows:
        assert len(r["predictions"]) == 3 and len(r["beam_scores"]) == 3
        assert r["beam_scores"] == sorted(r["beam_scores"], reverse=True)
        assert 0 <= r["eval"]["best_index"] < 3 and len(r["eval"]["codebleu"]) == 3
    assert summary["summary"] is True and summary["run"] == "tiny" and summary["n"] == 4 and summary["k"] == 3
    for part in ("top1", "topk"):
        assert {"tm", "sm", "dm", "cb", "em"} <= set(summary[part])
    for r in rows:  # no exact beams from an untrained model: the oracle is the top sentence CodeBLEU
        assert r["eval"]["codebleu"][r["eval"]["best_index"]] == max(r["eval"]["codebleu"])
    assert "sentence_codebleu" in summary["topk_rule"] and "cb" in summary["method"]
    assert summary["provenance"]["student"] == "scratch:tiny"


def test_eval_plan_mode_writes_the_plan_it_used(tiny_student_dir, cot_file):
    result = CliRunner().invoke(app, ["eval", cot_file, "--model", tiny_student_dir, "-k", "2", "--limit", "2",
                                      "--max-new-tokens", "8", "--mode", "plan"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    assert all(isinstance(r["plan"], list) for r in rows)


def test_eval_scores_teacher_code_without_a_model(cot_file):
    result = CliRunner().invoke(app, ["eval", cot_file, "--score-field", "teacher_code", "--name", "teacher"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    # the ast teacher's code is the reference itself
    assert summary["top1"]["em"] == 100.0 and summary["top1"]["tm"] == pytest.approx(100.0)
    n_test = sum(1 for r in read_records([cot_file]) if r["split"] == "test")
    assert summary["n"] == n_test


def test_eval_names_the_record_missing_predictions(cot_file):
    result = CliRunner().invoke(app, ["eval", cot_file])
    assert result.exit_code == 1
    assert "field 'predictions'" in result.stderr
