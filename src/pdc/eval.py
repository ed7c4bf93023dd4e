"""Generate code with a student and score it against the reference (the paper's Table 3).

Per record: the k beams (best first) and their scores. Summary: TM, SM, DM,
CB and exact match for

    top1  the first beam of every record, scored as a corpus;
    topk  per record, an exactly matching beam if there is one, else the beam
          with the highest sentence-level CodeBLEU against the reference (the
          earliest on ties), then scored as a corpus: an oracle choice, as in
          the paper's top-5 column; `em_any` counts a record exact when any beam is.

How each figure is computed is copied from `pdc.metrics.METHOD` into the summary.
With `exec`, every candidate also runs against the record's `tests` in the
sandbox of `pdc.execution` (pass@k in the summary's `exec`); with `security`,
the Python records' first candidates are scanned by bandit (`pdc.security`).
`workers` > 1 computes the metrics in that many processes (same figures).
"""

from __future__ import annotations

import contextlib
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
    workers: int = 1               # processes scoring metrics (and sandbox runs at once with --exec)
    exec: bool = False             # run each beam against the record's `tests` (Python only)
    exec_timeout: float = 10.0     # wall-clock seconds per sandbox run
    exec_memory_mb: int = 1024     # address-space limit per sandbox run, MiB
    security: bool = False         # bandit scan of the Python records' first beams

    def check(self) -> None:
        if self.beams < 1 or self.batch_size < 1 or self.workers < 1:
            raise PdcError("--beams, --batch-size and --workers must be at least 1")
        if self.exec_timeout <= 0 or self.exec_memory_mb < 64:
            raise PdcError("--exec-timeout must be positive and --exec-memory-mb at least 64")
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
        if cfg.exec:
            if record["lang"] != "python":
                raise RecordError(where, "lang", f"--exec runs Python only, got {record['lang']!r}")
            if not isinstance(record.get("tests"), str) or not record["tests"].strip():
                raise RecordError(where, "tests", "missing or empty; --exec needs records from "
                                  "`pdc prepare` of MBPP or HumanEval rows")
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
                 score_field: str = "predictions", pool=None) -> Iterator[dict[str, Any]]:
    """Per-record outputs, streamed batch by batch.

    With a student, predictions are generated; without, each record's
    `score_field` (a list of strings, best first, or one string) is scored as is.
    `pool` (a concurrent.futures executor) scores the batch's records in parallel.
    """
    gen = Generator(student, cfg) if student is not None else None
    for batch in _batches(records, cfg.batch_size):
        if gen is not None:
            preds, scores, plans = gen.code([r["nl"] for r, _ in batch])
        else:
            preds = [_given_predictions(r, w, score_field) for r, w in batch]
            scores, plans = [[None] * len(p) for p in preds], [None] * len(batch)
        pairs = [({"code": r["code"], "lang": r["lang"]}, p) for (r, _), p in zip(batch, preds)]
        evals = list(pool.map(_score_pair, pairs)) if pool else [score_record(*pair) for pair in pairs]
        runs = _exec_batch(batch, preds, cfg) if cfg.exec else [None] * len(batch)
        for (record, _), p, s, plan, ev, run_ in zip(batch, preds, scores, plans, evals, runs):
            out = dict(record)
            out["predictions"] = p
            out["beam_scores"] = s
            if plan is not None:
                out["plan"] = plan
            out["eval"] = ev
            if run_ is not None:
                out["exec"] = run_
            yield out


def _score_pair(pair: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
    return score_record(*pair)


def sandbox_config(cfg: EvalConfig):
    from pdc.execution import SandboxConfig

    return SandboxConfig(timeout=cfg.exec_timeout, memory_mb=cfg.exec_memory_mb)


def _exec_batch(batch, preds: list[list[str]], cfg: EvalConfig) -> list[dict[str, Any]]:
    """Every beam of every record run against the record's tests, `workers` runs at once."""
    from concurrent.futures import ThreadPoolExecutor

    from pdc.execution import run_tests

    sandbox = sandbox_config(cfg)
    jobs = [(i, p, record["tests"]) for i, ((record, _), beams) in enumerate(zip(batch, preds)) for p in beams]
    with ThreadPoolExecutor(max_workers=cfg.workers) as threads:  # each run is its own process
        results = list(threads.map(lambda job: run_tests(job[1], job[2], sandbox), jobs))
    out: list[dict[str, Any]] = [{"status": [], "passed": 0, "n": 0, "stderr": []} for _ in batch]
    for (i, _, _), result in zip(jobs, results):
        out[i]["status"].append(result.status)
        out[i]["stderr"].append(result.stderr[-300:])
        out[i]["passed"] += result.status == "passed"
        out[i]["n"] += 1
    return out


def _given_predictions(record: dict[str, Any], where: str, field: str) -> list[str]:
    value = record.get(field)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise RecordError(where, field, "expected a non-empty list of strings (or a string) to score")
    return value


def summarize(rows: list[dict[str, Any]], cfg: EvalConfig, extra: dict[str, Any], pool=None) -> dict[str, Any]:
    """The summary record: corpus metrics for top-1 and top-k, per language and overall."""
    from pdc.metrics import METHOD, score

    langs = sorted({r["lang"] for r in rows})
    jobs = []  # (predictions, references, lang): top-1 then top-k of each language
    for lang in langs:
        mine = [r for r in rows if r["lang"] == lang]
        refs = [r["code"] for r in mine]
        jobs.append(([r["predictions"][0] for r in mine], refs, lang))
        jobs.append(([r["predictions"][r["eval"]["best_index"]] for r in mine], refs, lang))
    scored = [score(*job, pool=pool) for job in jobs]  # the pool computes the tree edit distances
    by_lang: dict[str, dict[str, Any]] = {}
    for i, lang in enumerate(langs):
        mine = [r for r in rows if r["lang"] == lang]
        top1, topk = scored[2 * i], scored[2 * i + 1]
        topk["em_any"] = 100.0 * sum(r["eval"]["exact_any"] for r in mine) / len(mine)
        by_lang[lang] = {"n": len(mine), "top1": top1, "topk": topk}
    overall = {part: _weighted([v[part] for v in by_lang.values()], [v["n"] for v in by_lang.values()])
               for part in ("top1", "topk")} if by_lang else {"top1": {}, "topk": {}}
    summary = {"summary": True, **extra, "n": len(rows), "k": cfg.beams, "mode": cfg.mode,
               "split": cfg.split, **overall, "by_lang": by_lang, "topk_rule": METHOD["top_k"],
               "method": METHOD, "config": asdict(cfg)}
    if cfg.exec:
        summary["exec"] = exec_summary([r["exec"] for r in rows], cfg)
    if cfg.security:
        from pdc.security import scan

        python = [r["predictions"][0] for r in rows if r["lang"] == "python"]
        summary["security"] = scan(python) if python else None
    return summary


def exec_summary(runs: list[dict[str, Any]], cfg: EvalConfig) -> dict[str, Any]:
    """pass@1 and pass@k (Chen et al. 2021) over problems, plus the first beam's pass rate."""
    from pdc.execution import isolation, pass_at_k

    n = min(r["n"] for r in runs)
    ks = sorted({1, n})
    out: dict[str, Any] = {"problems": len(runs)}
    for k in ks:
        out[f"pass@{k}"] = round(100 * sum(pass_at_k(r["n"], r["passed"], k) for r in runs) / len(runs), 4)
    out["top1_pass"] = round(100 * sum(r["status"][0] == "passed" for r in runs) / len(runs), 4)
    statuses: dict[str, int] = {}
    for r in runs:
        for s in r["status"]:
            statuses[s] = statuses.get(s, 0) + 1
    out["statuses"] = statuses
    out["method"] = (
        "Each of a record's n candidates (its beams, or the predictions given) is run once: candidate "
        "code, then the record's tests, in a fresh sandboxed interpreter; it passes if the program runs "
        "to its end and exits 0. pass@k = mean over problems of 1 - C(n-c, k)/C(n, k) (Chen et al. "
        "2021, unbiased), c candidates passing; with beams (not samples) pass@1 is the mean share of "
        "passing beams and pass@n whether any beam passes; top1_pass scores the first beam only. "
        "Percentages, 0-100.")
    out["sandbox"] = {**asdict(sandbox_config(cfg)), **isolation()}
    return out


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


@contextlib.contextmanager
def _pool(workers: int):
    """A process pool for metrics when workers > 1 (None otherwise)."""
    if workers <= 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    # forkserver: the parent may hold torch threads; a forked child would inherit their locks
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool


def run(lines: Iterable, cfg: EvalConfig, model_dir: str | None, score_field: str,
        write, run_name: str | None = None) -> dict[str, Any]:
    """Evaluate and write per-record outputs then the summary; return the summary."""
    from pdc.students import load_trained

    cfg.check()
    started = time.time()
    student = load_trained(model_dir) if model_dir else None
    rows = []
    provenance = {k: student.config.get(k) for k in ("student", "seed", "code_input", "data", "train")} \
        if student is not None else {"scored_field": score_field}
    with _pool(cfg.workers) as pool:
        for out in eval_records(selected(lines, cfg), cfg, student, score_field, pool):
            write(out)
            rows.append({"lang": out["lang"], "code": out["code"], "predictions": out["predictions"],
                         "eval": out["eval"], "exec": out.get("exec")})
        if not rows:
            raise PdcError(f"no records of split '{cfg.split}' to evaluate, check --split")
        summary = summarize(rows, cfg, {"run": run_name or model_dir or score_field, "model": model_dir,
                                        "provenance": provenance}, pool)
    summary["seconds"] = round(time.time() - started, 2)
    write(summary)
    return summary
