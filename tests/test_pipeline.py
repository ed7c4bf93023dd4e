"""Real commands piped together in subprocesses, as a user's shell script would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")
PDC = f"{sys.executable} -m pdc"


def sh(command: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_prepare_extract_shuffle_on_real_codesearchnet_rows():
    src = os.path.join(DATA, "csn_python_prepare.jsonl")
    ruby = os.path.join(DATA, "csn_ruby_prepare.jsonl")
    result = sh(f"cat {src} {ruby} | {PDC} prepare | {PDC} extract --teacher ast "
                f"| {PDC} shuffle-cot --mode shuffle --seed 1")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [json.loads(line) for path in (src, ruby) for line in open(path)]
    assert len(out) == len(rows)  # one record per input row, none dropped
    assert len({o["id"] for o in out}) == len(out)
    assert {o["lang"] for o in out} == {"python", "ruby"}
    for o in out:
        assert o["status"] == "ok", o.get("error")
        assert o["teacher"] == "ast" and o["prompt_id"] == "ast-v1"
        assert o["source"]["dataset"] == "codesearchnet" and o["split"] in ("train", "valid", "test")
        assert '"""' not in o["code"].split("\n", 1)[-1][:200] or o["lang"] != "python"
        if len(set(o["pseudocode"])) > 1:
            assert o["ablation"]["mode"] == "shuffle"
            original = [None] * len(o["pseudocode"])
            for k, i in enumerate(o["ablation"]["permutation"]):
                original[i] = o["pseudocode"][k]
            assert original[0].startswith("Define") and o["pseudocode"] != original


def test_replace_pipeline_is_deterministic():
    src = os.path.join(DATA, "csn_python_prepare.jsonl")
    cmd = f"{PDC} prepare {src} | {PDC} extract | {PDC} shuffle-cot --mode replace --seed 7"
    first, second = sh(cmd), sh(cmd)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    out = [json.loads(line) for line in first.stdout.splitlines()]
    assert all(o["ablation"]["donor"] != o["id"] for o in out)


@pytest.mark.slow
def test_tiny_train_eval_export_bench_chain(tmp_path):
    """The whole pipeline in real processes on a few dozen harvested problems:
    prepare | extract > cot; train; eval | table; export; bench on torch and int8."""
    d = tmp_path
    run = sh(
        f"set -e; cd {d}\n"
        f"{PDC} prepare --harvest --limit 60 | {PDC} extract --teacher ast > cot.jsonl\n"
        f"{PDC} train --student scratch:tiny --lr 3e-3 --epochs 2 --batch-size 8 --max-source-length 48 "
        f"--max-target-length 64 --out model < cot.jsonl > train.jsonl\n"
        f"{PDC} eval --model model --name tiny --beams 2 --split all --limit 6 --max-new-tokens 24 "
        f"< cot.jsonl > eval.jsonl\n"
        f"{PDC} table < eval.jsonl > table.md\n"
        f"grep -m 4 '\"nl\"' cot.jsonl > problems.jsonl\n"
        f"{PDC} export --model model --out onnx --problems problems.jsonl --parity 4 --max-new-tokens 16 "
        f"> export.jsonl\n"
        f"{PDC} bench --model model --max-new-tokens 8 --threads 1 < problems.jsonl > bench-torch.jsonl\n"
        f"{PDC} bench --model onnx/int8 --max-new-tokens 8 --threads 1 < problems.jsonl > bench-int8.jsonl\n",
        timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    def lines(name):
        return [json.loads(line) for line in (d / name).read_text().splitlines()]

    cot = lines("cot.jsonl")
    assert len(cot) == 60 and all(r["status"] == "ok" for r in cot)
    events = lines("train.jsonl")
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert (d / "model" / "pdc_config.json").exists()
    evaluated = lines("eval.jsonl")
    summary = evaluated[-1]
    assert summary["summary"] is True and summary["run"] == "tiny" and summary["n"] == 6 and summary["k"] == 2
    assert all(len(r["predictions"]) == 2 for r in evaluated[:-1])
    for part in ("tm", "sm", "cb", "em"):
        assert 0 <= summary["top1"][part] <= summary["topk"][part] + 1e-9 <= 100
    table = (d / "table.md").read_text()
    assert "| tiny |" in table.replace("|tiny|", "| tiny |")
    export = lines("export.jsonl")[0]
    assert export["fp32"]["parity"]["rate"] == 1.0 and export["int8"]["parity"]["n"] == 4
    torch_summary, int8_summary = lines("bench-torch.jsonl")[-1], lines("bench-int8.jsonl")[-1]
    assert (torch_summary["backend"], int8_summary["backend"]) == ("torch", "onnx")
    assert torch_summary["n"] == int8_summary["n"] == 4 and int8_summary["precision"] == "int8"
