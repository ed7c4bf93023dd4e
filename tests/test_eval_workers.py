"""eval --workers gives the figures of one process; bench/eval_bench.py runs and reports its ratio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdc.cli import app

ROOT = Path(__file__).parent.parent


def test_workers_do_not_change_the_figures(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "tests/data/metrics_pairs.jsonl").read_text().splitlines()]
    path = tmp_path / "p.jsonl"
    with path.open("w") as f:
        for i, row in enumerate(rows):
            nxt = rows[(i + 1) % len(rows)]
            other = nxt["code"] if nxt["language"] == row["language"] else ""
            f.write(json.dumps({"id": str(i), "lang": row["language"], "nl": "x", "code": row["code"],
                                "predictions": [other, row["code"][: len(row["code"]) // 2]]}) + "\n")
    summaries = []
    for workers in ("1", "2"):
        result = CliRunner().invoke(app, ["eval", str(path), "--split", "all", "--workers", workers,
                                          "--batch-size", "5"])
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        summary = lines[-1]
        for key in ("seconds", "config"):
            summary.pop(key)
        summaries.append((lines[:-1], summary))
    assert summaries[0] == summaries[1]
    assert summaries[0][1]["top1"]["sm_ted"] is not None and "dm_jaccard" in summaries[0][1]["topk"]


@pytest.mark.slow
def test_eval_bench_reports_a_ratio():
    proc = subprocess.run([sys.executable, str(ROOT / "bench/eval_bench.py"), "--records", "3", "--beams", "2",
                           "--batch-size", "3", "--max-new-tokens", "8"], capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["records"] == 3 and result["ratio"] > 0
    assert result["batched_records_per_s"] > 0 and result["per_record_records_per_s"] > 0
