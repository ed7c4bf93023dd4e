"""Ask a teacher for numbered pseudocode (and code) for each problem record.

Every input record yields exactly one output record: the input's fields plus

    teacher, model, prompt_id      who wrote the annotation, with which prompt
    pseudocode                     list of steps (no numbers), or null on failure
    teacher_code                   the teacher's code, or null on failure
    status                         "ok" or "error"
    error                          {type, message, retryable} when status is "error"
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from pdc.errors import PdcError
from pdc.jsonl import Line, require
from pdc.teachers import Teacher, TeacherFailure


def begin(teacher: Teacher, record: dict[str, Any], where: str) -> dict[str, Any]:
    """The output record before the teacher answers: input fields plus who is asked, with which prompt."""
    require(record, "id", where)
    require(record, "lang", where)
    require(record, "nl", where)
    out = dict(record)
    for stale in ("error", "usage", "teacher_config"):  # from an earlier extract of the same records
        out.pop(stale, None)
    out.update({"teacher": teacher.name, "model": _model_name(teacher, record["lang"]),
                "prompt_id": _prompt_id(teacher, record["lang"])})
    config = getattr(teacher, "config", None)
    if config is not None:
        out["teacher_config"] = config()
    return out


def succeeded(out: dict[str, Any], annotation: dict[str, Any]) -> dict[str, Any]:
    out.update({"pseudocode": annotation["pseudocode"], "teacher_code": annotation["teacher_code"],
                "status": "ok"})
    if annotation.get("served_model"):
        out["model"] = annotation["served_model"]
    if annotation.get("usage") is not None:
        out["usage"] = annotation["usage"]
    return out


def failed(out: dict[str, Any], failure: TeacherFailure) -> dict[str, Any]:
    out.update({"pseudocode": None, "teacher_code": None, "status": "error", "error": failure.as_error_object()})
    if failure.usage is not None:
        out["usage"] = failure.usage
    return out


def extract_record(teacher: Teacher, record: dict[str, Any], where: str) -> dict[str, Any]:
    """Annotate one problem record; a teacher failure becomes a failure record."""
    out = begin(teacher, record, where)
    try:
        return succeeded(out, teacher.annotate(record, where))
    except TeacherFailure as e:
        return failed(out, e)


async def extract_record_async(teacher: Any, record: dict[str, Any], where: str) -> dict[str, Any]:
    """extract_record for teachers that answer over the network (`annotate_async`)."""
    out = begin(teacher, record, where)
    try:
        return succeeded(out, await teacher.annotate_async(record, where))
    except TeacherFailure as e:
        return failed(out, e)


def _prompt_id(teacher: Teacher, lang: str) -> str:
    """The prompt a record was asked with; teachers with per-language prompts say which."""
    prompt_id_for = getattr(teacher, "prompt_id_for", None)
    if prompt_id_for is None:
        return teacher.prompt_id
    try:
        return prompt_id_for(lang)
    except (PdcError, TeacherFailure):  # a language the prompt lacks: annotate() reports the failure
        return teacher.prompt_id


def _model_name(teacher: Teacher, lang: str) -> str:
    """What wrote the annotation; teachers with per-language models say which."""
    model_for = getattr(teacher, "model_for", None)
    if model_for is None:
        return teacher.model
    try:
        return model_for(lang)
    except PdcError:  # a language the teacher lacks: annotate() reports the failure
        return teacher.model


def extract(teacher: Teacher, record: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    """The per-record step `pdc extract` streams (shape expected by pdc.stream.apply)."""
    yield extract_record(teacher, record, where)


def one_off_problem(text: str, lang: str, code: str | None) -> dict[str, Any]:
    """A problem record for a problem given on the command line."""
    record: dict[str, Any] = {"id": "cli-1", "lang": lang, "nl": text, "split": "test",
                              "source": {"dataset": "command-line"}}
    if code is not None:
        record["code"] = code
    return record


# --- sharding and the concurrent run of network teachers -----------------------------------


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' (0 <= I < N) as (I, N); None for no sharding."""
    if text is None:
        return None
    import re

    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise PdcError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got '{text}'", exit_code=2)
    return int(m.group(1)), int(m.group(2))


def shard_of(key: str, n: int) -> int:
    """The shard a record id (or, for an unreadable line, its position) falls in: sha256 mod n."""
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % n


def select_shard(lines: Iterable[Line], shard: tuple[int, int] | None) -> Iterator[Line]:
    """The lines of shard I/N: by the record's id, or by `where` for a line that is not a record."""
    for line in lines:
        if shard is None:
            yield line
            continue
        rid = line.record.get("id") if line.record is not None else None
        key = rid if isinstance(rid, str) else line.where
        if shard_of(key, shard[1]) == shard[0]:
            yield line


class Progress:
    """Counts for the stderr progress line: records, failures, tokens, cache hits."""

    def __init__(self, log: Callable[[str], None], every: float = 5.0):
        import time

        self.log, self.every, self.clock = log, every, time.monotonic
        self.started = self.last = self.clock()
        self.done = self.failed = 0

    def count(self, out: dict[str, Any], teacher: Any) -> None:
        self.done += 1
        self.failed += out.get("status") != "ok"
        if self.clock() - self.last >= self.every:
            self.report(teacher)

    def report(self, teacher: Any, final: bool = False) -> None:
        self.last = self.clock()
        elapsed = max(self.last - self.started, 1e-9)
        usage = teacher.usage
        client = teacher.client
        self.log(f"extract{' done' if final else ''}: {self.done} records ({self.failed} failed) in {elapsed:.1f} s, "
                 f"{self.done / elapsed:.1f}/s; {teacher.cached} from cache, "
                 f"{client.requests if client else 0} requests, {client.retries if client else 0} retries; "
                 f"tokens {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion "
                 f"= {usage['total_tokens']}")


def run_network_teacher(teacher: Any, lines: Iterable[Line], writer: Any, on_error: Any,
                        log: Callable[[str], None]) -> tuple[Any, int]:
    """Annotate every line with a teacher that has `annotate_async`; (tally, failure records).

    Up to 4 x concurrency records are in flight; output keeps input order.
    """
    import asyncio

    from pdc.stream import apply_async

    progress = Progress(log)

    async def one(record: dict[str, Any], where: str) -> dict[str, Any]:
        out = await extract_record_async(teacher, record, where)
        progress.count(out, teacher)
        return out

    async def main() -> Any:
        await teacher.start()
        try:
            return await apply_async(lines, one, writer, on_error, window=4 * teacher.settings.concurrency)
        finally:
            await teacher.stop()
            progress.report(teacher, final=True)

    tally = asyncio.run(main())
    return tally, progress.failed


def run_batch_teacher(teacher: Any, lines: Iterable[Line], writer: Any, on_error: Any,
                      batch_size: int) -> tuple[Any, int]:
    """Annotate every line with a teacher that has `annotate_batch`; (tally, failure records).

    Reads `batch_size` lines, annotates the records among them in one batch and
    writes their outputs in input order before reading on. A bad line or record
    gets the `--on-error` policy in its place, as in pdc.stream.apply.
    """
    import itertools

    from pdc.errors import RecordError
    from pdc.stream import Tally, _settle

    def written(out: Any) -> list[dict[str, Any]]:
        if isinstance(out, RecordError):
            raise out  # _settle applies --on-error to it
        return [] if out is None else [out]  # None: an unreadable line, which _settle reports itself

    tally, failures, lines = Tally(), 0, iter(lines)
    while batch := list(itertools.islice(lines, batch_size)):
        outs: dict[int, Any] = {}  # position in the batch -> output record, or the RecordError begin() raised
        for k, line in enumerate(batch):
            if line.error is None:
                try:
                    outs[k] = begin(teacher, line.record, line.where)
                except RecordError as e:
                    outs[k] = e
        asked = [k for k, out in outs.items() if isinstance(out, dict)]
        results = teacher.annotate_batch([(batch[k].record, batch[k].where) for k in asked]) if asked else []
        for k, result in zip(asked, results):
            outs[k] = failed(outs[k], result) if isinstance(result, TeacherFailure) else succeeded(outs[k], result)
        for k, line in enumerate(batch):
            _settle(line, lambda out=outs.get(k): written(out), writer, tally, on_error)
            failures += isinstance(outs.get(k), dict) and outs[k]["status"] != "ok"
    return tally, failures
