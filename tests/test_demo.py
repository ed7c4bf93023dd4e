"""make demo's script, end to end on a tiny budget: every step runs and the summary prints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_script_runs_every_step_and_prints_the_table(tmp_path):
    run = tmp_path / "runs" / "demo-tiny"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "DEMO_TRAIN": "32", "DEMO_EPOCHS": "1", "DEMO_TEST": "4"}
    proc = subprocess.run(["bash", os.path.join(ROOT, "shell", "demo.sh"), str(run)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in (run / "table.md").read_text().splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["baseline", "distilled", "shuffled"]
    assert rows[0] in proc.stdout  # the table is the script's data on stdout
    for backend in ("torch", "onnx"):
        assert f"{backend}: mean " in proc.stderr
    assert os.readlink(tmp_path / "runs" / "latest") == "demo-tiny"
    assert {"fp32", "int8"} <= {p.name for p in (run / "export").iterdir()}
