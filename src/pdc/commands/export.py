"""pdc export: a trained student as ONNX (fp32 and int8), checked against PyTorch."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pdc.options import ModelDir


def export(
    model: ModelDir,
    out: Annotated[str, typer.Option("--out", "-o", help="Export directory to create: OUT/fp32, OUT/int8, OUT/export.json.")],
    quantize: Annotated[bool, typer.Option("--quantize/--no-quantize", help="Also write OUT/int8 (dynamic int8 weights).")] = True,
    parity: Annotated[int, typer.Option("--parity", help="Check greedy generation on N problems, PyTorch vs ONNX (0 = skip).", min=0)] = 8,
    problems: Annotated[Optional[str], typer.Option("--problems", help="JSONL problem records (field nl) for the parity check; '-' reads stdin. Default: built-in samples.")] = None,
    force: Annotated[bool, typer.Option("--force", "--overwrite", help="Replace an existing OUT that holds an earlier export.")] = False,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (0 = the exporter's default).", min=0)] = 0,
    target: Annotated[str, typer.Option("--target", help="CPU the int8 model will run on: x86 (per-tensor scales) or arm64 (per-channel scales; Raspberry Pi).")] = "x86",
    min_fp32_parity: Annotated[float, typer.Option("--min-fp32-parity", help="Fail (writing nothing) if fp32 agrees with PyTorch on fewer than this share of the parity problems.", min=0, max=1)] = 0.99,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens generated in the parity check (0 = the model's max_target_length, else 64).", min=0)] = 0,
) -> None:
    """Export a student to ONNX (fp32, int8) and check it generates what PyTorch does.

    Writes OUT/fp32 and OUT/int8 (each loadable on its own) atomically, then
    prints one JSONL record: files and sizes, and per variant the parity of
    greedy generation with the PyTorch model (agreement rate, first divergent
    token per disagreeing input).

    \b
        pdc prepare --harvest --limit 8 | pdc export --model runs/demo/model --out runs/demo/export --problems -
    """
    from itertools import islice

    from pdc import export as core
    from pdc.jsonl import Writer, check_not_terminal, read_lines, require
    from pdc.log import info

    records = None
    if problems is not None and parity:
        check_not_terminal([problems])
        records = []
        for line in islice(read_lines([problems]), parity):  # a bad line stops here, named by file:line
            require(line.record, "nl", line.where)
            records.append(line.record)
    record = core.export(model, out, quantize=quantize, parity_n=parity, problems=records, force=force,
                         opset=opset or None, max_new_tokens=max_new_tokens or None, target=target, min_fp32_parity=min_fp32_parity, log=info)
    for name in core.VARIANTS:
        checked = (record.get(name) or {}).get("parity")
        if checked and checked["n"] and checked["agree"] < checked["n"]:
            info(f"note: {name} differs from PyTorch on {checked['n'] - checked['agree']} of {checked['n']} inputs"
                 + (" (expected for int8; check the task metrics with pdc eval)" if name == "int8" else ""))
    info(f"wrote {out} ({record['total_bytes'] / 2**20:.1f} MiB) in {record['seconds']:.1f} s")
    Writer().write(record)
