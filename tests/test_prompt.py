"""The teacher prompt (pdc.prompt) and the bundled paper-v1 prompt files."""

from __future__ import annotations

import hashlib
from importlib.resources import files

import pytest

from pdc.errors import PdcError
from pdc.prompt import (
    PROMPT_VERSION, TEXT_STOP, TEXT_TAIL, format_answer, load_prompt,
)
from pdc.teachers import TeacherFailure
from pdc.teachers.parse import parse_response
from pdc.treesitter import SUPPORTED_LANGS, parses

RECORD = {"id": "r1", "lang": "python", "nl": "Return the sum of a list of numbers."}
BUNDLED = files("pdc") / "prompts" / PROMPT_VERSION

ONE_EXEMPLAR = """\
=== exemplar python ===
Problem: Return the larger of two numbers.
Pseudocode:
1. Define a function that takes two numbers as input.
2. Return the larger one.
Code:
```python
def larger(a, b):
    return max(a, b)
```
"""


@pytest.fixture(scope="module")
def prompt():
    return load_prompt()


def write(tmp_path, text: str | bytes, name: str = "my-prompt.txt") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return str(path)


# --------------------------------------------------------------------------
# The bundled prompt


def test_bundled_has_three_exemplars_per_language(prompt):
    assert prompt.name == PROMPT_VERSION == "paper-v1"
    assert prompt.counts() == {lang: 3 for lang in SUPPORTED_LANGS}


def test_bundled_files_hold_only_their_language():
    from pdc.prompt import parse_prompt_file

    for lang in SUPPORTED_LANGS:
        system, exemplars = parse_prompt_file((BUNDLED / f"{lang}.txt").read_bytes(), lang, lang)
        assert system is None
        assert {e.lang for e in exemplars} == {lang}
    system, exemplars = parse_prompt_file((BUNDLED / "system.txt").read_bytes(), "system", "system")
    assert system and not exemplars
    assert (BUNDLED / "README.md").is_file()


def test_python_set_opens_with_the_papers_flatten_exemplar(prompt):
    first = prompt.exemplars_for("python")[0]
    assert first.problem.startswith("Write a Python function that takes a nested list")
    assert first.steps == (
        "Define a function that takes a list as input.",
        "Initialize an empty result list.",
        "Iterate through each element in the input list.",
        "If the element is a list, recursively flatten it and extend the result list.",
        "If the element is not a list, append it directly to the result list.",
        "Return the result list after processing all elements.",
    )
    assert "def flatten(" in first.code


@pytest.mark.parametrize("lang", SUPPORTED_LANGS)
def test_every_exemplar_parses_and_round_trips(prompt, lang):
    for exemplar in prompt.exemplars_for(lang):
        code = exemplar.code
        tries = {  # the code itself, as a method in a class, as a file
            "java": [f"class W {{\n{code}\n}}"], "go": [f"package p\n{code}"],
            "php": [f"<?php\n{code}", f"<?php\nclass W {{\n{code}\n}}"],
        }.get(lang, [code])
        assert any(parses(text, lang) for text in tries), exemplar.where
        assert not exemplar.code.lstrip().startswith("<?php")
        assert parse_response(exemplar.answer(), lang) == {
            "pseudocode": list(exemplar.steps), "teacher_code": exemplar.code}
        assert 3 <= len(exemplar.steps) <= 10 and all(s.endswith(".") for s in exemplar.steps)


def test_system_message_asks_for_the_answer_format(prompt):
    assert "Pseudocode:\n1. <first step>\n2. <second step>" in prompt.system
    assert "Code:\n```<language>\n" in prompt.system
    assert "Write nothing else" in prompt.system


# --------------------------------------------------------------------------
# messages() and text()


def test_messages_structure(prompt):
    messages = prompt.messages(RECORD, shots=3)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[0]["content"] == prompt.system
    exemplars = prompt.exemplars_for("python")
    for i, exemplar in enumerate(exemplars):
        assert messages[1 + 2 * i]["content"] == f"Problem: {exemplar.problem}\nLanguage: python"
        answer = messages[2 + 2 * i]["content"]
        assert answer == format_answer(exemplar.steps, exemplar.code, "python")
        assert answer.startswith("Pseudocode:\n1. ") and answer.endswith("\n```")
        assert "\nCode:\n```python\n" in answer
    assert messages[-1] == {"role": "user",
                            "content": "Problem: Return the sum of a list of numbers.\nLanguage: python"}


def test_messages_use_the_records_language_and_the_first_k(prompt):
    messages = prompt.messages({"lang": "go", "nl": "Sum adds."}, shots=2)
    assert len(messages) == 1 + 2 * 2 + 1
    go = prompt.exemplars_for("go")
    assert messages[1]["content"] == go[0].question() and messages[3]["content"] == go[1].question()
    assert "Language: go" in messages[-1]["content"]
    assert all("```go\n" in m["content"] for m in messages if m["role"] == "assistant")


def test_zero_shot(prompt):
    messages = prompt.messages(RECORD, shots=0)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert prompt.prompt_id("python", 0) == "paper-v1/python/0-shot"


def test_messages_are_deterministic(prompt):
    again = load_prompt()
    assert prompt.messages(RECORD, 3) == again.messages(dict(RECORD), 3)
    assert prompt.text(RECORD, 2) == again.text(RECORD, 2)


def test_too_many_shots_is_a_run_error(prompt):
    with pytest.raises(PdcError, match="3 exemplars for ruby, --shots 4"):
        prompt.messages({"lang": "ruby", "nl": "x"}, shots=4)
    with pytest.raises(PdcError, match="--shots must be"):
        prompt.messages(RECORD, shots=-1)


def test_unknown_language_is_a_record_failure(prompt):
    with pytest.raises(TeacherFailure) as info:
        prompt.messages({"lang": "kotlin", "nl": "x"})
    assert info.value.kind == "unsupported_language" and not info.value.retryable
    with pytest.raises(TeacherFailure) as info:
        prompt.text({"nl": "x"})
    assert info.value.kind == "unsupported_language"


def test_missing_problem_is_a_record_failure(prompt):
    with pytest.raises(TeacherFailure) as info:
        prompt.messages({"lang": "python", "nl": "  "})
    assert info.value.kind == "missing_problem"


def test_text_prompt_ends_so_a_completion_continues_the_steps(prompt):
    text = prompt.text(RECORD, shots=1)
    assert text.startswith(prompt.system + "\n\nProblem: ")
    assert text.endswith("Problem: Return the sum of a list of numbers.\nLanguage: python\n" + TEXT_TAIL)
    assert TEXT_TAIL == "Pseudocode:\n1."
    assert prompt.exemplars_for("python")[0].answer() in text
    assert prompt.exemplars_for("python")[1].problem not in text
    # what a completion model writes, run on past the answer into a next problem
    completion = (" Define a function that takes a list.\n2. Return its sum.\nCode:\n```python\n"
                  "def total(xs):\n    return sum(xs)\n```\n\nProblem: Next one.\nLanguage: python\n"
                  "Pseudocode:\n1. Something else.\nCode:\n```python\ndef other():\n    pass\n```")
    assert parse_response(TEXT_TAIL + completion, "python") == {
        "pseudocode": ["Define a function that takes a list.", "Return its sum."],
        "teacher_code": "def total(xs):\n    return sum(xs)"}
    assert completion.index(TEXT_STOP[0]) > 0


def test_bundled_prompt_id(prompt):
    assert prompt.prompt_id("python", 3) == "paper-v1/python/3-shot"
    assert prompt.prompt_id("php", 1) == "paper-v1/php/1-shot"


# --------------------------------------------------------------------------
# User prompt files (--prompt FILE)


def test_custom_file_prompt_id_and_default_system(tmp_path, prompt):
    path = write(tmp_path, ONE_EXEMPLAR)
    custom = load_prompt(path)
    digest = hashlib.sha256(ONE_EXEMPLAR.encode()).hexdigest()[:12]
    assert custom.prompt_id("python", 1) == f"file:my-prompt.txt@{digest}/python/1-shot"
    assert custom.system == prompt.system  # no system section: paper-v1's
    messages = custom.messages(RECORD, shots=1)
    assert messages[1]["content"] == "Problem: Return the larger of two numbers.\nLanguage: python"
    assert messages[2]["content"].endswith("```python\ndef larger(a, b):\n    return max(a, b)\n```")
    with pytest.raises(PdcError, match=r"prompt file .*my-prompt.txt has 0 exemplars for go"):
        custom.messages({"lang": "go", "nl": "x"}, shots=1)
    assert len(custom.messages({"lang": "go", "nl": "x"}, shots=0)) == 2


def test_custom_file_id_changes_with_its_bytes(tmp_path):
    a = load_prompt(write(tmp_path, ONE_EXEMPLAR, "a.txt"))
    b = load_prompt(write(tmp_path, ONE_EXEMPLAR.replace("larger one", "bigger one"), "a2.txt"))
    assert a.name.split("@")[1] != b.name.split("@")[1]


def test_custom_file_with_system_section_crlf_and_bom(tmp_path):
    text = "my notes\n\n=== system ===\nAnswer briefly.\n\n" + ONE_EXEMPLAR
    custom = load_prompt(write(tmp_path, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()))
    assert custom.system == "Answer briefly."
    assert custom.exemplars_for("python")[0].code == "def larger(a, b):\n    return max(a, b)"


def test_bundled_files_concatenate_into_a_custom_prompt(tmp_path, prompt):
    raw = b"".join((BUNDLED / name).read_bytes() for name in ("system.txt", "python.txt", "go.txt"))
    custom = load_prompt(write(tmp_path, raw))
    assert custom.messages(RECORD, 3)[1:] == prompt.messages(RECORD, 3)[1:]
    assert custom.system == prompt.system
    assert custom.counts() == {"python": 3, "go": 3}


@pytest.mark.parametrize("text, line, problem", [
    (ONE_EXEMPLAR.replace("Pseudocode:\n", "Steps:\n"), 1, "has no 'Pseudocode:' section"),
    (ONE_EXEMPLAR[:ONE_EXEMPLAR.index("Code:")], 1, "has no 'Code:' section"),
    (ONE_EXEMPLAR.replace("\nCode:\n", "\nKode:\n"), 6, "expected step 3"),
    (ONE_EXEMPLAR.replace("Problem: ", "Question: "), 2, "expected 'Problem:'"),
    (ONE_EXEMPLAR.replace("2. Return", "3. Return"), 5, "expected step 2"),
    (ONE_EXEMPLAR.replace("1. Define", "Define"), 4, "expected step 1"),
    (ONE_EXEMPLAR.replace("Problem: Return the larger of two numbers.", "Problem:"), 2, "problem is empty"),
    (ONE_EXEMPLAR.replace("```python\n", ""), 7, "one fenced block"),
    (ONE_EXEMPLAR.replace("max(a, b)", "max(a, b"), 9, "does not parse as python"),
    (ONE_EXEMPLAR.replace("exemplar python", "exemplar kotlin"), 1, "unsupported language 'kotlin'"),
    (ONE_EXEMPLAR.replace("exemplar python", "example python"), 1, "unknown section"),
    (ONE_EXEMPLAR.replace("=== exemplar python ===", "=== exemplar python"), 1, "malformed section header"),
    ("=== system ===\nA\n=== system ===\nB\n", 3, "a second '=== system ===' section"),
    ("=== system ===\n\n" + ONE_EXEMPLAR, 1, "the system section is empty"),
])
def test_bad_prompt_files_give_one_line_errors(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    with pytest.raises(PdcError) as info:
        load_prompt(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"prompt file {path}, line {line}: ")
    assert problem in message


def test_file_with_no_sections_is_an_error(tmp_path):
    path = write(tmp_path, '{"id": 1, "nl": "not a prompt file"}\n')
    with pytest.raises(PdcError, match="has no '=== system ===' or '=== exemplar <lang> ===' section"):
        load_prompt(path)


def test_bad_encoding_names_the_line(tmp_path):
    path = write(tmp_path, ONE_EXEMPLAR.encode().replace(b"larger of", b"larger \xff of"))
    with pytest.raises(PdcError) as info:
        load_prompt(path)
    assert str(info.value).startswith(f"prompt file {path}, line 2: not valid UTF-8")


def test_missing_file(tmp_path):
    with pytest.raises(PdcError, match="cannot read prompt file .*nope.txt"):
        load_prompt(str(tmp_path / "nope.txt"))
