"""Generate code with a student and score it against the reference (the paper's Table 3).

Per record: the k beams (best first) and their scores. Summary: TM, SM, DM,
CB and exact match for

    top1  the first beam of every record, scored as a corpus;
    topk  per record, an exactly matching beam if there is one, else the beam
          with the highest sentence-level CodeBLEU against the reference (the
          earliest on ties), then scored as a corpus: an oracle choice, as in
          the paper's top-5 column; `em_any` counts a record exact when any beam is.

How each figure is computed is copied from `pdc.metrics.METHOD` into the summary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

from pdc.errors import PdcError, RecordError
from pdc.tasks import code_input, parse_pseudocode, pseudocode_input



@dataclass
class EvalConfig:
    beams: int = 5                 # k: beams kept per record
    batch_size: int = 8            # records generated together
    max_new_tokens: int = 0        # 0 = the model's max_target_length (pdc_config), else 256
    split: str = "test"            # records of this split ("all" = every record)
    mode: str = "direct"           # direct: [code] nl -> code; plan: [pseudocode] nl -> steps, then code
    limit: int = 0                 # 0 = all matching records

    def check(self) -> None:
        if self.beams < 1 or self.batch_size < 1:
            raise PdcError("--beams and --batch-size must be at least 1")
        if self.mode not in ("direct", "plan"):
            raise PdcError(f"--mode must be direct or plan, not {self.mode!r}")


def selected(lines: Iterable, cfg: EvalConfig) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, where) of the split being evaluated, checked for the fields eval needs."""
    taken = 0
    for line in lines:
        if line.error is not None:
            raise line.error
        record, where = line.record, line.where
        if cfg.split != "all" and record.get("split", cfg.split) != cfg.split:
            continue
        for name in ("id", "lang", "nl", "code"):
            if not isinstance(record.get(name), str):
                raise RecordError(where, name, "missing or not a string")
        yield record, where
        taken += 1
        if cfg.limit and taken >= cfg.limit:
            return


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Generator:
    """Batched beam search with a trained student, inputs formatted as in training."""

    def __init__(self, student, cfg: EvalConfig):
        import torch

        self.torch = torch
        self.student, self.cfg = student, cfg
        conf = student.config
        self.max_source = int(conf.get("max_source_length", 512))
        self.max_new = cfg.max_new_tokens or int(conf.get("max_target_length", 256))
        self.markers = student.markers
        if cfg.mode == "plan" and conf.get("code_input", "nl") != "nl+pseudocode":
            from pdc.log import console

            console.print("warning: --mode plan on a student trained with --code-input nl; "
                          "its code task never saw a plan", markup=False)

    def _generate(self, texts: list[str], beams: int) -> tuple[list[list[str]], list[list[float | None]]]:
        tok, model = self.student.tokenizer, self.student.model
        enc = tok(texts, padding=True, truncation=True, max_length=self.max_source, return_tensors="pt")
        enc = {k: enc[k].to(model.device) for k in ("input_ids", "attention_mask")}
        with self.torch.inference_mode():
            out = model.generate(**enc, num_beams=beams, num_return_sequences=beams, do_sample=False,
                                 max_new_tokens=self.max_new, early_stopping=beams > 1,
                                 return_dict_in_generate=True, output_scores=beams > 1)
        decoded = tok.batch_decode(out.sequences, skip_special_tokens=True)  # (B*beams,)
        scores = out.sequences_scores.tolist() if beams > 1 else [None] * len(decoded)
        grouped = [decoded[i * beams:(i + 1) * beams] for i in range(len(texts))]
        grouped_scores = [scores[i * beams:(i + 1) * beams] for i in range(len(texts))]
        return grouped, grouped_scores

    def code(self, nls: list[str]) -> tuple[list[list[str]], list[list[float | None]], list[list[str] | None]]:
        """k code candidates per problem (and the plan used, in plan mode)."""
        plans: list[list[str] | None] = [None] * len(nls)
        if self.cfg.mode == "plan":
            texts, _ = self._generate([pseudocode_input(nl, self.markers) for nl in nls], 1)
            plans = [parse_pseudocode(t[0]) for t in texts]
        inputs = [code_input(nl, self.markers, plan) for nl, plan in zip(nls, plans)]
        preds, scores = self._generate(inputs, self.cfg.beams)
        return preds, scores, plans


def score_record(record: dict[str, Any], predictions: list[str]) -> dict[str, Any]:
    """Sentence-level CodeBLEU of each beam, the oracle choice, and exact matches."""
    from pdc.metrics import exact_match, sentence_codebleu

    ref, lang = record["code"], record["lang"]
    cbs = [sentence_codebleu(p, ref, lang) for p in predictions]
    exact = [exact_match(p, ref) for p in predictions]
    # the rule of pdc.metrics.best_beam (exact first, then CodeBLEU, earliest on ties),
    # reusing the scores computed here for the output
    best = max(range(len(cbs)), key=lambda i: (exact[i], cbs[i]))
    return {"codebleu": [round(c, 4) for c in cbs], "best_index": best,
            "exact_top1": exact[0], "exact_any": any(exact)}


def eval_records(records: Iterable[tuple[dict[str, Any], str]], cfg: EvalConfig, student=None,
                 score_field: str = "predictions") -> Iterator[dict[str, Any]]:
    """Per-record outputs, streamed batch by batch.

    With a student, predictions are generated; without, each record's
    `score_field` (a list of strings, best first, or one string) is scored as is.
    """
    gen = Generator(student, cfg) if student is not None else None
    for batch in _batches(records, cfg.batch_size):
        if gen is not None:
            preds, scores, plans = gen.code([r["nl"] for r, _ in batch])
        else:
            preds = [_given_predictions(r, w, score_field) for r, w in batch]
            scores, plans = [[None] * len(p) for p in preds], [None] * len(batch)
        for (record, _), p, s, plan in zip(batch, preds, scores, plans):
            out = dict(record)
            out["predictions"] = p
            out["beam_scores"] = s
            if plan is not None:
                out["plan"] = plan
            out["eval"] = score_record(record, p)
            yield out


def _given_predictions(record: dict[str, Any], where: str, field: str) -> list[str]:
    value = record.get(field)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise RecordError(where, field, "expected a non-empty list of strings (or a string) to score")
    return value


def summarize(rows: list[dict[str, Any]], cfg: EvalConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """The summary record: corpus metrics for top-1 and top-k, per language and overall."""
    from pdc.metrics import METHOD, score

    by_lang: dict[str, dict[str, Any]] = {}
    for lang in sorted({r["lang"] for r in rows}):
        mine = [r for r in rows if r["lang"] == lang]
        refs = [r["code"] for r in mine]
        top1 = score([r["predictions"][0] for r in mine], refs, lang)
        topk = score([r["predictions"][r["eval"]["best_index"]] for r in mine], refs, lang)
        topk["em_any"] = 100.0 * sum(r["eval"]["exact_any"] for r in mine) / len(mine)
        by_lang[lang] = {"n": len(mine), "top1": top1, "topk": topk}
    overall = {part: _weighted([v[part] for v in by_lang.values()], [v["n"] for v in by_lang.values()])
               for part in ("top1", "topk")} if by_lang else {"top1": {}, "topk": {}}
    return {"summary": True, **extra, "n": len(rows), "k": cfg.beams, "mode": cfg.mode,
            "split": cfg.split, **overall, "by_lang": by_lang, "topk_rule": METHOD["top_k"],
            "method": METHOD, "config": asdict(cfg)}


def _weighted(parts: list[dict[str, Any]], weights: list[int]) -> dict[str, float | None]:
    """Record-weighted mean of per-language figures; a figure undefined (None) in
    one language (DM with no reference dataflow) is averaged over the others."""
    out: dict[str, float | None] = {}
    for key in parts[0]:
        if key == "n":
            continue
        pairs = [(p[key], w) for p, w in zip(parts, weights) if p.get(key) is not None]
        total = sum(w for _, w in pairs)
        out[key] = round(sum(v * w for v, w in pairs) / total, 4) if total else None
    return out


def run(lines: Iterable, cfg: EvalConfig, model_dir: str | None, score_field: str,
        write, run_name: str | None = None) -> dict[str, Any]:
    """Evaluate and write per-record outputs then the summary; return the summary."""
    from pdc.students import load_trained

    cfg.check()
    started = time.time()
    student = load_trained(model_dir) if model_dir else None
    rows = []
    for out in eval_records(selected(lines, cfg), cfg, student, score_field):
        write(out)
        rows.append({"lang": out["lang"], "code": out["code"], "predictions": out["predictions"],
                     "eval": out["eval"]})
    if not rows:
        raise PdcError(f"no records of split '{cfg.split}' to evaluate, check --split")
    provenance = {k: student.config.get(k) for k in ("student", "seed", "code_input", "data", "train")} \
        if student is not None else {"scored_field": score_field}
    summary = summarize(rows, cfg, {"run": run_name or model_dir or score_field, "model": model_dir,
                                    "provenance": provenance})
    summary["seconds"] = round(time.time() - started, 2)
    write(summary)
    return summary
