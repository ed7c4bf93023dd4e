"""pdc train --select-by and the two task formulations (Section 3.4)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from pdc.cli import app
from pdc.students import load_trained

pytestmark = pytest.mark.slow

TINY = ["--student", "scratch:tiny", "--lr", "1e-3", "--batch-size", "8", "--max-source-length", "40",
        "--max-target-length", "40", "--max-train-records", "24", "--max-valid-records", "8", "--epochs", "2"]


def run_cli(*args):
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("metric,code_input", [("bleu", "nl"), ("codebleu", "nl+pseudocode")])
def test_select_by_a_code_metric_keeps_the_best_epoch(cot_file, tmp_path, metric, code_input):
    out = tmp_path / "model"
    events = run_cli(cot_file, *TINY, "--out", str(out), "--select-by", metric, "--select-samples", "4",
                     "--code-input", code_input, "--keep-checkpoints", "5")
    epochs = [e for e in events if e["event"] == "epoch"]
    assert all(f"valid_{metric}" in e and "valid_loss" in e for e in epochs)
    scores = [e[f"valid_{metric}"] for e in epochs]
    best_epoch = scores.index(max(scores)) + 1  # the earliest on ties
    done = events[-1]
    assert done["select_by"] == metric and done["best_epoch"] == best_epoch
    assert round(done["best_score"], 4) == max(scores)
    config = json.load(open(out / "pdc_config.json"))
    assert config["select_by"] == metric and config["code_input"] == code_input
    # what OUT holds is the model of the best epoch's end (its checkpoint), not the last epoch's
    best = load_trained(str(tmp_path / "model.checkpoints" / f"ckpt-{3 * best_epoch:09d}" / "model")).model.state_dict()
    held = load_trained(str(out)).model.state_dict()
    assert all(torch.equal(best[k], held[k]) for k in held)


def test_markers_are_single_special_tokens_saved_with_the_model(cot_file, tmp_path):
    out = tmp_path / "plan"
    run_cli(cot_file, *TINY, "--epochs", "1", "--out", str(out), "--code-input", "nl+pseudocode",
            "--keep-checkpoints", "0")
    student = load_trained(str(out))
    tok = student.tokenizer
    for marker in ("[pseudocode]", "[code]", "[plan]"):
        assert marker in tok.additional_special_tokens
        assert len(tok(marker, add_special_tokens=False)["input_ids"]) == 1
    assert student.config["markers"] == {"pseudocode": "[pseudocode]", "code": "[code]", "plan": "[plan]"}
    # the second formulation at inference: the student writes its plan, then code conditioned on it
    result = CliRunner().invoke(app, ["eval", cot_file, "--model", str(out), "-k", "1", "--limit", "2",
                                      "--max-new-tokens", "8", "--mode", "plan"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    assert len(rows) == 2 and all(isinstance(r["plan"], list) for r in rows)
