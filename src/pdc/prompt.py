"""The teacher prompt: the paper's few-shot format, versioned, with exemplars per language.

    from pdc.prompt import load_prompt
    prompt = load_prompt()                    # bundled paper-v1; load_prompt("my.txt") for a file
    record = {"lang": "python", "nl": "Sort words by length."}
    prompt.messages(record, shots=3)          # OpenAI chat messages
    prompt.text(record, shots=3)              # one plain-text prompt for a base causal LM
    prompt.prompt_id("python", 3)             # 'paper-v1/python/3-shot'

The chat messages are: the system message (the answer format), then for
each of the first `shots` exemplars of the record's language a user turn
(`Problem: ...` and `Language: <lang>`) and an assistant turn in the answer
format, then the record's own user turn:

    Problem: <record["nl"]>
    Language: <lang>

The answer format (what the system message asks for and the exemplars show):

    Pseudocode:
    1. <step>
    2. <step>
    Code:
    ```<lang>
    <code>
    ```

`text()` writes the same content as one string: the system message, a blank
line, then each exemplar as question and answer separated by blank lines,
then the record's question and TEXT_TAIL ("Pseudocode:\\n1."), so a
completion model continues with the first step. Pass
`TEXT_TAIL + completion` to pdc.teachers.parse.parse_response, and stop
generation at TEXT_STOP (the start of the next problem).

Prompt files (the bundled ones live in pdc/prompts/paper-v1/, whose
README.md describes the format): UTF-8 text in `=== system ===` and
`=== exemplar <lang> ===` sections. The same inputs always give the same
messages: exemplars are used in file order, the first K for K shots.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from pdc.errors import PdcError
from pdc.teachers import TeacherFailure
from pdc.treesitter import SUPPORTED_LANGS

PROMPT_VERSION = "paper-v1"
DEFAULT_SHOTS = 3
TEXT_TAIL = "Pseudocode:\n1."  # the end of text(): a completion continues the first step
TEXT_STOP = ("\nProblem:",)  # stop sequences for text(): the start of a next problem

_SECTION = re.compile(r"^===(.*)===[ \t]*$")  # the header is the stripped middle
_NUMBERED = re.compile(r"^(\d+)\.[ \t]+(\S.*)$")
_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[ \t]*$")


@dataclass(frozen=True)
class Exemplar:
    """One worked example: a problem, its numbered steps and its code."""

    lang: str
    problem: str
    steps: tuple[str, ...]
    code: str
    where: str  # "python.txt, line 5"

    def question(self) -> str:
        return format_question(self.problem, self.lang)

    def answer(self) -> str:
        return format_answer(self.steps, self.code, self.lang)


def format_question(problem: str, lang: str) -> str:
    """A user turn: 'Problem: <problem>\\nLanguage: <lang>'."""
    return f"Problem: {problem.strip()}\nLanguage: {lang}"


def format_answer(steps, code: str, lang: str) -> str:
    """An answer in the format the system message asks for."""
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    return f"Pseudocode:\n{numbered}\nCode:\n```{lang}\n{code}\n```"


@dataclass(frozen=True)
class Prompt:
    """A system message and exemplars per language, with the name used in prompt ids."""

    name: str  # "paper-v1" or "file:<basename>@<sha256 first 12 hex>"
    system: str
    exemplars: tuple[Exemplar, ...]
    source: str  # what error messages call it: "bundled prompt paper-v1" or "prompt file x.txt"

    def exemplars_for(self, lang: str) -> tuple[Exemplar, ...]:
        return tuple(e for e in self.exemplars if e.lang == lang)

    def counts(self) -> dict[str, int]:
        """How many exemplars each language has (languages with none left out)."""
        out: dict[str, int] = {}
        for e in self.exemplars:
            out[e.lang] = out.get(e.lang, 0) + 1
        return out

    def prompt_id(self, lang: str, shots: int) -> str:
        """'paper-v1/python/3-shot' or 'file:my.txt@0123456789ab/python/3-shot'."""
        return f"{self.name}/{lang}/{shots}-shot"

    def check_shots(self, lang: str, shots: int) -> None:
        """PdcError unless `shots` exemplars of `lang` exist (a run can check this up front)."""
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise PdcError(f"--shots must be a whole number >= 0, got {shots!r}")
        if lang not in SUPPORTED_LANGS:
            raise PdcError(f"unsupported language '{lang}', choose one of: {', '.join(SUPPORTED_LANGS)}")
        have = len(self.exemplars_for(lang))
        if shots > have:
            raise PdcError(f"{self.source} has {have} exemplar{'s' * (have != 1)} for {lang}, "
                           f"--shots {shots} asks for more, lower --shots or add exemplars")

    def messages(self, record: dict[str, Any], shots: int = DEFAULT_SHOTS) -> list[dict[str, str]]:
        """OpenAI chat messages asking for pseudocode and code for `record`.

        TeacherFailure("unsupported_language" / "missing_problem") for a bad
        record; PdcError when `shots` is more than the exemplars available.
        """
        lang, problem = self._check(record, shots)
        out = [{"role": "system", "content": self.system}]
        for exemplar in self.exemplars_for(lang)[:shots]:
            out.append({"role": "user", "content": exemplar.question()})
            out.append({"role": "assistant", "content": exemplar.answer()})
        out.append({"role": "user", "content": format_question(problem, lang)})
        return out

    def text(self, record: dict[str, Any], shots: int = DEFAULT_SHOTS) -> str:
        """The same prompt as one string ending with TEXT_TAIL, for models without a chat template."""
        lang, problem = self._check(record, shots)
        parts = [self.system]
        for exemplar in self.exemplars_for(lang)[:shots]:
            parts.append(f"{exemplar.question()}\n{exemplar.answer()}")
        parts.append(f"{format_question(problem, lang)}\n{TEXT_TAIL}")
        return "\n\n".join(parts)

    def _check(self, record: dict[str, Any], shots: int) -> tuple[str, str]:
        lang = record.get("lang")
        if lang not in SUPPORTED_LANGS:
            raise TeacherFailure("unsupported_language",
                                 f"no prompt for language {lang!r}, supported: {', '.join(SUPPORTED_LANGS)}")
        self.check_shots(lang, shots)
        problem = record.get("nl")
        if not isinstance(problem, str) or not problem.strip():
            raise TeacherFailure("missing_problem", "the record has no problem text ('nl')")
        return lang, problem


# --------------------------------------------------------------------------
# Loading


def load_prompt(path: str | None = None) -> Prompt:
    """The bundled paper-v1 prompt, or the prompt file at `path` (`--prompt FILE`).

    A file without a `=== system ===` section uses paper-v1's system message.
    A bad file raises PdcError naming the file and the line at fault.
    """
    if path is None:
        return _bundled()
    name = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise PdcError(f"cannot read prompt file {path}: {e.strerror}, check the path") from None
    system, exemplars = parse_prompt_file(raw, f"prompt file {path}", name)
    if system is None and not exemplars:
        raise PdcError(f"prompt file {path} has no '=== system ===' or '=== exemplar <lang> ===' "
                       "section, see the format in pdc/prompts/paper-v1/README.md")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return Prompt(name=f"file:{name}@{digest}", system=system or _bundled().system,
                  exemplars=tuple(exemplars), source=f"prompt file {path}")


@lru_cache(maxsize=1)
def _bundled() -> Prompt:
    """The prompt shipped in pdc/prompts/<PROMPT_VERSION>/ (system.txt, <lang>.txt)."""
    folder = files("pdc") / "prompts" / PROMPT_VERSION
    source = f"bundled prompt {PROMPT_VERSION}"
    system, _ = parse_prompt_file((folder / "system.txt").read_bytes(), source, "system.txt")
    exemplars: list[Exemplar] = []
    for lang in SUPPORTED_LANGS:
        _, found = parse_prompt_file((folder / f"{lang}.txt").read_bytes(), source, f"{lang}.txt")
        exemplars += found
    if system is None:
        raise PdcError(f"{source}: system.txt has no '=== system ===' section, reinstall pdc")
    return Prompt(name=PROMPT_VERSION, system=system, exemplars=tuple(exemplars), source=source)


def parse_prompt_file(raw: bytes, source: str, name: str) -> tuple[str | None, list[Exemplar]]:
    """(system message or None, exemplars in file order) from a prompt file's bytes.

    `source` starts error messages ("prompt file x.txt"), `name` goes in
    Exemplar.where.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PdcError(f"{source}, line {line}: not valid UTF-8 (byte {e.start}), "
                       "save the file as UTF-8") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")

    def fail(line_no: int, problem: str) -> PdcError:
        return PdcError(f"{source}, line {line_no}: {problem}, "
                        "see the format in pdc/prompts/paper-v1/README.md")

    sections: list[tuple[str, int, list[tuple[int, str]]]] = []  # (header, line, body)
    for no, line in enumerate(lines, 1):
        match = _SECTION.match(line)
        if match is not None:
            sections.append((match[1].strip(), no, []))
        elif line.startswith("==="):
            raise fail(no, f"malformed section header {line.strip()[:60]!r}")
        elif sections:
            sections[-1][2].append((no, line))
        # text before the first section is a note, ignored

    system: str | None = None
    exemplars: list[Exemplar] = []
    for header, no, body in sections:
        words = header.split()
        if words == ["system"]:
            if system is not None:
                raise fail(no, "a second '=== system ===' section")
            system = "\n".join(line for _, line in body).strip("\n")
            if not system.strip():
                raise fail(no, "the system section is empty")
        elif len(words) == 2 and words[0] == "exemplar":
            if words[1] not in SUPPORTED_LANGS:
                raise fail(no, f"unsupported language '{words[1]}' (choose one of: "
                           f"{', '.join(SUPPORTED_LANGS)})")
            exemplars.append(_exemplar(words[1], no, body, name, fail))
        else:
            raise fail(no, f"unknown section '=== {header} ===', expected '=== system ===' "
                       "or '=== exemplar <lang> ==='")
    return system, exemplars


def _exemplar(lang: str, header_no: int, body: list[tuple[int, str]], name: str, fail) -> Exemplar:
    """One exemplar section: 'Problem:', 'Pseudocode:' with numbered steps, 'Code:' with a fence."""
    state = "start"
    field_line = {"problem": header_no, "pseudocode": header_no, "code": header_no}
    problem: list[str] = []
    steps: list[str] = []
    code: list[tuple[int, str]] = []
    for no, line in body:
        if state == "code":
            code.append((no, line))
        elif state == "start" and line.startswith("Problem:"):
            state, field_line["problem"] = "problem", no
            problem.append(line[len("Problem:"):])
        elif state == "problem" and line.startswith("Pseudocode:"):
            state, field_line["pseudocode"] = "pseudocode", no
            if line[len("Pseudocode:"):].strip():
                raise fail(no, "put the first step on the line after 'Pseudocode:'")
        elif state == "pseudocode" and line.startswith("Code:"):
            state, field_line["code"] = "code", no
            if line[len("Code:"):].strip():
                raise fail(no, "put the code fence on the line after 'Code:'")
        elif state == "start":
            if line.strip():
                raise fail(no, "expected 'Problem:' to open the exemplar")
        elif state == "problem":
            problem.append(line)
        elif line.strip():  # state == "pseudocode"
            match = _NUMBERED.match(line.strip())
            if match is None or int(match[1]) != len(steps) + 1:
                raise fail(no, f"expected step {len(steps) + 1} as '{len(steps) + 1}. <step>' "
                           "(one step per line, numbered from 1)")
            steps.append(" ".join(match[2].split()))
    missing = {"start": "Problem:", "problem": "Pseudocode:", "pseudocode": "Code:"}.get(state)
    if missing is not None:
        raise fail(header_no, f"the {lang} exemplar has no '{missing}' section "
                   "(each exemplar needs Problem:, Pseudocode: and Code:, in that order)")
    problem_text = "\n".join(problem).strip()
    if not problem_text:
        raise fail(field_line["problem"], "the problem is empty")
    if not steps:
        raise fail(field_line["pseudocode"], "no numbered steps after 'Pseudocode:'")
    return Exemplar(lang=lang, problem=problem_text, steps=tuple(steps),
                    code=_fenced(code, lang, field_line["code"], fail), where=f"{name}, line {header_no}")


def _fenced(code: list[tuple[int, str]], lang: str, code_no: int, fail) -> str:
    """The inside of the one ``` fence that makes up an exemplar's Code section."""
    while code and not code[-1][1].strip():
        code.pop()
    while code and not code[0][1].strip():
        code.pop(0)
    if len(code) < 2 or not _FENCE.match(code[0][1]) or code[-1][1].strip() != "```":
        at = code[0][0] if code else code_no
        raise fail(at, "the code must be one fenced block: a line '```" + lang +
                   "', the code, and a closing line '```'")
    text = "\n".join(line for _, line in code[1:-1]).strip("\n")
    if not text.strip():
        raise fail(code[0][0], "the code block is empty")
    from pdc.teachers.parse import syntax_error_line

    line = syntax_error_line(text, lang)
    if line is not None:
        raise fail(code[0][0] + line, f"the exemplar's code does not parse as {lang}")
    return text
