"""Turn data into problem records: CodeSearchNet rows, or Python source harvested the CSN way.

A problem record is one JSON object per line; every later command relies on it:

    {"id": "csn/python/soimort/you-get/src/you_get/extractors/miomio.py#L41-L51",
     "lang": "python",                       # python ruby go java javascript php
     "nl": "str->list Convert XML to URL List. From Biligrab.",
     "code": "def sina_xml_to_url_list(xml_data):\\n    rawurl = []\\n ...",
     "split": "test",                        # train valid test
     "source": {"dataset": "codesearchnet", "repo": ..., "path": ..., "func_name": ...,
                "url": ..., "sha": ..., "partition": ...}}

Harvested records carry `"source": {"dataset": "harvest", "root", "path", "func_name",
"lineno", "python"}` instead.

Docstring cleaning (`clean_docstring`), after CodeSearchNet's preprocessing:
  1. drop leading blank lines, keep the first paragraph (lines up to the first
     line that is empty or whitespace only);
  2. cut that paragraph at the first line that, once stripped, starts a
     parameter/return/raise/example section (`SECTION_START`): a reST/epydoc
     field (`:param`, `:type`, `:returns`, `:rtype`, `:raises`, ...), any
     Javadoc/JSDoc/PHPDoc/YARD tag (`@param`, `@return`, `@throws`,
     `@example`, ...: `@word` followed by a space, `{` or the line end), a Google
     header (`Args:`, `Arguments:`, `Parameters:`, `Returns:`, `Yields:`,
     `Raises:`, `Example:`, ...), a numpydoc header alone on its line
     (`Parameters`, `Returns`, `See Also`, `Notes`, ...), an underline
     (`---`, `===`, `~~~`), or a doctest prompt (`>>>`);
  3. collapse every run of whitespace to one space and strip.
Tokens (`nl_tokens`) are runs of word characters and single punctuation
characters, like CodeSearchNet's `docstring_tokens`: "str->list" is 4 tokens.

Split (`split_for`): resplit is the paper's deterministic 80/10/10 re-split:
`bucket = int.from_bytes(sha256(id.encode("utf-8")).digest()[:8], "big") % 100`;
bucket 0-79 is train, 80-89 valid, 90-99 test. It depends on the record's id
only, never on input order or other rows. `partition` keeps CodeSearchNet's
own `partition` field (train / valid / test; "validation" and "dev" read as valid).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import os
import platform
import re
import sysconfig
import tokenize
import warnings
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, Sequence

from pdc.errors import PdcError, RecordError
from pdc.jsonl import Line, require

LANGS = ("python", "ruby", "go", "java", "javascript", "php")
SPLITS = ("train", "valid", "test")


class Lang(str, Enum):
    python = "python"
    ruby = "ruby"
    go = "go"
    java = "java"
    javascript = "javascript"
    php = "php"


class SplitMode(str, Enum):
    resplit = "resplit"
    partition = "partition"


@dataclass
class PrepareConfig:
    """What `pdc prepare` does; the command's flags map one to one onto these fields."""

    split: SplitMode = SplitMode.resplit  # resplit: sha256(id) 80/10/10; partition: CSN's field
    langs: tuple[str, ...] = LANGS        # CodeSearchNet rows of other languages are skipped
    min_nl_tokens: int = 3                # cleaned docstring must have at least this many tokens
    min_code_lines: int = 3               # harvest: non-blank lines left once the docstring is gone
    limit: int | None = None              # stop after this many records (None: all)


class Skipped(Exception):
    """A usable row that the filters leave out; `reason` is counted on stderr."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- docstrings

SECTION_START = re.compile(
    r"""^(?:
        :(?:params?|parameters?|args?|arguments?|keys?|keywords?|kwargs?|type|vartype|rtype
          |returns?|raises?|throws?|exceptions?|except|yields?|ivar|cvar|var)\b   # reST / epydoc fields
      | @[A-Za-z]+(?:\s|\{|$)                                      # Javadoc/JSDoc/PHPDoc/YARD tags
      | (?:args|arguments|params|parameters|keyword\ args|keyword\ arguments|kwargs
          |other\ parameters|returns?|yields?|raises?|throws|examples?)\s*:    # Google sections
      | (?:parameters|returns|yields|raises|examples|other\ parameters|see\ also|notes
          |attributes|methods|references|warns|warnings)\s*$      # numpydoc headers, alone on a line
      | [-=~]{3,}\s*$                                             # underlines
      | >>>                                                       # doctest prompt
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def clean_docstring(text: str) -> str:
    """The docstring's summary as CodeSearchNet kept it (rules in the module docstring)."""
    kept: list[str] = []
    for line in text.expandtabs().splitlines():
        stripped = line.strip()
        if not stripped:
            if kept:
                break  # end of the first paragraph
            continue  # leading blank lines
        if SECTION_START.match(stripped):
            break
        kept.append(stripped)
    return " ".join(" ".join(kept).split())


def nl_tokens(text: str) -> list[str]:
    """Word runs and single punctuation characters, like CSN's docstring_tokens."""
    return _TOKEN.findall(text)


# ---------------------------------------------------------------- splits

_PARTITIONS = {"train": "train", "valid": "valid", "validation": "valid", "dev": "valid", "test": "test"}


def split_bucket(record_id: str) -> int:
    """0-99 from the sha256 of the id; the same id always gives the same bucket."""
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_for(record_id: str) -> str:
    """The paper's deterministic 80/10/10 re-split: train, valid or test."""
    bucket = split_bucket(record_id)
    return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


# ---------------------------------------------------------------- python docstring removal

_PARSER = None


def _python_parser():
    global _PARSER
    if _PARSER is None:
        import tree_sitter_python
        from tree_sitter import Language, Parser

        _PARSER = Parser(Language(tree_sitter_python.language()))
    return _PARSER


def _first_function(root):
    for node in root.named_children:
        if node.type == "decorated_definition":
            node = node.child_by_field_name("definition")
        if node is not None and node.type == "function_definition":
            return node
        if node is not None and node.type != "comment":
            return None
    return None


def _is_docstring(stmt) -> bool:
    if stmt.type != "expression_statement" or stmt.named_child_count != 1:
        return False
    value = stmt.named_children[0]
    if value.type == "concatenated_string":
        value = value.named_children[0]
    if value.type != "string":
        return False
    prefix = re.match(rb"[A-Za-z]*", value.text).group().lower()
    return b"b" not in prefix and b"f" not in prefix  # bytes and f-strings are not docstrings


def strip_python_docstring(code: str) -> str:
    """`code` (one function, def at the start) without its docstring statement.

    Exactly the docstring statement goes (with a `;` after it); when it stood
    on lines of its own, those whole lines go. Everything else stays
    byte-identical. Parsed with tree-sitter, so Python 2 code works too.
    Raises ValueError: no function, no docstring, or nothing but the docstring.
    """
    src = code.encode("utf-8")
    func = _first_function(_python_parser().parse(src).root_node)
    if func is None:
        raise ValueError("no function definition")
    body = func.child_by_field_name("body")
    stmts = [c for c in body.named_children if c.type != "comment"] if body is not None else []
    if not stmts or not _is_docstring(stmts[0]):
        raise ValueError("no docstring")
    if len(stmts) == 1:
        raise ValueError("no code besides the docstring")
    start, end = stmts[0].start_byte, stmts[0].end_byte
    semicolon = re.match(rb"[ \t]*;[ \t]*", src[end:])
    if semicolon:
        end += semicolon.end()
    line_start = src.rfind(b"\n", 0, start) + 1
    line_end = src.find(b"\n", end)
    line_end = len(src) if line_end < 0 else line_end + 1
    if not src[line_start:start].strip() and not src[end:line_end].strip():
        start, end = line_start, line_end  # the docstring had its own lines: drop them whole
    return (src[:start] + src[end:]).decode("utf-8")


# ---------------------------------------------------------------- CodeSearchNet

_GITHUB_URL = re.compile(
    r"^https?://github\.com/(?P<repo>[^/]+/[^/]+)/blob/[^/]+/(?P<path>[^#]+)#(?P<lines>L\d+(?:-L\d+)?)$"
)
_CSN_SOURCE_FIELDS = ("repo", "path", "func_name", "url", "sha", "partition")


def csn_id(row: dict[str, Any], lang: str, where: str) -> str:
    """Stable id: `csn/<lang>/<repo>/<path>#L<a>-L<b>` from the url, else `.../<path>:<func_name>`."""
    url = row.get("url")
    m = _GITHUB_URL.match(url) if isinstance(url, str) else None
    if m:
        return f"csn/{lang}/{m['repo']}/{m['path']}#{m['lines']}"
    repo = require(row, "repo", where)
    path = require(row, "path", where)
    func_name = require(row, "func_name", where)
    return f"csn/{lang}/{repo}/{path}:{func_name}"


def from_csn(row: dict[str, Any], where: str, config: PrepareConfig | None = None) -> dict[str, Any]:
    """One CodeSearchNet row as a problem record.

    Raises RecordError (naming `where` and the field) for a row that cannot be
    used, and Skipped for a usable row the filters leave out.
    """
    config = config or PrepareConfig()
    lang = require(row, "language", where)
    if lang not in LANGS:
        raise RecordError(where, "language", f"unsupported language {lang!r}, expected one of {', '.join(LANGS)}")
    if lang not in config.langs:
        raise Skipped("other language")
    docstring = require(row, "docstring", where, nonempty=False)
    code = require(row, "code", where)
    record_id = csn_id(row, lang, where)
    if config.split is SplitMode.partition:
        partition = require(row, "partition", where)
        if partition not in _PARTITIONS:
            raise RecordError(where, "partition", f"unknown partition {partition!r}, expected train, valid or test")
        split = _PARTITIONS[partition]
    else:
        split = split_for(record_id)
    nl = clean_docstring(docstring)
    if len(nl_tokens(nl)) < config.min_nl_tokens:
        raise Skipped("short docstring")
    if lang == "python":
        try:
            code = strip_python_docstring(code)
        except ValueError as e:
            raise Skipped(str(e)) from None
    source = {"dataset": "codesearchnet"}
    source.update({k: row.get(k) for k in _CSN_SOURCE_FIELDS})
    return {"id": record_id, "lang": lang, "nl": nl, "code": code, "split": split, "source": source}


# ---------------------------------------------------------------- MBPP and HumanEval (problems with tests)

def mbpp_split(task_id: int) -> str:
    """MBPP's own split: 11-510 test, 511-600 valid, 601-974 train, 1-10 (few-shot prompts) train."""
    if 11 <= task_id <= 510:
        return "test"
    if 511 <= task_id <= 600:
        return "valid"
    return "train"


def from_mbpp(row: dict[str, Any], where: str) -> dict[str, Any]:
    """One MBPP row (mbpp.jsonl: text/test_setup_code; sanitized: prompt/test_imports) as a record.

    `tests` is the Python run after the candidate code: the test imports, the
    setup code (tasks 367 and 927 need it after the code), then the asserts.
    """
    task_id = require(row, "task_id", where, int)
    sanitized = "prompt" in row
    nl = require(row, "prompt" if sanitized else "text", where)
    code = require(row, "code", where).replace("\r\n", "\n")
    asserts = require(row, "test_list", where, list)
    if not asserts or not all(isinstance(a, str) for a in asserts):
        raise RecordError(where, "test_list", "expected a non-empty list of assert statements")
    imports = row.get("test_imports") or []
    setup = row.get("test_setup_code") or ""
    if not isinstance(imports, list) or not isinstance(setup, str):
        raise RecordError(where, "test_imports" if not isinstance(imports, list) else "test_setup_code",
                          "expected a list of strings / a string")
    tests = "\n".join([*imports, setup, *asserts]).strip() + "\n"
    dataset = "mbpp-sanitized" if sanitized else "mbpp"
    return {"id": f"{dataset}/{task_id}", "lang": "python", "nl": " ".join(nl.split()), "code": code,
            "split": mbpp_split(task_id), "tests": tests,
            "source": {"dataset": dataset, "task_id": task_id, "test_list": asserts}}


def from_humaneval(row: dict[str, Any], where: str) -> dict[str, Any]:
    """One HumanEval row (task_id, prompt, canonical_solution, test, entry_point) as a record.

    `nl` is the docstring of the entry point (the whole prompt if it has none),
    `code` the prompt plus the canonical solution, `tests` the row's `test`
    followed by `check(<entry_point>)`. Every HumanEval problem is a test problem.
    """
    task_id = require(row, "task_id", where)
    prompt = require(row, "prompt", where)
    solution = require(row, "canonical_solution", where)
    test = require(row, "test", where)
    entry = require(row, "entry_point", where)
    if not entry.isidentifier():
        raise RecordError(where, "entry_point", f"not a Python name: {entry!r}")
    nl = prompt
    try:
        for node in ast.walk(ast.parse(prompt)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry:
                nl = ast.get_docstring(node) or prompt
    except SyntaxError:
        raise RecordError(where, "prompt", "not valid Python") from None
    number = task_id.split("/")[-1]
    return {"id": f"humaneval/{number}", "lang": "python", "nl": " ".join(nl.split()),
            "code": prompt + solution, "split": "test",
            "tests": f"{test}\n\ncheck({entry})\n", "entry_point": entry,
            "source": {"dataset": "humaneval", "task_id": task_id, "prompt": prompt}}


def row_format(row: dict[str, Any]) -> str:
    """csn, mbpp or humaneval, from the row's fields."""
    if "test_list" in row:
        return "mbpp"
    if "canonical_solution" in row and "entry_point" in row:
        return "humaneval"
    return "csn"


class CsnPreparer:
    """`from_csn` over a stream: skips duplicate ids, counts what it leaves out, honours `limit`.

    Call it as `fn(record, where)` from `pdc.stream.apply`; feed it lines
    through `take()` so reading stops once `limit` records are out.
    """

    def __init__(self, config: PrepareConfig | None = None, note: Callable[[str], None] | None = None):
        self.config = config or PrepareConfig()
        self.note = note or (lambda message: None)
        self.skipped: Counter[str] = Counter()
        self.written = 0
        self._seen: set[bytes] = set()

    def __call__(self, row: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
        try:
            kind = row_format(row)
            if kind == "csn":
                record = from_csn(row, where, self.config)
            else:
                record = (from_mbpp if kind == "mbpp" else from_humaneval)(row, where)
                if "python" not in self.config.langs:  # MBPP and HumanEval keep their own split
                    raise Skipped("other language")
        except Skipped as s:
            self.skipped[s.reason] += 1
            return
        key = hashlib.sha256(record["id"].encode("utf-8")).digest()[:16]
        if key in self._seen:
            self.skipped["duplicate id"] += 1
            self.note(f"{where}: duplicate id {record['id']}, skipped")
            return
        self._seen.add(key)
        self.written += 1
        yield record

    def take(self, lines: Iterable[Line]) -> Iterator[Line]:
        for line in lines:
            if self.config.limit is not None and self.written >= self.config.limit:
                return
            yield line


def read_rows(paths: Sequence[str]) -> Iterator[Line]:
    """JSONL lines of each path, or the items of a path ending in `.json` holding a JSON
    array (sanitized-mbpp.json), as Lines `file:#n` (tolerant: bad items carry the error)."""
    import json

    from pdc.jsonl import read_lines

    for path in paths:
        if not path.endswith(".json"):
            yield from read_lines([path], tolerant=True)
            continue
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)
        except (OSError, ValueError) as e:
            raise PdcError(f"{path}: cannot read a JSON array ({e}), give JSONL or a .json array") from None
        if not isinstance(items, list):
            raise PdcError(f"{path}: expected a JSON array of objects, got {type(items).__name__}")
        for n, item in enumerate(items, start=1):
            where = f"{path}:#{n}"
            if isinstance(item, dict):
                yield Line(where, item)
            else:
                yield Line(where, None, RecordError(where, None, f"expected a JSON object, got {type(item).__name__}"))


# ---------------------------------------------------------------- harvest

SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})


def stdlib_dir() -> str:
    """The running interpreter's standard library (harvest's default root)."""
    return sysconfig.get_paths()["stdlib"]


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def python_files(root: str) -> Iterator[str]:
    """Every .py file under `root` in sorted order, skipping SKIP_DIRS, hidden dirs and test files."""
    if os.path.isfile(root):
        yield root
        return
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py") and not _is_test_file(name):
                yield os.path.join(directory, name)


def _functions(body: list[ast.stmt], prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Module-level functions and methods (qualified names), not functions nested in functions."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")
        else:  # if / try / with / for / while / match blocks at module or class level
            for attr in ("body", "orelse", "finalbody"):
                block = getattr(node, attr, None)
                if isinstance(block, list):
                    yield from _functions(block, prefix)
            for sub in getattr(node, "handlers", []) + getattr(node, "cases", []):
                yield from _functions(sub.body, prefix)


def _function_source(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    """The function from its `def` line (decorators left out, as in CSN), dedented to column 0.

    Each line loses the `def` line's indentation, except lines inside
    multi-line strings other than the docstring, which stay as they are.
    """
    first, last = node.lineno, node.end_lineno or node.lineno
    prefix = lines[first - 1][: node.col_offset]
    in_string: set[int] = set()
    if prefix and _may_hold_multiline_string(node, lines):
        for sub in ast.walk(node):
            if isinstance(sub, ast.JoinedStr) or (isinstance(sub, ast.Constant) and isinstance(sub.value, (str, bytes))):
                if sub.end_lineno and sub.end_lineno > sub.lineno:
                    in_string.update(range(sub.lineno + 1, sub.end_lineno + 1))
    out = []
    for n in range(first, last + 1):
        line = lines[n - 1]
        if n not in in_string:
            if line.startswith(prefix):
                line = line[len(prefix):]
            elif not line.strip():
                line = ""
        out.append(line)
    return "\n".join(out).rstrip()


def _may_hold_multiline_string(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    """Cheap test before walking the tree: triple quotes or a backslash-newline past the docstring."""
    start = node.body[0].end_lineno if ast.get_docstring(node) is not None else node.lineno - 1
    text = "\n".join(lines[start: node.end_lineno])
    return '"""' in text or "'''" in text or "\\\n" in text


def code_key(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bytes:
    """Dedup key: the function's syntax tree without docstring and decorators.

    `ast.dump` ignores positions, comments, layout and quote style, so two
    functions that differ only in those count as duplicates.
    """
    bare = copy.copy(node)
    bare.body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    bare.decorator_list = []
    return hashlib.sha256(ast.dump(bare).encode("utf-8")).digest()[:16]


def _read_module(path: str) -> tuple[str, ast.Module]:
    with tokenize.open(path) as fh:  # honours coding cookies and BOMs, universal newlines
        source = fh.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences etc. in old code
        return source, ast.parse(source, filename=path)


def harvest(roots: str | Sequence[str] | None = None, config: PrepareConfig | None = None,
            stats: Counter | None = None) -> Iterator[dict[str, Any]]:
    """Docstring/function pairs from Python source, filtered the way CodeSearchNet was built.

    Walks each root (default: this interpreter's standard library) in sorted
    order and yields problem records lazily. Keeps module-level functions and
    methods whose name has no "test", that are not dunder methods, whose
    cleaned docstring has `min_nl_tokens`+ tokens and whose code has
    `min_code_lines`+ non-blank lines once the docstring is removed; drops
    functions whose normalised code was already seen. `stats` (a Counter)
    receives "files", "unparsable files", "functions", "records" and one count
    per skip reason.
    """
    config = config or PrepareConfig()
    stats = stats if stats is not None else Counter()
    if roots is None:
        roots = [stdlib_dir()]
        labels = ["stdlib"]
    else:
        roots = [roots] if isinstance(roots, str) else list(roots)
        labels = [os.path.basename(os.path.abspath(r).rstrip(os.sep)) or "root" for r in roots]
    for root in roots:
        if not os.path.exists(root):
            raise PdcError(f"cannot harvest {root}: no such directory, check the path")
    python = platform.python_version()
    seen_code: set[bytes] = set()
    seen_ids: Counter[str] = Counter()
    for root, label in zip(roots, labels):
        base = root if os.path.isdir(root) else os.path.dirname(root)
        for path in python_files(root):
            try:
                source, tree = _read_module(path)
            except (SyntaxError, ValueError, UnicodeError, LookupError, OSError):
                stats["unparsable files"] += 1
                continue
            stats["files"] += 1
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            lines = source.split("\n")
            for qualname, node in _functions(tree.body):
                stats["functions"] += 1
                try:
                    nl, code = _harvest_one(node, lines, config, seen_code)
                except Skipped as s:
                    stats[s.reason] += 1
                    continue
                record_id = f"harvest/{label}/{rel}:{qualname}"
                seen_ids[record_id] += 1
                if seen_ids[record_id] > 1:  # the same name defined twice (if/else branches)
                    record_id += f"#{seen_ids[record_id]}"
                stats["records"] += 1
                yield {"id": record_id, "lang": "python", "nl": nl, "code": code,
                       "split": split_for(record_id),
                       "source": {"dataset": "harvest", "root": os.path.abspath(root), "path": rel,
                                  "func_name": qualname, "lineno": node.lineno, "python": python}}
                if config.limit is not None and stats["records"] >= config.limit:
                    return


def _harvest_one(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], config: PrepareConfig,
                 seen_code: set[bytes]) -> tuple[str, str]:
    name = node.name
    if "test" in name.lower():
        raise Skipped("test function")
    if name.startswith("__") and name.endswith("__"):
        raise Skipped("dunder method")
    docstring = ast.get_docstring(node, clean=True)
    if docstring is None:
        raise Skipped("no docstring")
    nl = clean_docstring(docstring)
    if len(nl_tokens(nl)) < config.min_nl_tokens:
        raise Skipped("short docstring")
    try:
        code = strip_python_docstring(_function_source(node, lines))
    except ValueError as e:  # "no code besides the docstring" is the usual one
        raise Skipped("short code" if "besides" in str(e) else str(e)) from None
    if sum(1 for line in code.split("\n") if line.strip()) < config.min_code_lines:
        raise Skipped("short code")
    key = code_key(node)
    if key in seen_code:
        raise Skipped("duplicate code")
    seen_code.add(key)
    return nl, code
