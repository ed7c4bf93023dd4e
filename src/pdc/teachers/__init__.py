"""Teachers: whatever writes numbered pseudocode (and code) for a problem.

A teacher has a `name`, a `model` (what produced the text) and a `prompt_id`
(which prompt or rule set, versioned), and one method:

    annotate(problem: dict, where: str) -> {"pseudocode": [step, ...], "teacher_code": str}

It raises `TeacherFailure` when it cannot annotate a record; `pdc extract`
turns that into a failure record (status "error") so nothing is dropped.
"""

from __future__ import annotations

from typing import Any, Protocol


class TeacherFailure(Exception):
    """A teacher could not annotate one record."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable

    def as_error_object(self) -> dict[str, Any]:
        return {"type": self.kind, "message": self.message, "retryable": self.retryable}


class Teacher(Protocol):
    name: str
    model: str
    prompt_id: str

    def annotate(self, problem: dict[str, Any], where: str) -> dict[str, Any]: ...


TEACHERS = ("ast",)


def get_teacher(name: str) -> Teacher:
    """The teacher called `name` (see TEACHERS)."""
    from pdc.errors import PdcError

    if name == "ast":
        from pdc.teachers.ast_teacher import AstTeacher

        return AstTeacher()
    raise PdcError(f"unknown teacher '{name}', choose one of: {', '.join(TEACHERS)}")
