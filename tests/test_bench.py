"""pdc bench: per-sample latency records, the summary, backend detection, percentiles."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from pdc import bench as core
from pdc.cli import app

PROBLEMS = [{"id": "a", "nl": "Reverse the string s."},
            {"id": "b", "nl": "Return the sum of a and b."},
            {"id": "c", "nl": "Check whether n is prime."}]
SAMPLE_KEYS = {"id", "latency_s", "input_tokens", "generated_tokens", "tokens_per_s"}
SUMMARY_KEYS = {"summary", "backend", "precision", "model", "n", "mean_s", "p50_s", "p90_s", "p99_s",
                "tokens_per_s", "load_s", "peak_rss_mb", "model_rss_mb", "threads", "max_new_tokens",
                "num_beams", "warmup", "batch_size", "machine", "batches", "samples_per_s"}


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """bench sets the process's thread count (--threads); leave other modules what they had."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def invoke(args, stdin=""):
    result = CliRunner().invoke(app, ["bench", *args], input=stdin)
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def export_dir(tiny_student_dir, tmp_path_factory):
    """OUT/fp32 and OUT/int8 of the tiny student (no parity check: test_export covers it)."""
    from pdc.export import export

    out = tmp_path_factory.mktemp("bench") / "export"
    export(tiny_student_dir, str(out), quantize=True, parity_n=0)
    return out


# --- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("values,q,expected", [
    ([1, 2, 3, 4], 50, 2.5),
    ([1, 2, 3, 4], 0, 1),
    ([1, 2, 3, 4], 100, 4),
    ([4, 1, 3, 2], 25, 1.75),            # order of the input does not matter
    (list(range(1, 11)), 90, 9.1),
    (list(range(1, 11)), 99, 9.91),
    ([0.5], 99, 0.5),
])
def test_percentile_golden(values, q, expected):
    assert core.percentile(values, q) == pytest.approx(expected)


def test_percentile_matches_numpy_linear_and_rejects_bad_q():
    np = pytest.importorskip("numpy")
    rng = random.Random(0)
    values = [rng.expovariate(10) for _ in range(37)]
    for q in (0, 1, 10, 50, 90, 99, 100):
        assert core.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert core.percentile([], 50) is None
    with pytest.raises(ValueError):
        core.percentile([1.0], 101)


def test_summarize_golden():
    s = core.summarize([0.1, 0.2, 0.3, 0.4], [10, 10, 10, 10])
    assert s == {"n": 4, "mean_s": 0.25, "p50_s": 0.25, "p90_s": 0.37, "p99_s": 0.397, "tokens_per_s": 40.0}
    assert core.summarize([]) == {"n": 0, "mean_s": None, "p50_s": None, "p90_s": None, "p99_s": None,
                                  "tokens_per_s": None}


def test_config_checks_values():
    from pdc.errors import PdcError

    with pytest.raises(PdcError, match="backend"):
        core.BenchConfig(backend="tensorrt").check()
    with pytest.raises(PdcError, match="--num-beams"):
        core.BenchConfig(num_beams=0).check()
    with pytest.raises(TypeError, match="beams"):
        next(core.bench("unused", [], beams=3))


# --- PyTorch ------------------------------------------------------------------------------


def test_core_bench_torch_records_then_summary(tiny_student_dir):
    import torch

    threads = torch.get_num_threads()
    out = list(core.bench(tiny_student_dir, PROBLEMS, max_new_tokens=6, threads=1, limit=2))
    assert torch.get_num_threads() == threads  # restored
    samples, summary = out[:-1], out[-1]
    assert [r["id"] for r in samples] == ["a", "b"]
    for r in samples:
        assert set(r) == SAMPLE_KEYS
        assert r["latency_s"] > 0 and r["input_tokens"] > 0 and 1 <= r["generated_tokens"] <= 6
        assert r["tokens_per_s"] == pytest.approx(r["generated_tokens"] / r["latency_s"], rel=1e-3)
    assert set(summary) == SUMMARY_KEYS
    assert summary["summary"] is True and summary["backend"] == "torch" and summary["precision"] == "float32"
    assert summary["n"] == 2 and summary["threads"] == 1 and summary["max_new_tokens"] == 6
    assert summary["p50_s"] <= summary["p90_s"] <= summary["p99_s"]
    assert summary["peak_rss_mb"] > 50 and summary["load_s"] > 0
    assert {"platform", "cpu", "logical_cores", "python", "torch"} <= set(summary["machine"])


def test_cli_bench_torch_streams_and_emits_bad_records(tiny_student_dir):
    import torch

    threads = torch.get_num_threads()
    stdin = jsonl([PROBLEMS[0], {"id": "bad", "text": "no nl"}, PROBLEMS[1]])
    result, records = invoke(["--model", tiny_student_dir, "--max-new-tokens", "4",
                              "--threads", "1" if threads != 1 else "2", "--on-error", "emit"], stdin)
    assert result.exit_code == 3, result.stderr
    assert torch.get_num_threads() == threads  # left as found
    assert [r.get("id") for r in records[:3]] == ["a", "bad", "b"]
    assert records[1]["status"] == "error" and records[1]["error"]["field"] == "nl"
    assert set(records[0]) == SAMPLE_KEYS and records[0]["generated_tokens"] <= 4
    assert records[-1]["summary"] is True and records[-1]["n"] == 2
    assert "bench: torch" in result.stderr


def test_cli_bench_limit_and_default_stop_policy(tiny_student_dir):
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "2", "--limit", "1", "--warmup", "0"],
                             jsonl(PROBLEMS))
    assert result.exit_code == 0, result.stderr
    assert len(records) == 2 and records[-1]["n"] == 1 and records[-1]["warmup"] == 0
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "2"], '{"id": "x"}\n')
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: stdin:1, field 'nl': missing")


# --- ONNX ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_cli_bench_onnx_variants(export_dir, variant):
    result, records = invoke(["--model", str(export_dir / variant), "--max-new-tokens", "4"], jsonl(PROBLEMS))
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in records[:-1]] == ["a", "b", "c"]
    summary = records[-1]
    assert summary["backend"] == "onnx" and summary["precision"] == variant
    assert summary["n"] == 3 and summary["tokens_per_s"] > 0
    assert "onnxruntime" in summary["machine"]


@pytest.mark.slow
def test_backend_detection_and_errors(export_dir, tiny_student_dir):
    assert core.detect_backend(str(export_dir / "int8")) == "onnx"
    assert core.detect_backend(tiny_student_dir) == "torch"
    result, _ = invoke(["--model", str(export_dir)], jsonl(PROBLEMS))  # the export root, not a variant
    assert result.exit_code == 1
    assert f"--model {export_dir / 'int8'}" in result.stderr and f"--model {export_dir / 'fp32'}" in result.stderr
    result, _ = invoke(["--model", tiny_student_dir, "--backend", "onnx"], jsonl(PROBLEMS))
    assert result.exit_code == 1 and "no *.onnx files" in result.stderr
    result, _ = invoke(["--model", str(export_dir / "fp32"), "--backend", "torch"], jsonl(PROBLEMS))
    assert result.exit_code == 1 and "only ONNX weights" in result.stderr
    result, records = invoke(["--model", str(export_dir / "nope")], jsonl(PROBLEMS))
    assert result.exit_code == 1 and records == []


@pytest.mark.slow
def test_first_record_arrives_before_stdin_closes(tiny_student_dir):
    """A real process: each sample is written and flushed as soon as it is measured."""
    import os
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "pdc", "bench", "-m", tiny_student_dir, "--max-new-tokens", "2",
                             "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        proc.stdin.write(json.dumps(PROBLEMS[0]) + "\n")
        proc.stdin.flush()
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        assert first and json.loads(first[0])["id"] == "a"  # stdin is still open
        proc.stdin.close()
        rest = proc.stdout.read().splitlines()
        assert proc.wait(timeout=60) == 0
        assert json.loads(rest[-1])["summary"] is True and json.loads(rest[-1])["n"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_batches_time_problems_together(tiny_student_dir):
    out = list(core.bench(tiny_student_dir, PROBLEMS, max_new_tokens=4, threads=1, batch_size=2, warmup=0))
    samples, summary = out[:-1], out[-1]
    assert [r["id"] for r in samples] == ["a", "b", "c"]
    assert samples[0]["latency_s"] == samples[1]["latency_s"]  # one batch of two, then one of one
    assert summary["n"] == 3 and summary["batches"] == 2 and summary["batch_size"] == 2
    assert summary["samples_per_s"] > 0


def test_cli_batches_and_bad_record_in_a_batch(tiny_student_dir):
    stdin = jsonl([PROBLEMS[0], PROBLEMS[1], {"id": "bad"}, PROBLEMS[2]])
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "3", "--threads", "1", "-b", "2",
                              "--on-error", "emit"], stdin)
    assert result.exit_code == 3, result.stderr
    assert [r.get("id") for r in records[:-1]] == ["a", "b", "bad", "c"]
    assert records[-1]["n"] == 3 and records[-1]["batches"] == 2
    result, records = invoke(["-m", tiny_student_dir, "--max-new-tokens", "3", "-b", "2"],
                             jsonl([PROBLEMS[0], {"id": "bad"}]))
    assert result.exit_code == 1 and [r["id"] for r in records] == ["a"]  # measured before the error


@pytest.mark.slow
def test_compare_side_by_side_in_separate_processes(export_dir, tiny_student_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="--chart needs matplotlib, not a pdc dependency")
    png = tmp_path / "chart.png"
    result, records = invoke(["-m", tiny_student_dir, "--compare", str(export_dir / "int8"), "--max-new-tokens", "3", "--threads", "1",
                              "--beam-widths", "1,2", "--chart", str(png)], jsonl(PROBLEMS[:2]))
    assert result.exit_code == 0, result.stderr
    summaries, comparison = records[:-1], records[-1]
    assert [(s["backend"], s["precision"], s["num_beams"]) for s in summaries] == [
        ("torch", "float32", 1), ("onnx", "int8", 1), ("torch", "float32", 2), ("onnx", "int8", 2)]
    assert all(s["n"] == 2 for s in summaries) and [s["run"] for s in summaries] == list(range(4))
    assert comparison["comparison"] is True and len(comparison["rows"]) == 4
    for row, s in zip(comparison["rows"], summaries):
        assert row["mean_s"] == s["mean_s"] and row["peak_rss_mb"] == s["peak_rss_mb"]
        assert row["latency_ratio"] == pytest.approx(s["mean_s"] / summaries[0 if s["num_beams"] == 1 else 2]["mean_s"],
                                                     rel=1e-2)
    assert comparison["rows"][0]["latency_ratio"] == 1.0
    # each run has its own process: the ONNX runs never loaded torch, so they use less memory
    assert summaries[1]["peak_rss_mb"] < summaries[0]["peak_rss_mb"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_bad_lists(tiny_student_dir):
    result, _ = invoke(["-m", tiny_student_dir, "--compare", tiny_student_dir, "--batch-sizes", "1,x"], jsonl(PROBLEMS))
    assert result.exit_code == 2 and "--batch-sizes takes comma-separated integers" in result.stderr
