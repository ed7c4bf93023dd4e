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

    def __init__(self, kind: str, message: str, *, retryable: bool = False,
                 usage: dict[str, Any] | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.usage = usage  # tokens the failed request spent, when it reached a server

    def as_error_object(self) -> dict[str, Any]:
        return {"type": self.kind, "message": self.message, "retryable": self.retryable}


class Teacher(Protocol):
    name: str
    model: str
    prompt_id: str

    def annotate(self, problem: dict[str, Any], where: str) -> dict[str, Any]: ...


TEACHERS = ("ast", "gpt-4", "deepseek", "codellama-7b", "codeqwen-7b", "openai", "hf:PATH_OR_ID")


def get_teacher(name: str, **options: Any) -> Any:
    """The teacher called `name` (see TEACHERS); `options` configure network and model teachers.

    HTTP teachers take base_url, model, api_key_env, shots, prompt, cache (a path or
    None) and the fields of `pdc.teachers.http.Settings`.
    """
    from pdc.errors import PdcError

    if name == "ast":
        from pdc.teachers.ast_teacher import AstTeacher

        return AstTeacher()
    if name.startswith("hf:"):
        from pdc.teachers.hf import HfTeacher

        return HfTeacher(name[3:], **{k: v for k, v in options.items() if k in HfTeacher.OPTIONS})
    from pdc.teachers import http

    if name in http.PRESETS or name == http.GENERIC:
        endpoint = http.resolve_endpoint(name, options.pop("base_url", None), options.pop("model", None),
                                         options.pop("api_key_env", None))
        shots, prompt, cache = options.pop("shots", 3), options.pop("prompt", None), options.pop("cache", None)
        known = set(http.Settings.__dataclass_fields__)
        settings = http.Settings(**{k: v for k, v in options.items() if k in known and v is not None})
        return http.HttpTeacher(endpoint, settings, cache_path=cache, prompt_path=prompt, shots=shots)
    raise PdcError(f"unknown teacher '{name}', choose one of: {', '.join(TEACHERS)}", exit_code=2)
