"""Ask a teacher for numbered pseudocode (and code) for each problem record.

Every input record yields exactly one output record: the input's fields plus

    teacher, model, prompt_id      who wrote the annotation, with which prompt
    pseudocode                     list of steps (no numbers), or null on failure
    teacher_code                   the teacher's code, or null on failure
    status                         "ok" or "error"
    error                          {type, message, retryable} when status is "error"
"""

from __future__ import annotations

from typing import Any, Iterator

from pdc.errors import PdcError
from pdc.jsonl import require
from pdc.teachers import Teacher, TeacherFailure


def extract_record(teacher: Teacher, record: dict[str, Any], where: str) -> dict[str, Any]:
    """Annotate one problem record; a teacher failure becomes a failure record."""
    require(record, "id", where)
    require(record, "lang", where)
    require(record, "nl", where)
    out = dict(record)
    out.pop("error", None)
    out.update({"teacher": teacher.name, "model": _model_name(teacher, record["lang"]),
                "prompt_id": teacher.prompt_id})
    try:
        annotation = teacher.annotate(record, where)
    except TeacherFailure as e:
        out.update({"pseudocode": None, "teacher_code": None, "status": "error",
                    "error": e.as_error_object()})
        return out
    out.update({"pseudocode": annotation["pseudocode"], "teacher_code": annotation["teacher_code"],
                "status": "ok"})
    return out


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
