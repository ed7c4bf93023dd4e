"""pdc eval: generate with a student and score against the reference."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pdc.options import Inputs, input_paths


def eval(  # noqa: A001 - the command is called eval
    inputs: Inputs = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Trained student directory; without it, records' predictions are scored as they are.")] = None,
    beams: Annotated[int, typer.Option("--beams", "-k", help="Beams kept per record (top-k).")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records generated together.")] = 8,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generated tokens at most (0 = the model's max_target_length).")] = 0,
    split: Annotated[str, typer.Option("--split", help="Evaluate records of this split (train, valid, test, all).")] = "test",
    mode: Annotated[str, typer.Option("--mode", help="direct: code from the problem; plan: the student's pseudocode first, then code.")] = "direct",
    limit: Annotated[int, typer.Option("--limit", help="Evaluate at most N records (0 = all).")] = 0,
    score_field: Annotated[str, typer.Option("--score-field", help="Without --model: the field holding the predictions (predictions, teacher_code).")] = "predictions",
    workers: Annotated[int, typer.Option("--workers", help="Processes computing the metrics (and sandbox runs at once with --exec).")] = 1,
    exec_: Annotated[bool, typer.Option("--exec", help="Run every candidate against the record's `tests` in a sandbox; pass@1 and pass@k in the summary (Python).")] = False,
    exec_timeout: Annotated[float, typer.Option("--exec-timeout", help="Wall-clock seconds per sandbox run.")] = 10.0,
    exec_memory_mb: Annotated[int, typer.Option("--exec-memory-mb", help="Memory (address space) per sandbox run, MiB.")] = 1024,
    security: Annotated[bool, typer.Option("--security", help="Scan the Python records' first candidates with bandit: warnings per 1,000 snippets by severity.")] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name in the summary (for pdc table).")] = None,
) -> None:
    """Generate code with k beams and score it: TM, SM, DM, CB and exact match, top-1 and top-k.

    One output record per input record (predictions best first, beam scores,
    sentence CodeBLEU per beam), then a summary record ("summary": true).

    \b
        pdc eval --model runs/demo/distilled --name distilled < cot.jsonl | tail -1 | pdc table
        pdc prepare mbpp.jsonl | pdc eval --model runs/demo/distilled --exec --security | tail -1
    """
    from pdc import eval as core
    from pdc.jsonl import Writer, read_lines

    cfg = core.EvalConfig(beams=beams, batch_size=batch_size, max_new_tokens=max_new_tokens,
                          split=split, mode=mode, limit=limit, workers=workers, exec=exec_,
                          exec_timeout=exec_timeout, exec_memory_mb=exec_memory_mb, security=security)
    core.run(read_lines(input_paths(inputs)), cfg, model, score_field, Writer().write, name)
