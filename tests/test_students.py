"""Real student families (T5 + SentencePiece, T5 + RoBERTa BPE as CodeT5/NatGen, BART), built tiny and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import tiny_students
from pdc.cli import app
from pdc.students import load_pretrained, load_trained

pytestmark = pytest.mark.slow

KINDS = {
    "t5_sentencepiece": ("T5ForConditionalGeneration", "T5TokenizerFast"),
    "t5_roberta_bpe": ("T5ForConditionalGeneration", "RobertaTokenizerFast"),
    "bart": ("BartForConditionalGeneration", "BartTokenizerFast"),
}
TRAIN = ["--lr", "1e-3", "--batch-size", "4", "--max-source-length", "32", "--max-target-length", "32",
         "--max-train-records", "8", "--max-valid-records", "4", "--epochs", "1", "--keep-checkpoints", "0"]


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    root = tmp_path_factory.mktemp("students")
    return {kind: getattr(tiny_students, kind)(str(root / kind)) for kind in KINDS}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_family_loads_trains_and_keeps_its_markers(students, cot_file, tmp_path, kind):
    model_cls, tok_cls = KINDS[kind]
    student = load_pretrained(students[kind])
    assert type(student.model).__name__ == model_cls and type(student.tokenizer).__name__ == tok_cls
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["train", cot_file, "--student", students[kind], *TRAIN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["steps"] == 2
    trained = load_trained(str(out))
    assert type(trained.model).__name__ == model_cls
    tok = trained.tokenizer
    for marker in ("[pseudocode]", "[code]", "[plan]"):
        ids = tok(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] < trained.model.get_input_embeddings().num_embeddings
    assert trained.config["student"] == students[kind]
    # eval reads the student back through the same markers
    result = CliRunner().invoke(app, ["eval", cot_file, "--model", str(out), "-k", "1", "--limit", "2",
                                      "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output


def test_a_hub_id_resolves_through_the_hub_cache_offline(students, cot_file, tmp_path):
    """`--student saikatc/NatGen` takes the hub path: here a cache holding a tiny NatGen-shaped repo."""
    cache = tmp_path / "hub"
    tiny_students.as_hub_cache(students["t5_roberta_bpe"], str(cache), "tiny-org/natgen-tiny")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pdc", "train", cot_file, "--student", "tiny-org/natgen-tiny",
                           *TRAIN, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["event"] == "done"
    assert json.load(open(out / "pdc_config.json"))["student"] == "tiny-org/natgen-tiny"
    missing = subprocess.run([sys.executable, "-m", "pdc", "train", cot_file, "--student", "tiny-org/absent",
                              *TRAIN, "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "Error: cannot load student 'tiny-org/absent'" in missing.stderr
