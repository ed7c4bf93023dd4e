"""Pseudocode and code for problems, from a trained student (PyTorch) or an export (ONNX).

    from pdc.generate import Generator
    gen = Generator("runs/demo/export/int8")          # ONNX: the torch-free edge runtime
    print(gen.run("Reverse the string s.")["code"])

The student first writes its numbered pseudocode for the problem (the
`[pseudocode] <problem>` task), then its code: from `[code] <problem>`, or, for a
student trained with `--code-input nl+pseudocode`, from
`[code] <problem> [plan] <its own pseudocode>` (markers and the input format come
from the model's pdc_config.json, as in training).

A directory holding *.onnx files (pdc export's OUT/fp32, OUT/int8) runs on
`pdc.edge` (onnxruntime, tokenizers, numpy: no torch); any other directory on
PyTorch with transformers' `generate`. Both search the same way, so an fp32
export writes what the PyTorch student writes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from pdc.errors import PdcError
from pdc.jsonl import require

TASKS = ("both", "code", "pseudocode")


@dataclass
class GenerateConfig:
    backend: str = "auto"               # auto: onnx (edge runtime) if the directory holds *.onnx files, else torch
    task: str = "both"                  # both, code or pseudocode
    num_beams: int = 1                  # 1 is greedy search
    max_new_tokens: int | None = None   # None: the student's max_target_length, else 64
    threads: int | None = None          # intra-op threads; None: the library's default

    def check(self) -> None:
        if self.backend not in ("auto", "torch", "onnx"):
            raise PdcError(f"unknown backend '{self.backend}', choose auto, torch or onnx")
        if self.task not in TASKS:
            raise PdcError(f"unknown task '{self.task}', choose {', '.join(TASKS)}")
        if self.num_beams < 1:
            raise PdcError(f"--num-beams must be at least 1, got {self.num_beams}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise PdcError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")


def has_onnx(model_dir: str) -> bool:
    return os.path.isdir(model_dir) and any(f.endswith(".onnx") for f in os.listdir(model_dir))


def backend_for(model_dir: str, backend: str = "auto") -> str:
    """onnx or torch for `model_dir`; an export root (OUT with fp32/ and int8/) is refused with the variants."""
    if not os.path.isdir(model_dir):
        raise PdcError(f"model directory {model_dir} does not exist, check --model")
    if not has_onnx(model_dir):
        variants = [os.path.join(model_dir, v) for v in ("int8", "fp32") if has_onnx(os.path.join(model_dir, v))]
        if variants:
            raise PdcError(f"{model_dir} is a pdc export, name a variant: "
                           + " or ".join(f"--model {v}" for v in variants))
    if backend == "auto":
        return "onnx" if has_onnx(model_dir) else "torch"
    if backend == "onnx" and not has_onnx(model_dir):
        raise PdcError(f"no *.onnx files in {model_dir}, export it first: pdc export --model {model_dir} --out DIR")
    return backend


class TorchRunner:
    """A PyTorch student with the EdgeModel interface (encode, generate, decode)."""

    def __init__(self, model_dir: str, threads: int | None = None):
        import torch

        from pdc.students import load_trained

        self.threads_before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            self.student = load_trained(model_dir)
        except BaseException:
            self.close()
            raise
        self.config = self.student.config
        self.markers = self.student.markers
        self.generation_config = {}

    def close(self) -> None:
        """Give torch back the thread count it had: a library call leaves the process as it found it
        (training results depend on the count)."""
        import torch

        torch.set_num_threads(self.threads_before)

    def max_new_tokens(self, max_new_tokens: int | None = None) -> int:
        return int(max_new_tokens or self.config.get("max_target_length") or 64)

    def encode(self, text: str) -> list[int]:
        max_len = int(self.config.get("max_source_length") or 512)
        return self.student.tokenizer(text, truncation=True, max_length=max_len)["input_ids"]

    def generate(self, ids: list[int], max_new_tokens: int | None = None, num_beams: int = 1) -> list[int]:
        return self.greedy_or_beams([ids], max_new_tokens, num_beams)[0]

    def greedy(self, batch: list[list[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        return self.greedy_or_beams(batch, max_new_tokens, 1)

    def greedy_or_beams(self, batch: list[list[int]], max_new_tokens: int | None, num_beams: int) -> list[list[int]]:
        import torch

        tok = self.student.tokenizer
        enc = tok.pad({"input_ids": batch}, return_tensors="pt")  # input_ids, attention_mask: (B, S)
        with torch.inference_mode():
            out = self.student.model.generate(**enc, max_new_tokens=self.max_new_tokens(max_new_tokens),
                                              num_beams=num_beams, do_sample=False,
                                              early_stopping=num_beams > 1)  # (B, 1 + T)
        pad, eos = tok.pad_token_id, tok.eos_token_id
        rows = []
        for row in out[:, 1:].tolist():  # decoder start dropped; rows that stopped early are padded
            if eos in row:
                row = row[:row.index(eos) + 1]
            elif len(batch) > 1 or num_beams > 1:
                while row and row[-1] == pad:
                    row.pop()
            rows.append(row)
        return rows

    def decode(self, ids: list[int]) -> str:
        return self.student.tokenizer.decode(ids, skip_special_tokens=True)


def load_runner(model_dir: str, backend: str = "auto", threads: int | None = None, spin: bool = True):
    """(runner, backend): pdc.edge.EdgeModel for ONNX directories, a TorchRunner otherwise."""
    backend = backend_for(model_dir, backend)
    if backend == "onnx":
        from pdc.edge import EdgeModel

        return EdgeModel(model_dir, threads=threads, spin=spin), backend
    return TorchRunner(model_dir, threads=threads), backend


class Generator:
    """A loaded student that writes pseudocode and code for problem texts."""

    def __init__(self, model_dir: str, cfg: GenerateConfig | None = None, **overrides: Any):
        from dataclasses import replace

        self.cfg = replace(cfg or GenerateConfig(), **overrides)
        self.cfg.check()
        self.model_dir = model_dir
        start = time.perf_counter()
        self.runner, self.backend = load_runner(model_dir, self.cfg.backend, self.cfg.threads)
        self.load_s = time.perf_counter() - start
        export = self.runner.config.get("export") or {}
        self.precision = export.get("precision", "fp32" if self.backend == "onnx" else "float32")
        self.with_plan = self.runner.config.get("code_input") == "nl+pseudocode"

    def _text(self, text: str) -> str:
        ids = self.runner.generate(self.runner.encode(text), self.cfg.max_new_tokens, self.cfg.num_beams)
        return self.runner.decode(ids)

    def run(self, nl: str) -> dict[str, Any]:
        """{"pseudocode": [steps] or None, "code": str or None} for one problem text."""
        from pdc.tasks import code_input, parse_pseudocode, pseudocode_input

        markers = self.runner.markers
        steps = None
        if self.cfg.task in ("both", "pseudocode") or (self.cfg.task == "code" and self.with_plan):
            steps = parse_pseudocode(self._text(pseudocode_input(nl, markers)))
        code = None
        if self.cfg.task in ("both", "code"):
            code = self._text(code_input(nl, markers, plan=steps if self.with_plan else None))
        return {"pseudocode": steps if self.cfg.task != "code" else None, "code": code}

    def close(self) -> None:
        """Undo what loading changed in the process (PyTorch's thread count)."""
        self.runner.close()

    def provenance(self) -> dict[str, Any]:
        """Which model wrote the output, and how."""
        return {"model": self.model_dir, "backend": self.backend, "precision": self.precision,
                "num_beams": self.cfg.num_beams, "max_new_tokens": self.runner.max_new_tokens(self.cfg.max_new_tokens),
                "code_input": "nl+pseudocode" if self.with_plan else "nl"}

    def record(self, record: dict[str, Any], where: str) -> dict[str, Any]:
        """The output record for one problem record (field `nl`; `id` kept)."""
        nl = require(record, "nl", where)
        rid = record.get("id")
        out = {"id": rid if isinstance(rid, (str, int)) else where, "nl": nl}
        start = time.perf_counter()
        out.update(self.run(nl))
        out["seconds"] = round(time.perf_counter() - start, 4)
        out["generated_by"] = self.provenance()
        return out


def generate(model_dir: str, problems: Iterable[dict[str, Any] | str], cfg: GenerateConfig | None = None,
             **overrides: Any) -> Iterator[dict[str, Any]]:
    """Yield one output record (id, nl, pseudocode, code, seconds, generated_by) per problem."""
    gen = Generator(model_dir, cfg, **overrides)
    try:
        for i, problem in enumerate(problems):
            record = {"id": f"problem {i}", "nl": problem} if isinstance(problem, str) else problem
            yield gen.record(record, f"problem {i}")
    finally:
        gen.close()
