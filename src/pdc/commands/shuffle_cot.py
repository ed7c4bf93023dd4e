"""pdc shuffle-cot: the ablation step."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from pdc.options import Inputs, OnErrorOpt, Seed, input_paths
from pdc.stream import OnError


class Mode(str, Enum):
    shuffle = "shuffle"
    replace = "replace"


def shuffle_cot(
    inputs: Inputs = None,
    mode: Annotated[Mode, typer.Option("--mode", help="shuffle: permute a record's own steps; replace: use another record's pseudocode.")] = Mode.shuffle,
    seed: Seed = 0,
    window: Annotated[int, typer.Option("--window", min=2, help="replace: records per donor window (memory bound).")] = 1000,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Shuffle or replace each record's pseudocode (the paper's Table 4 ablation).

    Deterministic under --seed; each changed record says what was done in its
    `ablation` field. Records whose extraction failed pass through unchanged.

    \b
        pdc extract --teacher ast < problems.jsonl | pdc shuffle-cot --mode replace --seed 1 > cot-replaced.jsonl
    """
    from pdc import shuffle_cot as core
    from pdc.errors import RecordError
    from pdc.jsonl import Writer, read_lines
    from pdc.stream import Tally, apply, error_record, finish

    lines = read_lines(input_paths(inputs), tolerant=True)
    writer = Writer()
    if mode is Mode.shuffle:
        tally = apply(lines, lambda record, where: iter([core.shuffle(record, where, seed)]), writer, on_error)
        finish(tally)
        return

    tally = Tally()

    def usable():
        for line in lines:
            tally.read += 1
            try:
                if line.error is not None:
                    raise line.error
                core.steps_of(line.record, line.where)
                yield line.record, line.where
            except RecordError as e:
                if on_error is OnError.stop:
                    raise
                tally.failed += 1
                if on_error is OnError.emit:
                    yield error_record(line.where, line.record, e), line.where

    for out in core.replace(usable(), seed, window):
        writer.write(out)
    finish(tally)
