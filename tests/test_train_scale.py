"""pdc train at scale: gradient accumulation, autocast, per-task truncation, two-process DDP (gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from pdc import train as core
from pdc.cli import app
from pdc.jsonl import read_lines
from pdc.students import load_trained

pytestmark = pytest.mark.slow

# dropout 0: one process and two draw different dropout masks, everything else must agree
TINY = ["--student", "scratch:tiny", "--lr", "1e-3", "--batch-size", "8", "--max-source-length", "40",
        "--max-target-length", "40", "--max-train-records", "20", "--max-valid-records", "6", "--epochs", "2",
        "--dropout", "0", "--keep-checkpoints", "0", "--seed", "1"]


def run_cli(cot_file, out, *extra, code=0):
    result = CliRunner().invoke(app, ["train", cot_file, *TINY, "--out", str(out), *extra])
    assert result.exit_code == code, result.output
    return [json.loads(line) for line in result.stdout.splitlines()], result


def assert_close_models(a, b, atol):
    wa, wb = (load_trained(str(p)).model.state_dict() for p in (a, b))
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    print("largest weight difference", worst)
    assert worst < atol, f"largest weight difference {worst}"


def epoch_losses(events):
    return [x for e in events if e["event"] == "epoch" for x in (e["train_loss"], e["valid_loss"])]


@pytest.fixture(scope="module")
def one_process(cot_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "model"
    events, _ = run_cli(cot_file, out)
    return out, events


def test_gradient_accumulation_matches_the_full_batch(cot_file, tmp_path, one_process):
    out = tmp_path / "accum"
    events, _ = run_cli(cot_file, out, "--grad-accum", "3")
    assert epoch_losses(events) == pytest.approx(epoch_losses(one_process[1]), rel=1e-5)
    assert_close_models(out, one_process[0], atol=1e-4)


def test_gradient_checkpointing_changes_memory_not_the_result(cot_file, tmp_path, one_process):
    out = tmp_path / "ckpt"
    events, _ = run_cli(cot_file, out, "--gradient-checkpointing")
    assert epoch_losses(events) == pytest.approx(epoch_losses(one_process[1]), rel=1e-5)
    assert_close_models(out, one_process[0], atol=1e-5)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(cot_file, tmp_path, one_process):
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pdc", "train", cot_file, *TINY, "--out", str(out), "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "done"]  # rank 0 only
    assert events[0]["world_size"] == 2
    assert events[-1]["records_per_process"] == [20, 20]  # each ran half of 2 epochs x 20 records
    assert one_process[1][-1]["records_per_process"] == [40]
    assert epoch_losses(events) == pytest.approx(epoch_losses(one_process[1]), rel=1e-5)
    assert_close_models(out, one_process[0], atol=1e-4)
    assert json.load(open(out / "pdc_config.json"))["world_size"] == 2


def test_bf16_autocast_runs_on_cpu_and_fp16_needs_cuda(cot_file, tmp_path):
    events, _ = run_cli(cot_file, tmp_path / "bf16", "--precision", "bf16", "--epochs", "1")
    assert events[-1]["event"] == "done" and events[1]["train_loss"] > 0
    if not torch.cuda.is_available():
        _, result = run_cli(cot_file, tmp_path / "fp16", "--precision", "fp16", "--epochs", "1", code=1)
        assert "--precision fp16 needs a CUDA device" in result.stderr


def test_pseudocode_targets_have_their_own_truncation(tiny_student_dir, cot_file):
    cfg = core.TrainConfig(max_source_length=32, max_target_length=48, max_pseudocode_length=12)
    data = core.examples_from(core.read_training_records(read_lines([cot_file])), cfg)
    enc = core.Encoded(data.train, load_trained(tiny_student_dir).tokenizer, cfg)
    assert max(map(len, enc.pseudo_tgt)) == 12 and max(map(len, enc.code_tgt)) == 48


def test_micro_batches_split_a_step_across_processes_and_accumulation():
    class Enc:
        code_src = [[0] * n for n in (5, 1, 3, 2, 4)]
        code_tgt = pseudo_tgt = [[]] * 5

    parts = core.micro_batches(Enc, [0, 1, 2, 3, 4], world=2, accum=2)
    assert parts == [[[1, 3], [2]], [[4], [0]]]  # sorted by length, then contiguous shards
    assert core.micro_batches(Enc, [0], world=2, accum=1) == [[[0]], [[]]]
