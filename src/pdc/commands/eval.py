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
    name: Annotated[Optional[str], typer.Option("--name", help="Run name in the summary (for pdc table).")] = None,
) -> None:
    """Generate code with k beams and score it: TM, SM, DM, CB and exact match, top-1 and top-k.

    One output record per input record (predictions best first, beam scores,
    sentence CodeBLEU per beam), then a summary record ("summary": true).

    \b
        pdc eval --model runs/demo/distilled --name distilled < cot.jsonl | tail -1 | pdc table
    """
    from pdc import eval as core
    from pdc.jsonl import Writer, read_lines

    cfg = core.EvalConfig(beams=beams, batch_size=batch_size, max_new_tokens=max_new_tokens,
                          split=split, mode=mode, limit=limit)
    core.run(read_lines(input_paths(inputs)), cfg, model, score_field, Writer().write, name)
