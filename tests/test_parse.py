"""Reading teacher answers (pdc.teachers.parse.parse_response): golden cases and failures."""

from __future__ import annotations

import pytest

from pdc.teachers import TeacherFailure
from pdc.teachers.parse import (
    MAX_RESPONSE_CHARS, MAX_STEP_CHARS, MAX_STEPS, code_error, parse_response,
)

PY_CODE = "def add(a, b):\n    return a + b"
STEPS = ["Define a function that takes two numbers.", "Return their sum."]


def fails(text, lang="python", finish_reason=None) -> TeacherFailure:
    with pytest.raises(TeacherFailure) as info:
        parse_response(text, lang, finish_reason)
    return info.value


# --------------------------------------------------------------------------
# Golden cases: response text -> (steps, code)

GOLDEN = {
    "well_formed": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\n```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "markdown_decorated": (
        "Sure! Here is the solution.\n\n**Pseudocode:**\n\n1. **Define a function that takes two "
        "numbers.**\n2. Return their sum.\n\n### Code\n\n```python\ndef add(a, b):\n    return a + b\n"
        "```\n\nThis function adds the two numbers and returns the result.\n",
        STEPS, PY_CODE),
    "step_n_style": (
        "## Pseudocode\nStep 1: Define a function that takes two numbers.\n**Step 2:** Return their "
        "sum.\n\n## Code:\n```py\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "parenthesis_numbers_any_case": (
        "PSEUDOCODE\n1) Define a function that takes two numbers.\n2) Return their sum.\n"
        "code:\n```Python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "wrapped_steps": (
        "Pseudocode:\n1. Define a function that takes\ntwo numbers.\n2. Return\n     their   sum.\n\n"
        "That is all.\nCode:\n```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "indented_continuation_after_blank": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n\n   It has no defaults.\n"
        "2. Return their sum.\nCode:\n```python\ndef add(a, b):\n    return a + b\n```",
        ["Define a function that takes two numbers. It has no defaults.", "Return their sum."], PY_CODE),
    "sub_steps_become_steps": (
        "Pseudocode:\n1. Define a function.\n2. For each item:\n   1. Add it to the total.\n"
        "   - skip None\n3. Return the total.\nCode:\n```python\ndef add(a, b):\n    return a + b\n```",
        ["Define a function.", "For each item:", "Add it to the total. skip None", "Return the total."],
        PY_CODE),
    "several_fences_prefers_language_tag": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\n```\nadd(1, 2)  # usage\n```\n```python\ndef add(a, b):\n    return a + b\n```\n"
        "```python\nprint(add(1, 2))\n```",
        STEPS, PY_CODE),
    "several_fences_first_after_code_header": (
        "Example:\n```\nadd 1 2\n```\nPseudocode:\n1. Define a function that takes two numbers.\n"
        "2. Return their sum.\nCode:\n```\ndef add(a, b):\n    return a + b\n```\n```\nadd(1, 2)\n```",
        STEPS, PY_CODE),
    "pseudocode_in_a_plain_fence": (
        "Pseudocode:\n```text\n1. Define a function that takes two numbers.\n2. Return their sum.\n```\n"
        "Code:\n```\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "no_headers_at_all": (
        "1. Define a function that takes two numbers.\n2. Return their sum.\n\n"
        "```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "bullets_when_no_numbers": (
        "Pseudocode:\n- Define a function that takes two numbers.\n* Return their sum.\n"
        "Code:\n```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "numbers_win_over_bullets": (
        "Pseudocode:\n- a note, not a step\n1. Define a function that takes two numbers.\n"
        "2. Return their sum.\n- continues step 2\nCode:\n```python\ndef add(a, b):\n    return a + b\n```",
        ["Define a function that takes two numbers.", "Return their sum. continues step 2"], PY_CODE),
    "unfenced_code": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\ndef add(a, b):\n    return a + b\n",
        STEPS, PY_CODE),
    "unfenced_code_then_prose": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\n\ndef add(a, b):\n\n    return a + b\n\nThis adds the numbers.\n\nHope it helps!",
        STEPS, "def add(a, b):\n\n    return a + b"),
    "unclosed_fence": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\n```python\ndef add(a, b):\n    return a + b\n",
        STEPS, PY_CODE),
    "indented_fence_and_crlf": (
        "Pseudocode:\r\n1. Define a function that takes two numbers.\r\n2. Return their sum.\r\n"
        "Code:\r\n    ```python\r\n    def add(a, b):\r\n        return a + b\r\n    ```\r\n",
        STEPS, PY_CODE),
    "pseudo_code_spelled_apart": (
        "Pseudo code:\n1. Define a function that takes two numbers.\n2. Return their sum.\n\n"
        "Pseudo-code ends here.\n\nFinal Code:\n```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "thinking_block_dropped": (
        "<think>\nPseudocode:\n1. Maybe loop?\nCode:\n```python\nwhile True: pass\n```\n</think>\n"
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Code:\n```python\ndef add(a, b):\n    return a + b\n```",
        STEPS, PY_CODE),
    "fence_opened_on_the_header_line": (
        "Pseudocode:\n1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "**Code:** ```python\ndef add(a, b):\n    return a + b\n```\nDone.",
        STEPS, PY_CODE),
    "inline_header_content": (
        "Pseudocode: 1. Define a function that takes two numbers.\n2. Return their sum.\n"
        "Python code:\n~~~python\ndef add(a, b):\n    return a + b\n~~~",
        STEPS, PY_CODE),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name):
    text, steps, code = GOLDEN[name]
    assert parse_response(text, "python") == {"pseudocode": steps, "teacher_code": code}


LANG_CODE = {
    "java": "public int add(int a, int b) {\n    return a + b;\n}",
    "go": "func Add(a, b int) int {\n\treturn a + b\n}",
    "javascript": "add(a, b) {\n  return a + b;\n}",  # a method lifted out of its class
    "ruby": "def add(a, b)\n  a + b\nend",
    "php": "public function add($a, $b)\n{\n    return $a + $b;\n}",
}


@pytest.mark.parametrize("lang", sorted(LANG_CODE))
def test_other_languages(lang):
    tag = {"javascript": "js", "go": "golang"}.get(lang, lang)
    text = f"Pseudocode:\n1. Define a function.\n2. Return the sum.\nCode:\n```{tag}\n{LANG_CODE[lang]}\n```"
    assert parse_response(text, lang)["teacher_code"] == LANG_CODE[lang]


@pytest.mark.parametrize("wrapped", [
    "<?php\nfunction add($a, $b) { return $a + $b; }\n?>",
    "<?php\n\nfunction add($a, $b) { return $a + $b; }",
    "<?PHP function add($a, $b) { return $a + $b; }",
    "function add($a, $b) { return $a + $b; }",
])
def test_php_tag_is_stripped(wrapped):
    text = f"Pseudocode:\n1. Add.\nCode:\n```php\n{wrapped}\n```"
    assert parse_response(text, "php")["teacher_code"] == "function add($a, $b) { return $a + $b; }"


def test_php_unfenced_code_ends_at_a_closing_tag():
    text = "1. Add.\nCode:\n<?php\nfunction add($a, $b) { return $a + $b; }\n?>\n\nThis adds them."
    assert parse_response(text, "php")["teacher_code"] == "function add($a, $b) { return $a + $b; }"


# --------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize("text", [None, "", "   \n\t\n"])
def test_empty_response(text):
    failure = fails(text)
    assert failure.kind == "empty_response" and failure.retryable


def test_truncated_even_when_the_text_looks_complete():
    failure = fails(GOLDEN["well_formed"][0], finish_reason="length")
    assert failure.kind == "truncated" and not failure.retryable
    assert "token limit" in failure.message
    assert fails(None, finish_reason="length").kind == "truncated"
    assert parse_response(GOLDEN["well_formed"][0], "python", "stop")["pseudocode"] == STEPS


def test_missing_steps():
    failure = fails("Here is the code:\n```python\ndef add(a, b):\n    return a + b\n```")
    assert failure.kind == "no_pseudocode" and not failure.retryable
    assert fails("Pseudocode:\nJust add them.\nCode:\n```python\npass\n```").kind == "no_pseudocode"


def test_missing_code():
    failure = fails("Pseudocode:\n1. Define a function.\n2. Return the sum.\n")
    assert failure.kind == "no_code" and not failure.retryable
    assert fails("Pseudocode:\n1. Define a function.\nCode:\n\n").kind == "no_code"
    assert fails("1. Define a function.\nCode:\n```python\n\n```").kind == "no_code"


BROKEN = {
    "python": "def add(a, b)\n    return a + b",
    "java": "public int add(int a, int b) {\n    return a + b\n}",
    "go": "func Add(a, b int) int {\n\treturn a +\n",
    "php": "function add($a, $b) {\n    return $a + $b\n}",
    "ruby": "def add(a, b)\n  a + b\n",
    "javascript": "function add(a, b) {\n  return a + ;\n}",
}


@pytest.mark.parametrize("lang", sorted(BROKEN))
def test_unparsable_code(lang):
    failure = fails(f"Pseudocode:\n1. Add.\nCode:\n```{lang}\n{BROKEN[lang]}\n```", lang)
    assert failure.kind == "unparsable_code" and not failure.retryable
    assert f"does not parse as {lang} (syntax error at line " in failure.message


def test_unparsable_names_the_line():
    assert code_error("def f():\n    x = 1\n    return x +\n", "python") == \
        "does not parse as python (syntax error at line 3)"
    assert code_error("int f() {\n  return 1\n}", "java") == \
        "does not parse as java (syntax error at line 2)"
    assert code_error(PY_CODE, "python") is None


def test_code_in_the_wrong_language_is_unparsable():
    text = "1. Add.\nCode:\n```python\ndef add(a, b):\n    return a + b\n```"
    assert fails(text, "java").kind == "unparsable_code"


def test_unfenced_prose_that_never_parses():
    text = "1. Add.\nCode:\nThe function adds the numbers and returns them."
    assert fails(text).kind == "unparsable_code"


def test_unsupported_language():
    assert fails(GOLDEN["well_formed"][0], "kotlin").kind == "unsupported_language"


def test_too_long():
    failure = fails("1. a\n" + "x" * MAX_RESPONSE_CHARS)
    assert failure.kind == "too_long" and not failure.retryable


# --------------------------------------------------------------------------
# Limits and hygiene


def test_step_count_is_capped():
    steps = "\n".join(f"{i}. Step {i}." for i in range(1, 101))
    result = parse_response(f"{steps}\nCode:\n```python\n{PY_CODE}\n```", "python")
    assert len(result["pseudocode"]) == MAX_STEPS
    assert result["pseudocode"][-1] == f"Carry out the remaining {100 - MAX_STEPS + 1} steps."


def test_long_steps_are_cut():
    result = parse_response(f"1. {'word ' * 500}\nCode:\n```python\n{PY_CODE}\n```", "python")
    step = result["pseudocode"][0]
    assert len(step) == MAX_STEP_CHARS and step.endswith("...")


def test_lone_surrogates_become_replacement_characters():
    result = parse_response(f"1. Add \ud800 them.\nCode:\n```python\n{PY_CODE}\n```", "python")
    assert result["pseudocode"] == ["Add \ufffd them."]
    result["pseudocode"][0].encode("utf-8")


def test_prose_mentioning_code_is_not_a_header():
    text = ("Pseudocode:\n1. Define a function.\n2. Return the sum.\n\nCode that adds numbers is simple.\n"
            f"Code:\n```python\n{PY_CODE}\n```")
    assert parse_response(text, "python")["pseudocode"] == ["Define a function.", "Return the sum."]


def test_the_text_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\nraise SystemExit(3)"
    result = parse_response(f"1. Write a file.\nCode:\n```python\n{code}\n```", "python")
    assert result["teacher_code"] == code and not marker.exists()


def test_deterministic():
    text = GOLDEN["markdown_decorated"][0]
    assert parse_response(text, "python") == parse_response(text, "python")


@pytest.mark.parametrize("line", [
    " " * 30_000 + "x", "\t " * 15_000 + "*", "1" + " " * 30_000 + "x", "~" * 30_000 + "`",
    "```" + "a" * 30_000 + "`", "**" + " " * 30_000 + "x", " \t*_#>" * 5_000,
])
def test_pathological_lines_take_linear_time(line):
    import time

    start = time.perf_counter()
    for text in (line, f"1. a\n{line}", f"Code:\n{line}", f"{line}\nCode:\n```python\npass\n```"):
        try:
            parse_response(text, "python")
        except TeacherFailure:
            pass
    assert time.perf_counter() - start < 3  # quadratic backtracking would take minutes
