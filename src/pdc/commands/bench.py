"""pdc bench: per-sample generation latency, PyTorch or ONNX, batch size 1."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from pdc.options import Inputs, ModelDir, OnErrorOpt, input_paths
from pdc.stream import OnError


def bench(
    inputs: Inputs = None,
    model: ModelDir = ...,
    backend: Annotated[str, typer.Option("--backend", help="auto (onnx if the directory holds *.onnx files), torch or onnx.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generated tokens at most (0 = the model's max_target_length, else 64).", min=0)] = 0,
    num_beams: Annotated[int, typer.Option("--num-beams", "-k", help="Beams (1 = greedy).", min=1)] = 1,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs of the first problem before timing.", min=0)] = 1,
    limit: Annotated[int, typer.Option("--limit", help="Time at most N problems (0 = all).", min=0)] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Problems generated together (greedy: one padded batch).", min=1)] = 1,
    threads: Annotated[int, typer.Option("--threads", help="Intra-op threads (0 = every core this process may use).", min=0)] = 0,
    compare: Annotated[Optional[List[str]], typer.Option("--compare", help="Also bench this model directory (repeatable), each run in its own process, then print a comparison record.", rich_help_panel="Side by side")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="With --compare: sweep these batch sizes, e.g. 1,4.", rich_help_panel="Side by side")] = None,
    beam_widths: Annotated[Optional[str], typer.Option("--beam-widths", help="With --compare: sweep these beam widths, e.g. 1,5.", rich_help_panel="Side by side")] = None,
    chart: Annotated[Optional[str], typer.Option("--chart", help="With --compare: write a PNG chart of latency and peak memory (needs matplotlib).", rich_help_panel="Side by side")] = None,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Time generation per problem (field nl), one at a time, then print a latency summary.

    Backend from the directory: *.onnx files (pdc export's OUT/fp32, OUT/int8)
    run on onnxruntime, anything else on PyTorch. One record per problem (id,
    latency_s, input_tokens, generated_tokens, tokens_per_s), flushed as it is
    measured, then a summary record ("summary": true) with mean/p50/p90/p99,
    tokens/s, load time, peak RSS, threads and machine.

    \b
        pdc prepare --harvest --limit 20 | pdc bench --model runs/demo/export/int8 | tail -1
    """
    from itertools import islice

    from pdc import bench as core
    from pdc.jsonl import Writer, read_lines
    from pdc.log import info
    from pdc.errors import RecordError
    from pdc.stream import apply, finish

    cfg = core.BenchConfig(backend=backend, max_new_tokens=max_new_tokens or None, num_beams=num_beams,
                           warmup=warmup, limit=limit or None, threads=threads or None,
                           batch_size=batch_size)
    cfg.check()
    paths = input_paths(inputs)  # refuse a terminal before loading the model
    if compare or batch_sizes or beam_widths or chart:
        _compare(model, compare or [], paths, cfg, batch_sizes, beam_widths, chart)
        return
    bencher = core.Bencher(model, cfg)
    info(f"bench: {bencher.backend} ({bencher.precision()}) {model}, {bencher.threads} threads, "
         f"loaded in {bencher.load_s:.2f} s")
    lines = read_lines(paths, tolerant=on_error is not OnError.stop)
    if cfg.limit:
        lines = islice(lines, cfg.limit)
    writer = Writer()
    group: list = []

    def step(record: dict, where: str):
        from pdc.jsonl import require

        require(record, "nl", where)  # a bad record is settled on its own line, not in a batch
        group.append((record, where))
        if len(group) == cfg.batch_size:
            yield from bencher.run_batch(group)
            group.clear()

    def flush() -> None:  # the last, short batch; or the one a bad record cut short (--on-error stop)
        if group:
            for out in bencher.run_batch(group):
                writer.write(out)
            group.clear()

    try:
        tally = apply(lines, step, writer, on_error)
    except RecordError:
        flush()
        raise
    else:
        flush()
    finally:
        bencher.close()
    summary = bencher.summary()
    writer.write(summary)
    if summary["n"]:
        info(f"bench: n={summary['n']} mean {summary['mean_s'] * 1000:.1f} ms, p50 {summary['p50_s'] * 1000:.1f} ms, "
             f"p90 {summary['p90_s'] * 1000:.1f} ms, {summary['tokens_per_s']} tokens/s")
    finish(tally, "problems")


def _int_list(text: str | None, default: int, name: str) -> list[int]:
    from pdc.errors import PdcError

    if not text:
        return [default]
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PdcError(f"{name} takes comma-separated integers, e.g. 1,4; got '{text}'", exit_code=2) from None
    if not values or min(values) < 1:
        raise PdcError(f"{name} values must be at least 1, got '{text}'", exit_code=2)
    return values


def _compare(model: str, others: list[str], paths: list[str], cfg, batch_sizes, beam_widths, chart) -> None:
    """--compare: every model (x --batch-sizes x --beam-widths) in its own process, same problems."""
    import os
    import shutil
    import tempfile

    from pdc import bench as core
    from pdc.jsonl import Writer
    from pdc.log import info

    batches = _int_list(batch_sizes, cfg.batch_size, "--batch-sizes")
    if chart:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            from pdc.errors import PdcError

            raise PdcError("--chart needs matplotlib (pip install matplotlib), or leave --chart out") from None
    beams = _int_list(beam_widths, cfg.num_beams, "--beam-widths")
    tmp = None
    if paths == ["-"]:  # every run reads the same problems: keep stdin in a file
        tmp = tempfile.mkdtemp(prefix="pdc-bench-")
        with open(os.path.join(tmp, "problems.jsonl"), "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin, fh)
        paths = [os.path.join(tmp, "problems.jsonl")]
    if len(paths) != 1:
        from pdc.errors import PdcError

        raise PdcError("--compare reads one problems file (or stdin)", exit_code=2)
    writer = Writer()
    try:
        for record in core.compare([model, *others], paths[0], cfg, batch_sizes=batches, beam_widths=beams, log=info):
            writer.write(record)
            if record.get("comparison"):
                for r in record["rows"]:
                    info(f"  {r['model']} ({r['backend']} {r['precision']}, batch {r['batch_size']}, "
                         f"{r['num_beams']} beams): mean {r['mean_s']} s, peak {r['peak_rss_mb']} MiB, "
                         f"x{r['latency_ratio']} latency, x{r['peak_rss_ratio']} memory")
                if chart:
                    core.chart(record, chart)
                    info(f"bench: wrote {chart}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
