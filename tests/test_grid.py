"""shell/grid.sh: the paper's grid (make table3 / table4) from one config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "shell" / "grid.sh"

TINY = """\
data = harvest
limit = 100     # a few dozen train records, a handful of test problems
train = 24
valid = 8
test = 4
epochs = 1
seed = 0
beams = 2
max_new_tokens = 16
train_args = --lr 1e-3 --batch-size 12 --max-source-length 48 --max-target-length 48
teacher.ast = --teacher ast
student.tiny = scratch:tiny
"""


def run_grid(target: str, conf: Path, run: Path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PDC": f"{sys.executable} -m pdc", "NO_COLOR": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])), **env}
    return subprocess.run(["bash", str(GRID), target, str(conf), str(run)], capture_output=True, text=True,
                          env=environ, timeout=300)


@pytest.mark.slow
def test_table3_grid_end_to_end_then_rerun_skips_finished_cells(tmp_path):
    conf = tmp_path / "grid.conf"
    conf.write_text(TINY)
    run = tmp_path / "run"
    first = run_grid("table3", conf, run)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("| Student | Teacher | n ") and "CB@2" in lines[0]
    assert lines[2].startswith("| tiny    | ast     | 4 ")
    assert (run / "table3.md").read_text() == first.stdout
    assert (run / "table3.tex").read_text().startswith(r"\begin{table}")
    assert (run / "loss-table3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cell = run / "cells" / "tiny@ast@distilled"
    assert (cell / "model" / "pdc_config.json").is_file()
    assert '"event": "done"' in (cell / "train.jsonl").read_text()
    import json
    events = [json.loads(x) for x in (cell / "train.jsonl").read_text().splitlines()]
    assert events[0]["train_records"] == 24 and events[0]["valid_records"] == 8
    assert "1 cells run, 0 already finished" in first.stderr
    # the test split never goes to a teacher
    cot = (run / "teachers" / "ast" / "cot.jsonl").read_text()
    assert '"split": "test"' not in cot and '"split": "train"' in cot
    stamp = (cell / "eval.jsonl").stat().st_mtime_ns

    again = run_grid("table3", conf, run)
    assert again.returncode == 0, again.stderr
    assert "skip tiny@ast@distilled: finished" in again.stderr
    assert "0 cells run, 1 already finished" in again.stderr and "== train" not in again.stderr
    assert again.stdout == first.stdout
    assert (cell / "eval.jsonl").stat().st_mtime_ns == stamp

    # an unfinished cell (torn eval output) is run again, its trained model reused
    (cell / "eval.jsonl").write_text('{"id": "x"}\n')
    third = run_grid("table3", conf, run)
    assert third.returncode == 0, third.stderr
    assert "== eval: tiny@ast@distilled" in third.stderr and "== train" not in third.stderr
    assert third.stdout == first.stdout


def test_config_errors_name_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(TINY + "epoch = 3\n")
    result = run_grid("table3", conf, tmp_path / "run")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {conf}:13: unknown key 'epoch', known: data limit train valid test " \
        "epochs seed beams max_new_tokens train_args, teacher.NAME, student.NAME"
    conf.write_text(TINY.replace("epochs = 1", "epochs = one"))
    result = run_grid("table3", conf, tmp_path / "run")
    assert result.returncode == 1 and "epochs must be a whole number, not 'one'" in result.stderr
    conf.write_text(TINY.replace("student.tiny = scratch:tiny\n", ""))
    result = run_grid("table3", conf, tmp_path / "run")
    assert result.returncode == 1 and "no student.NAME line" in result.stderr
    result = run_grid("table7", conf, tmp_path / "run")
    assert result.returncode == 2 and result.stderr.startswith("usage: shell/grid.sh")


def test_a_run_folder_holds_one_data_and_budget(tmp_path):
    conf = tmp_path / "grid.conf"
    conf.write_text(TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "grid.conf").write_text("data = harvest\nlimit = 5000\n")
    result = run_grid("table3", conf, run)
    assert result.returncode == 1 and "was made with another data/budget config" in result.stderr
    # environment overrides are part of the resolved config
    result = run_grid("table3", conf, tmp_path / "other", GRID_EPOCHS="x")
    assert result.returncode == 1 and "epochs must be a whole number, not 'x'" in result.stderr
