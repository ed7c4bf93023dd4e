"""Per-sample generation latency of a student, PyTorch or ONNX (the torch-free edge runtime), batch size 1.

    from pdc.bench import bench
    for record in bench("runs/demo/export/int8", [{"id": "p1", "nl": "Reverse a string."}]):
        print(record)          # one record per problem, then the summary record

The backend follows the directory: one holding *.onnx files is run with
onnxruntime (`pdc export` writes OUT/fp32 and OUT/int8), anything else with
PyTorch. Each problem's `nl` is formatted as the student's code-task input
(`pdc.tasks.code_input`, markers from pdc_config.json) and generated with
greedy search (or beam search with num_beams > 1), one problem at a time.

latency_s is wall time from input text to decoded output text (tokenize,
generate, decode); the first problem is run `warmup` extra times, untimed,
before its timed run. load_s is the model load alone (libraries are imported
before the clock starts); model_rss_mb is the resident memory the load added;
peak_rss_mb is the whole process's high-water mark (interpreter, libraries,
model, generation), from getrusage.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Iterator, Sequence

from pdc.errors import PdcError
from pdc.jsonl import require

BACKENDS = ("auto", "torch", "onnx")


@dataclass
class BenchConfig:
    backend: str = "auto"               # auto: onnx if the directory holds *.onnx files, else torch
    max_new_tokens: int | None = None   # None: the student's max_target_length, else 64
    num_beams: int = 1                  # 1 is greedy search
    warmup: int = 1                     # untimed runs of the first problem
    limit: int | None = None            # benchmark at most this many problems
    batch_size: int = 1                 # problems generated together (greedy: one padded batch)
    threads: int | None = None          # intra-op threads; None: every core this process may use

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise PdcError(f"unknown backend '{self.backend}', choose {', '.join(BACKENDS)}")
        for name, low in (("max_new_tokens", 1), ("num_beams", 1), ("warmup", 0), ("limit", 0), ("threads", 1),
                          ("batch_size", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise PdcError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default); None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def summarize(latencies: Sequence[float], generated_tokens: Sequence[int] | None = None) -> dict[str, Any]:
    """n, mean and p50/p90/p99 latency in seconds; tokens_per_s = all generated tokens / all time."""
    n = len(latencies)
    total = sum(latencies)
    out: dict[str, Any] = {"n": n, "mean_s": _r(total / n) if n else None}
    for q in (50, 90, 99):
        out[f"p{q}_s"] = _r(percentile(latencies, q))
    tokens = sum(generated_tokens) if generated_tokens is not None else None
    out["tokens_per_s"] = round(tokens / total, 3) if tokens is not None and total > 0 else None
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own
    memory. (getrusage's ru_maxrss is not: it keeps the high-water mark of the
    forked copy of the parent across exec, so a child of a large process reports
    the parent's size.) Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)
    except (OSError, ValueError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return round(getattr(info, "peak_wset", info.rss) / 2**20, 1)


def rss_mb() -> float:
    """This process's resident set size in MiB (/proc on Linux, so the edge runtime needs no psutil)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def machine(backend: str) -> dict[str, Any]:
    """Where the numbers were measured."""
    info: dict[str, Any] = {
        "platform": platform.platform(), "arch": platform.machine(), "cpu": _cpu_name(),
        "logical_cores": os.cpu_count(), "physical_cores": _physical_cores(),
        "python": platform.python_version(),
    }
    if backend == "torch":
        import torch

        info["torch"] = torch.__version__
    else:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    return info


def _physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:  # the edge install has no psutil
        return None
    return psutil.cpu_count(logical=False)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def detect_backend(model_dir: str, backend: str = "auto") -> str:
    """torch or onnx for `model_dir`, checking that the directory holds what the backend needs."""
    from pdc.export import onnx_files, variants_in

    if not os.path.isdir(model_dir):
        raise PdcError(f"model directory {model_dir} does not exist, check --model")
    has_onnx = bool(onnx_files(model_dir))
    variants = variants_in(model_dir)
    if not has_onnx and variants:
        raise PdcError(f"{model_dir} is a pdc export, name a variant: "
                       + " or ".join(f"--model {v}" for v in variants))
    if backend == "auto":
        return "onnx" if has_onnx else "torch"
    if backend == "onnx" and not has_onnx:
        raise PdcError(f"no *.onnx files in {model_dir}, export it first: pdc export --model {model_dir} --out DIR")
    if backend == "torch" and has_onnx and not any(
            f.endswith((".safetensors", ".bin")) for f in os.listdir(model_dir)):
        raise PdcError(f"{model_dir} holds only ONNX weights, use --backend onnx (or auto)")
    return backend


class Bencher:
    """A loaded model (pdc.edge for ONNX, PyTorch otherwise) and the latencies measured so far."""

    def __init__(self, model_dir: str, cfg: BenchConfig):
        from pdc.generate import load_runner

        cfg.check()
        self.model_dir, self.cfg = model_dir, cfg
        self.backend = detect_backend(model_dir, cfg.backend)
        self.threads = cfg.threads or available_cores()
        # libraries are imported before the clock starts: load_s is the model alone
        if self.backend == "onnx":
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        else:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        before = rss_mb()
        start = time.perf_counter()
        self.runner, _ = load_runner(model_dir, self.backend, threads=self.threads)
        self.load_s = time.perf_counter() - start
        self.model_rss_mb = rss_mb() - before
        self.max_new = self.runner.max_new_tokens(cfg.max_new_tokens)
        self.latencies: list[float] = []  # one per batch
        self.generated: list[int] = []  # tokens per batch
        self.samples = 0

    def precision(self) -> str:
        block = self.runner.config.get("export") or {}
        if self.backend == "onnx":
            return block.get("precision", "unknown")
        return str(getattr(self.runner.student.model, "dtype", "unknown")).replace("torch.", "")

    def _once(self, text: str) -> tuple[int, int]:
        ids = self.runner.encode(text)  # (S,)
        out = self.runner.generate(ids, self.max_new, self.cfg.num_beams)
        self.runner.decode(out)
        return len(ids), len(out)

    def run(self, record: dict[str, Any], where: str) -> dict[str, Any]:
        """Time one problem record (field `nl`); the per-sample record."""
        return self.run_batch([(record, where)])[0]

    def close(self) -> None:
        """Give torch back its thread count: a library call leaves the process as it found it."""
        self.runner.close()

    def run_batch(self, items: Sequence[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        """Time problems generated together (one padded greedy batch; beams: one after another).

        Each problem's record carries the batch's wall time as its latency_s: what
        each of them waited for its output.
        """
        from pdc.tasks import code_input

        texts = [code_input(require(record, "nl", where), self.runner.markers) for record, where in items]
        if not self.latencies:
            for _ in range(self.cfg.warmup):
                self._batch(texts)
        start = time.perf_counter()
        sizes = self._batch(texts)
        latency = time.perf_counter() - start
        self.latencies.append(latency)
        self.generated.append(sum(g for _, g in sizes))
        self.samples += len(items)
        out = []
        for (record, where), (input_tokens, generated) in zip(items, sizes):
            rid = record.get("id")
            out.append({"id": rid if isinstance(rid, (str, int)) else where, "latency_s": _r(latency),
                        "input_tokens": input_tokens, "generated_tokens": generated,
                        "tokens_per_s": round(generated / latency, 3) if latency > 0 else None})
        return out

    def _batch(self, texts: list[str]) -> list[tuple[int, int]]:
        if len(texts) == 1:
            return [self._once(texts[0])]
        batch = [self.runner.encode(t) for t in texts]
        if self.cfg.num_beams == 1:
            outs = self.runner.greedy(batch, self.max_new)
        else:
            outs = [self.runner.generate(ids, self.max_new, self.cfg.num_beams) for ids in batch]
        for ids in outs:
            self.runner.decode(ids)
        return [(len(i), len(o)) for i, o in zip(batch, outs)]

    def summary(self) -> dict[str, Any]:
        """The final record: latency distribution, load time, memory, settings and machine."""
        out: dict[str, Any] = {"summary": True, "backend": self.backend, "precision": self.precision(),
                               "model": self.model_dir}
        out.update(summarize(self.latencies, self.generated))
        out["n"] = self.samples  # problems; the percentiles are over batches (of batch_size problems)
        out["batches"] = len(self.latencies)
        total = sum(self.latencies)
        out["samples_per_s"] = round(self.samples / total, 3) if total > 0 else None
        out.update({"load_s": _r(self.load_s), "peak_rss_mb": peak_rss_mb(),
                    "model_rss_mb": round(self.model_rss_mb, 1), "threads": self.threads,
                    "max_new_tokens": self.max_new, "num_beams": self.cfg.num_beams, "warmup": self.cfg.warmup,
                    "batch_size": self.cfg.batch_size, "machine": machine(self.backend)})
        return out


def bench(model_dir: str, problems: Iterable[dict[str, Any]], cfg: BenchConfig | None = None,
          **overrides: Any) -> Iterator[dict[str, Any]]:
    """Yield one latency record per problem (at most cfg.limit), then the summary record.

    `overrides` set BenchConfig fields (`bench(d, recs, backend="onnx", threads=1)`).
    """
    known = {f.name for f in fields(BenchConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown bench option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    cfg = replace(cfg or BenchConfig(), **overrides)
    bencher = Bencher(model_dir, cfg)
    try:
        group: list[tuple[dict[str, Any], str]] = []
        for i, record in enumerate(problems):
            if cfg.limit is not None and i >= cfg.limit:
                break
            group.append((record, f"problem {i}"))
            if len(group) == cfg.batch_size:
                yield from bencher.run_batch(group)
                group = []
        if group:
            yield from bencher.run_batch(group)
        yield bencher.summary()
    finally:
        bencher.close()



# --- several models side by side ------------------------------------------------------------

COMPARED = ("model", "backend", "precision", "batch_size", "num_beams", "n", "mean_s", "p50_s", "p90_s", "p99_s",
            "tokens_per_s", "samples_per_s", "load_s", "peak_rss_mb")


def compare(models: Sequence[str], problems_path: str, cfg: BenchConfig | None = None, *,
            batch_sizes: Sequence[int] = (1,), beam_widths: Sequence[int] = (1,),
            log=lambda message: None) -> Iterator[dict[str, Any]]:
    """Bench every model x batch size x beam width on the same problems, each in a fresh process.

    A process of its own gives each run its own peak RSS and load time (nothing
    loaded by an earlier run is counted). Yields each run's summary record (plus
    "run": its index) as it finishes, then one {"comparison": true, "rows": [...]}
    record: the summaries' main figures with latency_ratio and peak_rss_ratio
    against the first model at the same batch size and beam width.
    """
    import subprocess

    cfg = cfg or BenchConfig()
    cfg.check()
    for model in models:
        detect_backend(model, cfg.backend)  # fail before the first run
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        for beams in beam_widths:
            for model in models:
                cmd = [sys.executable, "-m", "pdc", "bench", "--model", model, "--backend", cfg.backend,
                       "--batch-size", str(batch), "--num-beams", str(beams), "--warmup", str(cfg.warmup),
                       "--max-new-tokens", str(cfg.max_new_tokens or 0), "--limit", str(cfg.limit or 0),
                       "--threads", str(cfg.threads or 0), problems_path]
                log(f"bench: {model}, batch {batch}, {beams} beam(s)")
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    raise PdcError(f"bench of {model} (batch {batch}, {beams} beams) failed: {last}")
                import json

                summary = json.loads(proc.stdout.strip().splitlines()[-1])
                summary["run"] = len(rows)
                yield summary
                rows.append({key: summary.get(key) for key in COMPARED})
    for row in rows:
        base = next(r for r in rows if r["model"] == models[0] and r["batch_size"] == row["batch_size"]
                    and r["num_beams"] == row["num_beams"])
        row["latency_ratio"] = round(row["mean_s"] / base["mean_s"], 3) if row["mean_s"] and base["mean_s"] else None
        row["peak_rss_ratio"] = round(row["peak_rss_mb"] / base["peak_rss_mb"], 3) if base["peak_rss_mb"] else None
    yield {"comparison": True, "baseline": models[0], "rows": rows}


def chart(comparison: dict[str, Any], path: str) -> None:
    """A PNG of a comparison record: mean latency and peak RSS per run (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PdcError("--chart needs matplotlib (pip install matplotlib), or leave --chart out") from None
    rows = comparison["rows"]
    labels = [f"{os.path.basename(os.path.normpath(r['model']))}\n{r['backend']} {r['precision']}\n"
              f"b{r['batch_size']} k{r['num_beams']}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(rows) * 2), 4))
    left.bar(range(len(rows)), [r["mean_s"] or 0 for r in rows], color="tab:blue")
    left.set_title("mean latency per sample (s)")
    right.bar(range(len(rows)), [r["peak_rss_mb"] or 0 for r in rows], color="tab:orange")
    right.set_title("peak RSS (MiB)")
    for ax in (left, right):
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
