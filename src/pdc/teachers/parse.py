"""Read a teacher model's answer: numbered pseudocode steps and one piece of code.

    from pdc.teachers.parse import parse_response
    parse_response("Pseudocode:\\n1. Define a function.\\n2. Return 1.\\n"
                   "Code:\\n```python\\ndef f():\\n    return 1\\n```", "python")
    # {'pseudocode': ['Define a function.', 'Return 1.'],
    #  'teacher_code': 'def f():\\n    return 1'}

The prompt (pdc.prompt) asks for "Pseudocode:", numbered steps, "Code:" and
one fenced block; real models drift from that, so the reader is liberal:

* Headers: "Pseudocode" / "Pseudo-code" / "Pseudo code" and "Code", in any
  case, with or without a colon, decorated with markdown (`**Code:**`,
  `### Pseudocode`), optionally with one word before them ("Python code:")
  or a parenthesis after them ("Code (Go):"). A header is only recognised
  outside code fences.
* Steps: the lines after the Pseudocode header up to the Code header (or
  the first code fence); without a Pseudocode header, the lines before the
  code. A step starts with `1.`, `1)`, `1:`, `1 -`, `Step 1:` (bold and
  heading marks allowed around the label). A non-blank line right after a
  step continues it (wrapped steps), as does an indented line after a
  blank one; an unindented line after a blank line is prose and ends the
  step. Indented numbered lines (sub-steps) become steps of their own.
  Only when no numbered step exists are bullet lines (`-`, `*`, `+`) taken
  as steps. Numbers and labels are stripped, whitespace is collapsed, empty
  steps are dropped. Pseudocode written inside a plain fence (no tag,
  `text`, `pseudocode`...) is read when no steps stand outside fences and
  a code fence or Code header follows it.
* Code: the first fence tagged with the record's language (```python,
  ```py, ```js, ```golang...) after the Code header, else the first such
  fence anywhere, else the first fence after the Code header, else the
  first fence at all; with no fence, the unfenced text after the Code
  header (up to MAX_PROSE_PARAGRAPHS trailing paragraphs that start
  unindented are dropped until it parses, to shed prose after it). An
  unclosed fence runs to the end of the text. The code is dedented and
  stripped of blank lines at both ends. PHP code loses a leading `<?php`
  and a closing `?>` (at the end, or alone on a line with no later `<?`,
  which also ends unfenced code), so it looks like CodeSearchNet's PHP
  (which has no tag); it is parsed with the tag put back, as the ast
  teacher does.
* Syntax: the code must parse with pdc's pinned tree-sitter grammar with no
  ERROR and no MISSING node, trying the same presentations as the ast
  teacher (a Java/JavaScript/PHP method wrapped in a class, Go with a
  package clause, Python dedented). This is stricter than the ast teacher
  (which tolerates up to 10% error bytes in dataset code): teacher code is
  a fresh answer and becomes a training target (`--code-target teacher`),
  and a syntax error in it usually means a garbled or cut-off answer.
* A leading `<think>...</think>` block (reasoning models) is dropped.
* Limits: at most MAX_STEPS steps (a longer list keeps MAX_STEPS - 1 and
  ends with "Carry out the remaining N steps.", as the ast teacher does);
  a step longer than MAX_STEP_CHARS is cut with "..."; a response longer
  than MAX_RESPONSE_CHARS is refused. Lone surrogates become U+FFFD.

Failure kinds (TeacherFailure.kind), checked in this order:
    unsupported_language  no grammar for the language
    truncated             finish_reason "length": always a failure, even if
                          the text looks complete (the model wanted to say
                          more; a cut-off answer is never a training target)
    empty_response        None or blank text (retryable: servers return
                          empty content under load)
    too_long              more than MAX_RESPONSE_CHARS characters
    no_pseudocode         no numbered (or bullet) steps
    no_code               no fence and no text after a Code header
    unparsable_code       the code has a syntax error for the language
Only empty_response is retryable: sending the same request again may
succeed. The others come back the same from the same request at
temperature 0 (for truncated, raise the token limit instead).

The text is data: it is searched with regular expressions and parsed with
tree-sitter, never executed.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

from pdc.teachers import TeacherFailure
from pdc.treesitter import SUPPORTED_LANGS, error_bytes, parse

MAX_STEPS = 64  # most steps kept; longer lists end with "Carry out the remaining N steps."
MAX_STEP_CHARS = 500  # longest step; longer ones are cut with "..."
MAX_RESPONSE_CHARS = 100_000  # longest response read at all (kind too_long above it)
MAX_PROSE_PARAGRAPHS = 5  # trailing paragraphs dropped at most from unfenced code

# fence tags that name each language
LANG_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", "py3", "python2"}),
    "ruby": frozenset({"ruby", "rb"}),
    "javascript": frozenset({"javascript", "js", "jsx", "mjs", "node", "nodejs", "ecmascript"}),
    "go": frozenset({"go", "golang"}),
    "java": frozenset({"java"}),
    "php": frozenset({"php", "php5", "php7", "php8"}),
}
# fence tags that do not name a programming language (may hold pseudocode)
_PLAIN_TAGS = frozenset({"", "text", "txt", "plaintext", "plain", "pseudocode", "pseudo",
                         "markdown", "md", "none"})

# The patterns are anchored and no two neighbouring parts match the same
# characters, so a line of 100,000 spaces costs linear time (tests check this).
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>`{3,}|~{3,})[ \t]*(?P<tag>[^\s`~]*)(?:[ \t][^`]*)?$")
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)  # a reasoning model's preamble
_HEADER = re.compile(
    r"^[ \t]*(?:>[ \t]*)?(?:#{1,6}[ \t]*)?(?:[*_]{1,2}[ \t]*)?"  # quote, heading, bold/italic
    r"(?:(?P<word>[A-Za-z][\w+#-]*)[ \t]+)?"  # one word before: "Python code", "Final code"
    r"(?P<name>pseudo[- ]?code|code)"
    r"(?:[ \t]*\([^)\n]*\))?[ \t]*"  # "Code (Python)"
    r"(?:[*_]{1,2}[ \t]*)?(?P<colon>:)?[ \t]*(?:[*_]{1,2}[ \t]*)?"
    r"(?P<rest>.*)$",
    re.IGNORECASE,
)
_STEP = re.compile(
    r"^(?P<indent>[ \t]*)(?:[-*+][ \t]+)?(?:#{1,6}[ \t]*)?(?:(?:\*\*|__)[ \t]*)?"
    r"(?:step[ \t]*)?(?P<number>\d{1,3})(?:\*\*|__)?[ \t]*(?:[.):]|[ \t]-)(?:\*\*|__)?"
    r"(?:[ \t]+|$)(?P<text>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?P<indent>[ \t]*)[-*+\u2022][ \t]+(?P<text>.*)$")


@dataclass(frozen=True)
class _Fence:
    start: int  # line index of the opening fence
    end: int  # line index after the closing fence (len(lines) if unclosed)
    tag: str
    content: str


def parse_response(text: str | None, lang: str, finish_reason: str | None = None) -> dict[str, Any]:
    """{"pseudocode": [step, ...], "teacher_code": code} from a teacher's answer.

    Raises TeacherFailure (see the module docstring for the kinds).
    """
    if lang not in SUPPORTED_LANGS:
        raise TeacherFailure("unsupported_language",
                             f"no grammar for language '{lang}', supported: {', '.join(SUPPORTED_LANGS)}")
    if finish_reason == "length":
        raise TeacherFailure("truncated", "the response was cut off at the token limit "
                             "(finish_reason 'length'), raise the maximum number of new tokens")
    if text is None or not text.strip():
        raise TeacherFailure("empty_response", "the teacher returned no text", retryable=True)
    if len(text) > MAX_RESPONSE_CHARS:
        raise TeacherFailure("too_long", f"the response has {len(text)} characters, "
                             f"more than the {MAX_RESPONSE_CHARS} read")
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # lone surrogates
    text = _THINKING.sub("", text, count=1)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    fences = _fences(lines)
    inside = {i for fence in fences for i in range(fence.start, fence.end)}
    if _split_inline_fences(lines, inside):  # "Code: ```python" opens a fence on the header line
        fences = _fences(lines)
        inside = {i for fence in fences for i in range(fence.start, fence.end)}
    pseudo_at = _find_header(lines, inside, "pseudo", 0)
    code_at = _find_header(lines, inside, "code", 0 if pseudo_at is None else pseudo_at + 1)
    if code_at is None and pseudo_at is not None:
        code_at = _find_header(lines, inside, "code", 0)  # code written before the pseudocode

    steps, pseudo_fence = _pseudocode(lines, fences, inside, pseudo_at, code_at)
    if not steps:
        raise TeacherFailure("no_pseudocode", "no numbered pseudocode steps in the response")
    code = _code(lines, [f for f in fences if f is not pseudo_fence], code_at, lang)
    return {"pseudocode": _cap(steps), "teacher_code": code}


# --------------------------------------------------------------------------
# Structure: fences and headers


def _fences(lines: list[str]) -> list[_Fence]:
    """Every fenced block (``` or ~~~), in order; an unclosed one runs to the end."""
    fences, i = [], 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        mark = match["mark"]
        close = re.compile(rf"^[ \t]*{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
        content = textwrap.dedent("\n".join(lines[i + 1:end]))
        fences.append(_Fence(i, min(end + 1, len(lines)), _tag(match["tag"]), content))
        i = end + 1
    return fences


def _tag(tag: str) -> str:
    """'{.python}' / 'language-python' / 'Python' -> 'python'."""
    tag = tag.lower().strip("{}.")
    return tag[len("language-"):] if tag.startswith("language-") else tag


def _header(line: str) -> tuple[str, str] | None:
    """("pseudo" | "code", text after the header) if `line` is a section header."""
    match = _HEADER.match(line)
    if match is None:
        return None
    rest = match["rest"].strip()
    if rest and not match["colon"]:
        return None  # "code that ..." is prose, not a header
    if rest.startswith("`") and not rest.startswith("```"):
        return None  # "Code: `x`" inline code in prose
    pseudo = match["name"].lower() != "code" or (match["word"] or "").lower() == "pseudo"
    return ("pseudo" if pseudo else "code"), rest


def _split_inline_fences(lines: list[str], inside: set[int]) -> bool:
    """Put a fence opened on a header line ("**Code:** ```python") on a line of its own."""
    split = False
    for i in reversed(range(len(lines))):
        found = None if i in inside else _header(lines[i])
        if found is not None and found[1].startswith(("```", "~~~")):
            at = lines[i].rindex(found[1])
            lines[i:i + 1] = [lines[i][:at], found[1]]
            split = True
    return split


def _find_header(lines: list[str], inside: set[int], kind: str, start: int) -> int | None:
    """Index of the first `kind` header line at or after `start`, outside fences."""
    for i in range(start, len(lines)):
        if i not in inside:
            found = _header(lines[i])
            if found is not None and found[0] == kind:
                return i
    return None


# --------------------------------------------------------------------------
# Pseudocode


def _pseudocode(lines, fences, inside, pseudo_at, code_at) -> tuple[list[str], _Fence | None]:
    """(steps, the fence they came from or None).

    The region read runs from the Pseudocode header (or the top) to the
    Code header or the first fence, whichever comes first.
    """
    start = 0 if pseudo_at is None else pseudo_at + 1
    first_fence = next((f for f in fences if f.start >= start), None)
    end = len(lines)
    if code_at is not None and code_at >= start:
        end = code_at
    if first_fence is not None:
        end = min(end, first_fence.start)
    region = [lines[i] for i in range(start, end) if i not in inside]
    if pseudo_at is not None:
        region.insert(0, _header(lines[pseudo_at])[1])  # "Pseudocode: 1. ..." on one line
    steps = _steps(region)
    if steps or first_fence is None or first_fence.start != end:
        return steps, None
    # pseudocode inside a plain fence, followed by the code
    followed = any(f.start > first_fence.start for f in fences) or (
        code_at is not None and code_at > first_fence.start)
    if first_fence.tag in _PLAIN_TAGS and followed:
        steps = _steps(first_fence.content.split("\n"))
        if steps:
            return steps, first_fence
    return [], None


def _steps(region: list[str]) -> list[str]:
    """Numbered steps (or, with none, bullet steps) with continuation lines joined."""
    steps = _collect(region, _STEP)
    return steps if steps else _collect(region, _BULLET)


def _collect(region: list[str], marker: re.Pattern) -> list[str]:
    steps: list[list[str]] = []
    open_step, blank = False, False
    for line in region:
        if not line.strip():
            blank = True
            continue
        match = marker.match(line)
        if match is not None:
            steps.append([match["text"]])
            open_step, blank = True, False
            continue
        indented = line[:1] in (" ", "\t")
        if open_step and (not blank or indented):
            bullet = _BULLET.match(line)
            steps[-1].append(bullet["text"] if bullet else line)
            blank = False
        else:
            open_step = False  # prose before, between or after the steps
    cleaned = (_squash(" ".join(parts)) for parts in steps)
    return [step for step in cleaned if step]


def _squash(step: str) -> str:
    """Whitespace collapsed, bold marks around the whole step removed, at most MAX_STEP_CHARS."""
    step = " ".join(step.split())
    if len(step) > 4 and step.startswith("**") and step.endswith("**") and "**" not in step[2:-2]:
        step = step[2:-2].strip()
    return step if len(step) <= MAX_STEP_CHARS else step[: MAX_STEP_CHARS - 3].rstrip() + "..."


def _cap(steps: list[str]) -> list[str]:
    """At most MAX_STEPS steps; the last one says how many were left out."""
    if len(steps) <= MAX_STEPS:
        return steps
    kept = steps[: MAX_STEPS - 1]
    return kept + [f"Carry out the remaining {len(steps) - len(kept)} steps."]


# --------------------------------------------------------------------------
# Code


def _code(lines: list[str], fences: list[_Fence], code_at: int | None, lang: str) -> str:
    """The chosen code, cleaned and checked (TeacherFailure no_code / unparsable_code)."""
    after = [f for f in fences if code_at is not None and f.start > code_at]
    tagged = [f for f in fences if f.tag in LANG_TAGS[lang]]
    tagged_after = [f for f in tagged if f in after]
    chosen = next(iter(tagged_after or tagged or after or fences), None)
    if chosen is not None:
        code = _clean(chosen.content, lang)
        if not code:
            raise TeacherFailure("no_code", "the response's code block is empty")
        problem = code_error(code, lang)
        if problem is not None:
            raise TeacherFailure("unparsable_code", f"the teacher's code {problem}")
        return code
    if code_at is None:
        raise TeacherFailure("no_code", "no code block and no 'Code:' section in the response")
    return _unfenced(lines, code_at, lang)


def _unfenced(lines: list[str], code_at: int, lang: str) -> str:
    """The text after the Code header; trailing prose paragraphs are dropped until it parses."""
    body = [_header(lines[code_at])[1]] + lines[code_at + 1:]
    code = _clean("\n".join(body), lang)
    if not code:
        raise TeacherFailure("no_code", "the 'Code:' section of the response is empty")
    first_problem = code_error(code, lang)
    if first_problem is None:
        return code
    paragraphs = re.split(r"\n[ \t]*\n(?=\S)", code)  # break only before unindented text
    for keep in range(len(paragraphs) - 1, max(0, len(paragraphs) - 1 - MAX_PROSE_PARAGRAPHS), -1):
        shorter = _clean("\n\n".join(paragraphs[:keep]), lang)
        if shorter and code_error(shorter, lang) is None:
            return shorter
    raise TeacherFailure("unparsable_code", f"the teacher's code {first_problem}")


def _clean(code: str, lang: str) -> str:
    """Dedented, blank lines at both ends removed; PHP without `<?php` and `?>`."""
    code = textwrap.dedent(code).strip("\n").rstrip()
    if lang == "php":
        stripped = code.strip()
        if stripped[:5].lower() == "<?php":
            stripped = stripped[5:]
        close = re.search(r"\n[ \t]*\?>[ \t]*(\n|$)", stripped)
        if close is not None and "<?" not in stripped[close.end():]:
            stripped = stripped[: close.start()]  # a closing tag alone on its line ends the code
        elif stripped.endswith("?>"):
            stripped = stripped[:-2]
        code = textwrap.dedent(stripped.strip("\n")).strip("\n").rstrip()
    return code


def code_error(code: str, lang: str) -> str | None:
    """None if `code` parses cleanly as `lang`, else 'does not parse as go (syntax error at line 3)'."""
    line = syntax_error_line(code, lang)
    return None if line is None else f"does not parse as {lang} (syntax error at line {line})"


def syntax_error_line(code: str, lang: str) -> int | None:
    """None if `code` parses as `lang` with no ERROR or MISSING node, else the error's line (1-based).

    Tries the ast teacher's presentations (method in a dummy class, Go
    package clause, PHP tag, Python dedented); the line named is that of the
    first error in the presentation with the fewest error bytes.
    """
    from pdc.teachers.ast_teacher import _candidates

    best = None
    for candidate in _candidates(code, lang):
        tree = parse(candidate, lang)
        if not tree.root_node.has_error:
            return None
        errors = error_bytes(tree.root_node)
        if best is None or errors < best[0]:
            best = (errors, tree, candidate)
    _, tree, candidate = best
    at = candidate.find(code.strip())
    offset = candidate[:at].count("\n") if at >= 0 else 0
    node = _first_error(tree.root_node)
    return max(1, node.start_point[0] - offset + 1) if node is not None else 1


def _first_error(root):
    """The first ERROR or MISSING node in source order, or None."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return node
        if node.has_error:
            stack.extend(reversed(node.children))
    return None
