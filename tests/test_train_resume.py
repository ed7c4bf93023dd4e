"""pdc train checkpoints: a killed or interrupted run, resumed, ends bit-for-bit where an uninterrupted one ends."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from pdc import checkpoint as ckpt
from pdc.cli import app
from pdc.students import load_trained

pytestmark = pytest.mark.slow

# 40 train records, batch 8: 5 steps per epoch; 2 epochs; dropout on (the RNG must be restored)
TINY = ["--student", "scratch:tiny", "--lr", "1e-3", "--batch-size", "8", "--max-source-length", "40",
        "--max-target-length", "40", "--max-train-records", "40", "--max-valid-records", "8",
        "--epochs", "2", "--seed", "5"]


def run_cli(cot_file, out, *extra, code=0):
    result = CliRunner().invoke(app, ["train", cot_file, *TINY, "--out", str(out), *extra])
    assert result.exit_code == code, result.output
    return [json.loads(line) for line in result.stdout.splitlines()], result


def weights(path):
    return load_trained(str(path)).model.state_dict()


def assert_same_model(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ"
    ca, cb = (json.load(open(os.path.join(p, "pdc_config.json"))) for p in (a, b))
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(ca["history"]) == strip(cb["history"])
    assert ca["best_epoch"] == cb["best_epoch"]


@pytest.fixture(scope="module")
def uninterrupted(cot_file, tmp_path_factory):
    """The reference: the same run, never interrupted, writing no checkpoints at all."""
    out = tmp_path_factory.mktemp("ref") / "model"
    events, _ = run_cli(cot_file, out, "--keep-checkpoints", "0")
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "done"]
    assert not os.path.exists(str(out) + ".checkpoints")
    return out


def interrupted_at(step_to_stop):
    def hook(step):
        if step == step_to_stop:
            raise KeyboardInterrupt
    return hook


def test_resume_mid_epoch_and_at_epoch_end_equals_uninterrupted(cot_file, tmp_path, uninterrupted, monkeypatch):
    from pdc import train as core

    out, ckdir = tmp_path / "model", tmp_path / "ck"
    extra = ["--save-every", "3", "--checkpoint-dir", str(ckdir), "--keep-checkpoints", "5"]
    real_train = core.train

    def train_stopping_at(step):
        def patched(*args, **kwargs):
            return real_train(*args, on_step=interrupted_at(step), **kwargs)
        return patched

    # 1) killed after step 4: the last checkpoint is step 3, mid-epoch 1
    monkeypatch.setattr(core, "train", train_stopping_at(4))
    _, result = run_cli(cot_file, out, *extra, code=130)
    assert ckpt.complete(str(ckdir)) == ["ckpt-000000003"]
    assert not os.path.exists(out)
    # 2) resumed, killed after step 7: checkpoints 3, 5 (end of epoch 1) and 6
    monkeypatch.setattr(core, "train", train_stopping_at(7))
    events, _ = run_cli(cot_file, out, *extra, "--resume", code=130)
    assert events[0] == {"event": "resume", "checkpoint": str(ckdir / "ckpt-000000003"), "step": 3,
                         "epoch": 1, "next_batch": 3}
    assert ckpt.complete(str(ckdir)) == ["ckpt-000000003", "ckpt-000000005", "ckpt-000000006"]
    # 3) the newest checkpoint is damaged on disk: resume must skip it and take step 5 (epoch end)
    with open(ckdir / "ckpt-000000006" / "model" / "model.safetensors", "r+b") as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(core, "train", real_train)
    events, _ = run_cli(cot_file, out, *extra, "--resume")
    assert events[0]["event"] == "checkpoint_rejected" and "sha256" in events[0]["reason"]
    assert events[1]["event"] == "resume" and events[1]["step"] == 5 and events[1]["next_batch"] == 0
    assert [e["event"] for e in events[2:]] == ["start", "epoch", "done"]
    assert events[-1]["steps"] == 10
    assert_same_model(out, uninterrupted)


def test_kill_9_during_a_save_leaves_nothing_resume_trusts(cot_file, tmp_path, uninterrupted):
    out, ckdir = tmp_path / "model", tmp_path / "ck"
    cmd = [sys.executable, "-m", "pdc", "train", cot_file, *TINY, "--out", str(out),
           "--checkpoint-dir", str(ckdir), "--save-every", "4"]
    env = {**os.environ, ckpt.PAUSE_ENV: "8:120"}  # the save of step 8 stops before its manifest
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not glob.glob(str(ckdir / ".tmp-ckpt-000000008-*" / "PAUSED")):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.time() < deadline, "the save of step 8 never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    torn = glob.glob(str(ckdir / ".tmp-ckpt-000000008-*"))
    assert torn and os.path.exists(os.path.join(torn[0], "model", "model.safetensors"))
    assert ckpt.complete(str(ckdir)) == ["ckpt-000000004", "ckpt-000000005"]  # keep 2: 4 (mid) and 5 (epoch end)
    assert ckpt.latest(str(ckdir)) == (str(ckdir / "ckpt-000000005"), [])

    events, _ = run_cli(cot_file, out, "--checkpoint-dir", str(ckdir), "--save-every", "4", "--resume")
    assert events[0]["event"] == "resume" and events[0]["step"] == 5, events[0]  # no thread-count warning
    assert not glob.glob(str(ckdir / ".tmp-*"))  # the torn save was removed, never loaded
    assert_same_model(out, uninterrupted)


def test_resume_refuses_other_settings_and_fresh_runs_refuse_old_checkpoints(cot_file, tmp_path):
    out = tmp_path / "model"
    run_cli(cot_file, out, "--epochs", "1")
    assert ckpt.complete(str(out) + ".checkpoints") == ["ckpt-000000005"]
    _, result = run_cli(cot_file, tmp_path / "other", "--epochs", "1",
                        "--checkpoint-dir", str(out) + ".checkpoints", code=1)
    assert "holds checkpoints of an earlier run" in result.stderr
    _, result = run_cli(cot_file, tmp_path / "other", "--lr", "1e-4", "--resume",
                        "--checkpoint-dir", str(out) + ".checkpoints", code=1)
    assert "other settings (lr)" in result.stderr
    # more epochs is a legitimate change: continue the finished run for one more epoch
    events, _ = run_cli(cot_file, tmp_path / "longer", "--epochs", "2", "--resume",
                        "--checkpoint-dir", str(out) + ".checkpoints")
    assert [e["event"] for e in events] == ["resume", "start", "epoch", "done"] and events[2]["epoch"] == 2


def test_verify_names_what_is_wrong(tmp_path):
    (tmp_path / "ckpt-000000001").mkdir()
    assert "MANIFEST.json" in ckpt.verify(str(tmp_path / "ckpt-000000001"))
    assert ckpt.latest(str(tmp_path))[0] is None


def test_resume_on_another_thread_count_warns(cot_file, tmp_path):
    """Sums are ordered by the thread count: the checkpoint says which it was written with."""
    out = tmp_path / "model"
    run_cli(cot_file, out, "--epochs", "1")  # leaves ckpt-000000005, the end of epoch 1
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        events, _ = run_cli(cot_file, out, "--resume", "--overwrite")
    finally:
        torch.set_num_threads(threads)
    assert events[0]["event"] == "warning" and f"written with {threads} torch threads" in events[0]["message"]
    assert events[1]["event"] == "resume" and events[1]["step"] == 5
