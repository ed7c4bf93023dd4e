"""pdc bench: per-sample generation latency, PyTorch or ONNX, batch size 1."""

from __future__ import annotations

from typing import Annotated

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
    flush()
    summary = bencher.summary()
    writer.write(summary)
    if summary["n"]:
        info(f"bench: n={summary['n']} mean {summary['mean_s'] * 1000:.1f} ms, p50 {summary['p50_s'] * 1000:.1f} ms, "
             f"p90 {summary['p90_s'] * 1000:.1f} ms, {summary['tokens_per_s']} tokens/s")
    finish(tally, "problems")
