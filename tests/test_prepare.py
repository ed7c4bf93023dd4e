"""pdc prepare: docstring cleaning, splits, CodeSearchNet input, harvest mode, the command."""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pdc.commands.prepare import prepare
from pdc.errors import PdcError, RecordError
from pdc.prepare import (
    CsnPreparer,
    PrepareConfig,
    Skipped,
    SplitMode,
    clean_docstring,
    from_csn,
    harvest,
    nl_tokens,
    split_for,
    strip_python_docstring,
)

DATA = Path(__file__).parent / "data"
PY_ROWS = DATA / "csn_python_prepare.jsonl"
RUBY_ROWS = DATA / "csn_ruby_prepare.jsonl"
KEYS = ["id", "lang", "nl", "code", "split", "source"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def app() -> typer.Typer:
    """The command alone, so these tests do not depend on the other commands importing."""
    a = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    a.command("prepare")(prepare)

    @a.command("noop")  # a second command keeps typer in multi-command mode, like pdc's app
    def noop() -> None:
        pass

    return a


def run(args: list[str], input: str | None = None):
    return CliRunner().invoke(app(), ["prepare", *args], input=input)


def out_records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def check_schema(record: dict) -> None:
    assert list(record) == KEYS
    assert record["lang"] in ("python", "ruby", "go", "java", "javascript", "php")
    assert record["split"] in ("train", "valid", "test")
    assert isinstance(record["nl"], str) and len(nl_tokens(record["nl"])) >= 3
    assert isinstance(record["code"], str) and record["code"]
    assert record["source"]["dataset"] in ("codesearchnet", "harvest")


# ---------------------------------------------------------------- docstring cleaning (golden)

@pytest.mark.parametrize("raw, clean", [
    ("Return the sum of a and b.", "Return the sum of a and b."),
    ("str->list\n    Convert XML to URL List.\n    From Biligrab.", "str->list Convert XML to URL List. From Biligrab."),
    ("\n\n   Leading blank lines go.\n   Second line.\n", "Leading blank lines go. Second line."),
    ("Summary line.\n\nLong description that is dropped.", "Summary line."),
    ("Summary line.\n    \n    Whitespace-only line ends the paragraph.", "Summary line."),
    ("Checks a task\n    :param task: TaskInstance\n    :return: True", "Checks a task"),
    ("Get a row.\n:type schema: str", "Get a row."),
    ("Copy files.\n@param [String] source\n@return [void]", "Copy files."),
    ("Create a thing.\n * @throws {Error} when bad", "Create a thing. * @throws {Error} when bad"),
    ("Create a thing.\n@throws {Error} when bad", "Create a thing."),
    ("Saved via @logger.summary.add_action\n@logger.summary.x and more", "Saved via @logger.summary.add_action @logger.summary.x and more"),
    ("Scan a string.\n    Args:\n        text: A string.", "Scan a string."),
    ("Parse the url.\nReturns: the value", "Parse the url."),
    ("Do it.\nKeyword Arguments:\n  x: y", "Do it."),
    ("Compute the mean.\nParameters\n----------\nx : array", "Compute the mean."),
    ("Compute the mean.\n----------", "Compute the mean."),
    ("Returns the state of a task.\n    >>> airflow task_state\n    success", "Returns the state of a task."),
    ("Returns the list of files in a folder", "Returns the list of files in a folder"),
    ("Tabs\tand   runs\n\tof   space.", "Tabs and runs of space."),
    ("Args:\n  x: the only section", ""),
    ("", ""),
])
def test_clean_docstring_golden(raw, clean):
    assert clean_docstring(raw) == clean


def test_nl_tokens_split_words_and_punctuation_like_csn():
    assert nl_tokens("str->list of str") == ["str", "-", ">", "list", "of", "str"]
    assert len(nl_tokens("Helper.")) == 2
    assert len(nl_tokens("Return the value.")) == 4


# ---------------------------------------------------------------- splits

def test_split_is_a_pure_function_of_the_id():
    assert split_for("csn/python/a/b.py#L1-L9") == split_for("csn/python/a/b.py#L1-L9")
    ids = [f"csn/python/owner/repo/file{i}.py#L{i}-L{i + 9}" for i in range(20000)]
    first = [split_for(i) for i in ids]
    assert [split_for(i) for i in reversed(ids)] == list(reversed(first))
    share = Counter(first)
    assert abs(share["train"] / len(ids) - 0.8) < 0.015
    assert abs(share["valid"] / len(ids) - 0.1) < 0.01
    assert abs(share["test"] / len(ids) - 0.1) < 0.01


def test_resplit_ignores_input_order_and_other_rows():
    data = rows(PY_ROWS)
    forward = {r["id"]: r["split"] for r in (from_csn(x, "t") for x in data)}
    backward = {r["id"]: r["split"] for r in (from_csn(x, "t") for x in reversed(data[5:]))}
    assert all(forward[k] == v for k, v in backward.items())


def test_partition_mode_keeps_csn_partition():
    config = PrepareConfig(split=SplitMode.partition)
    data = rows(PY_ROWS)
    assert {from_csn(r, "t", config)["split"] for r in data} == {"test"}
    row = dict(data[0], partition="validation")
    assert from_csn(row, "t", config)["split"] == "valid"
    with pytest.raises(RecordError) as e:
        from_csn(dict(data[0], partition="holdout"), "f:3", config)
    assert str(e.value).startswith("f:3, field 'partition': unknown partition 'holdout'")
    with pytest.raises(RecordError, match="field 'partition': missing"):
        from_csn({k: v for k, v in data[0].items() if k != "partition"}, "f:4", config)


# ---------------------------------------------------------------- python docstring removal

def test_docstring_removed_exactly_on_a_real_row():
    row = rows(PY_ROWS)[0]
    assert strip_python_docstring(row["code"]) == (
        "def sina_xml_to_url_list(xml_data):\n"
        "    rawurl = []\n"
        "    dom = parseString(xml_data)\n"
        "    for node in dom.getElementsByTagName('durl'):\n"
        "        url = node.getElementsByTagName('url')[0]\n"
        "        rawurl.append(url.childNodes[0].data)\n"
        "    return rawurl"
    )


def test_docstring_removal_deletes_only_whole_docstring_lines_on_all_real_rows():
    for row in rows(PY_ROWS):
        code = row["code"]
        out = strip_python_docstring(code)
        kept = out.split("\n")
        lines = code.split("\n")
        # the output is the input with one contiguous run of lines taken out
        i = next((n for n, (a, b) in enumerate(zip(lines, kept)) if a != b), len(kept))
        removed = len(lines) - len(kept)
        assert lines[:i] + lines[i + removed:] == kept, row["url"]
        gone = "\n".join(lines[i:i + removed]).strip()
        assert gone[:3] in ('"""', "'''") or gone[0] in "rRuU\"'", row["url"]
        assert row["docstring"].splitlines()[0].strip() in gone


@pytest.mark.parametrize("code, expected", [
    ('def f(x):\n    """Doc."""\n    return x', "def f(x):\n    return x"),
    ('def f(x):\r\n    """Doc."""\r\n    return x\r\n', "def f(x):\r\n    return x\r\n"),
    ('def f(x): """Doc."""; return x', "def f(x): return x"),
    ('def f(x):\n    """Doc."""; y = x\n    return y', "def f(x):\n    y = x\n    return y"),
    ('def f(x):\n    """Doc."""  # note\n    return x', "def f(x):\n      # note\n    return x"),
    ('def f(x):\n    # c\n    r"""Doc\n    more."""\n\n    return x', "def f(x):\n    # c\n\n    return x"),
    ('@dec\nasync def f(x):\n    "Doc" "more"\n    return x', "@dec\nasync def f(x):\n    return x"),
    ('def f(x):\n    """Doc."""\n    print "py2", x\n    exec "x"', 'def f(x):\n    print "py2", x\n    exec "x"'),
    ('def f(x):\n    """Doc é."""\n    return "é"', 'def f(x):\n    return "é"'),
])
def test_strip_python_docstring_cases(code, expected):
    assert strip_python_docstring(code) == expected


@pytest.mark.parametrize("code, problem", [
    ("def f(x):\n    return x", "no docstring"),
    ('def f(x):\n    f"""Not {x} a docstring."""\n    return x', "no docstring"),
    ('def f(x):\n    b"""Not a docstring."""\n    return x', "no docstring"),
    ('def f(x):\n    """Only a docstring."""', "no code besides the docstring"),
    ("x = 1", "no function definition"),
])
def test_strip_python_docstring_refuses(code, problem):
    with pytest.raises(ValueError, match=problem):
        strip_python_docstring(code)


# ---------------------------------------------------------------- CodeSearchNet rows

def test_csn_python_records():
    data = rows(PY_ROWS)
    records = [from_csn(r, f"f:{n}") for n, r in enumerate(data, 1)]
    for record, row in zip(records, data):
        check_schema(record)
        assert record["lang"] == "python"
        assert row["docstring"].splitlines()[0].strip() not in record["code"]
        assert record["source"] == {"dataset": "codesearchnet", **{k: row[k] for k in
                                    ("repo", "path", "func_name", "url", "sha", "partition")}}
    assert records[0]["id"] == "csn/python/soimort/you-get/src/you_get/extractors/miomio.py#L41-L51"
    assert len({r["id"] for r in records}) == len(records)


def test_csn_ruby_passthrough():
    for row in rows(RUBY_ROWS):
        record = from_csn(row, "f:1")
        check_schema(record)
        assert record["lang"] == "ruby" and record["code"] == row["code"]
    assert from_csn(rows(RUBY_ROWS)[3], "f:4")["nl"] == (
        "Determine the best compressor for the current system. "
        "This method returns the class, not an instance of the class.")


def test_csn_id_without_url_and_filters():
    row = dict(rows(RUBY_ROWS)[0])
    del row["url"]
    assert from_csn(row, "f:1")["id"] == (
        "csn/ruby/Shopify/kubernetes-deploy/lib/kubernetes-deploy/deferred_summary_logging.rb"
        ":KubernetesDeploy.DeferredSummaryLogging.print_summary")
    with pytest.raises(Skipped, match="short docstring"):
        from_csn(dict(row, docstring="Ruby."), "f:1")
    with pytest.raises(Skipped, match="other language"):
        from_csn(row, "f:1", PrepareConfig(langs=("python",)))
    with pytest.raises(RecordError, match="f:2, field 'language': unsupported language 'cobol'"):
        from_csn(dict(row, language="cobol"), "f:2")
    with pytest.raises(RecordError, match="f:2, field 'code': empty"):
        from_csn(dict(row, code=""), "f:2")


def test_preparer_skips_duplicate_ids_with_a_note():
    notes: list[str] = []
    preparer = CsnPreparer(note=notes.append)
    row = rows(RUBY_ROWS)[0]
    assert len(list(preparer(row, "f:1"))) == 1
    assert list(preparer(dict(row), "f:2")) == []
    assert preparer.skipped == Counter({"duplicate id": 1})
    assert notes == [f"f:2: duplicate id {from_csn(row, 'x')['id']}, skipped"]


# ---------------------------------------------------------------- the command on CSN input

def test_command_reads_files_and_gz_the_same(tmp_path):
    gz = tmp_path / "python.jsonl.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(PY_ROWS.read_bytes())
    plain = run([str(PY_ROWS)])
    packed = run([str(gz)])
    assert plain.exit_code == 0 and packed.exit_code == 0, plain.stderr + packed.stderr
    assert plain.stdout == packed.stdout
    records = out_records(plain)
    assert len(records) == 30
    for record in records:
        check_schema(record)
    assert "prepare: 30 records from 30 rows" in plain.stderr


def test_command_reads_stdin_and_filters_by_language():
    text = PY_ROWS.read_text() + RUBY_ROWS.read_text()
    both = run([], input=text)
    assert both.exit_code == 0, both.stderr
    assert Counter(r["lang"] for r in out_records(both)) == {"python": 30, "ruby": 10}
    ruby = run(["-", "--lang", "ruby"], input=text)
    assert [r["lang"] for r in out_records(ruby)] == ["ruby"] * 10
    assert "other language 30" in ruby.stderr


def test_command_limit_and_duplicates():
    limited = run([str(PY_ROWS), "--limit", "4"])
    assert len(out_records(limited)) == 4 and "from 4 rows" in limited.stderr
    twice = run([str(RUBY_ROWS), str(RUBY_ROWS)])
    assert twice.exit_code == 0
    assert len(out_records(twice)) == 10
    assert "duplicate id" in twice.stderr and "duplicate id 10" in twice.stderr


def test_command_partition_split():
    result = run([str(RUBY_ROWS), "--split", "partition"])
    assert {r["split"] for r in out_records(result)} == {"test"}


def bad_input() -> str:
    lines = PY_ROWS.read_text().splitlines()[:8]
    row = json.loads(lines[6])
    del row["docstring"]
    lines[6] = json.dumps(row)
    return "\n".join(lines) + "\n"


def test_bad_record_stops_with_line_and_field():
    result = run([], input=bad_input())
    assert isinstance(result.exception, RecordError)
    assert str(result.exception) == "stdin:7, field 'docstring': missing"
    assert result.exception.exit_code == 1
    assert len(out_records(result)) == 6  # what was written before stays written


def test_on_error_skip_and_emit():
    skip = run(["--on-error", "skip"], input=bad_input())
    assert len(out_records(skip)) == 7
    assert isinstance(skip.exception, PdcError) and skip.exception.exit_code == 3
    assert "stdin:7, field 'docstring': missing" in skip.stderr
    emit = run(["--on-error", "emit"], input=bad_input() + "not json\n")
    records = out_records(emit)
    assert len(records) == 9
    assert records[6] == {"where": "stdin:7", "status": "error",
                          "error": {"type": "bad_record", "where": "stdin:7", "field": "docstring",
                                    "message": "missing", "retryable": False}}
    assert records[8]["where"] == "stdin:9" and records[8]["status"] == "error"
    assert emit.exception.exit_code == 3


def test_help_starts_with_its_summary_and_an_example_pipe():
    result = run(["--help"])
    assert result.exit_code == 0
    assert ("Turn CodeSearchNet, MBPP or HumanEval rows, or Python source, into problem records"
            in " ".join(result.stdout.split()))
    assert "pdc prepare --harvest --limit 500 | pdc extract --teacher ast > cot.jsonl" in result.stdout


def test_usage_errors_for_harvest():
    assert run(["--harvest", "--split", "partition"]).exit_code == 2
    assert run(["--harvest", "--lang", "ruby"]).exit_code == 2


def test_real_entry_point_reports_bad_record_in_one_line():
    """Through `python -m pdc` (needs every command module to import)."""
    probe = subprocess.run([sys.executable, "-c", "import pdc.cli"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip("pdc.cli does not import yet: " + probe.stderr.strip().splitlines()[-1])
    proc = subprocess.run([sys.executable, "-m", "pdc", "prepare"], input=bad_input(),
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: stdin:7, field 'docstring': missing"
    assert len(proc.stdout.splitlines()) == 6


# ---------------------------------------------------------------- harvest

TREE = {
    "pkg/__init__.py": "",
    "pkg/core.py": '''
        import os

        def add_all(values):
            """Add every value in the list together.

            Args:
                values: numbers.
            """
            total = 0
            for v in values:
                total += v
            return total

        def short_code(x):
            """This one is far too short."""
            return x

        def few_words(x):
            """Helper."""
            y = x + 1
            z = y * 2
            return z

        def test_add_all():
            """Check that add_all adds everything."""
            assert add_all([1, 2]) == 3
            assert add_all([]) == 0
            assert add_all([5]) == 5

        def no_doc(x):
            y = x + 1
            z = y * 2
            return z

        def outer(x):
            """Outer function with a nested helper."""
            def inner(y):
                """Nested helpers are not harvested."""
                a = y
                return a
            return inner(x) + 1

        class Stack:
            """A stack."""

            def __init__(self):
                """Make an empty stack here."""
                self.items = []
                self.size = 0

            def __len__(self):
                """Number of items on the stack."""
                n = len(self.items)
                return n

            @property
            def top(self):
                """The item on top of the stack."""
                if not self.items:
                    return None
                return self.items[-1]

            def render(self):
                """Render the stack as text lines."""
                text = """first
        second"""
                lines = text.split()
                return lines

        if os.name == "nt":
            def sep():
                """The path separator on this system."""
                value = "\\\\"
                return value
        else:
            def sep():
                """The path separator on this system."""
                value = "/"
                return value
        ''',
    "pkg/utils.py": '''
        def add_all(values):
            """Same code as in core, a different docstring."""
            # a comment does not make it different
            total = 0
            for v in values:
                total += v
            return total
        ''',
    "pkg/broken.py": "def f(:\n    pass\n",
    "pkg/test_things.py": 'def helper(x):\n    """A helper in a test file."""\n    a = 1\n    b = 2\n    return a + b\n',
    "pkg/tests/test_core.py": 'def check(x):\n    """Checks that live in tests."""\n    a = 1\n    b = 2\n    return a\n',
    "pkg/site-packages/dep.py": 'def dep(x):\n    """Third-party code is skipped."""\n    a = 1\n    b = 2\n    return a\n',
}


@pytest.fixture()
def tree(tmp_path) -> Path:
    root = tmp_path / "proj"
    for rel, text in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def test_harvest_applies_each_filter(tree):
    stats: Counter = Counter()
    records = list(harvest(str(tree), stats=stats))
    ids = [r["id"] for r in records]
    assert ids == [
        "harvest/proj/pkg/core.py:add_all",
        "harvest/proj/pkg/core.py:outer",
        "harvest/proj/pkg/core.py:Stack.top",
        "harvest/proj/pkg/core.py:Stack.render",
        "harvest/proj/pkg/core.py:sep",
        "harvest/proj/pkg/core.py:sep#2",
    ]
    assert stats["unparsable files"] == 1 and stats["files"] == 3
    assert stats["duplicate code"] == 1 and stats["test function"] == 1 and stats["dunder method"] == 2
    assert stats["short code"] == 1 and stats["short docstring"] == 1 and stats["no docstring"] == 1
    by_id = {r["id"]: r for r in records}
    add_all = by_id["harvest/proj/pkg/core.py:add_all"]
    check_schema(add_all)
    assert add_all["nl"] == "Add every value in the list together."
    assert add_all["code"] == "def add_all(values):\n    total = 0\n    for v in values:\n        total += v\n    return total"
    assert add_all["split"] == split_for(add_all["id"])
    assert add_all["source"] == {"dataset": "harvest", "root": str(tree), "path": "pkg/core.py",
                                 "func_name": "add_all", "lineno": 3, "python": add_all["source"]["python"]}
    # methods are dedented to column 0; decorators are left out; strings keep their text
    assert by_id["harvest/proj/pkg/core.py:Stack.top"]["code"].startswith("def top(self):\n    if not self.items:")
    assert 'text = """first\nsecond"""' in by_id["harvest/proj/pkg/core.py:Stack.render"]["code"]
    for record in records:
        assert ast.get_docstring(ast.parse(record["code"]).body[0]) is None


def test_harvest_is_deterministic_and_limit_is_lazy(tree):
    assert list(harvest(str(tree))) == list(harvest(str(tree)))
    stats: Counter = Counter()
    assert len(list(harvest(str(tree), PrepareConfig(limit=1), stats))) == 1
    assert stats["functions"] == 1  # stopped at the first record


def test_harvest_thresholds_are_options(tree):
    loose = list(harvest(str(tree), PrepareConfig(min_nl_tokens=1, min_code_lines=2)))
    assert {"harvest/proj/pkg/core.py:short_code", "harvest/proj/pkg/core.py:few_words"} <= {r["id"] for r in loose}


def test_harvest_missing_directory():
    with pytest.raises(PdcError, match="no such directory"):
        list(harvest("/no/such/dir"))


def test_harvest_stdlib_with_limit():
    stats: Counter = Counter()
    records = list(harvest(config=PrepareConfig(limit=50), stats=stats))
    assert len(records) == 50 and len({r["id"] for r in records}) == 50
    for record in records:
        check_schema(record)
        assert record["id"].startswith("harvest/stdlib/") and record["source"]["dataset"] == "harvest"
        assert "/test/" not in record["source"]["path"] and "site-packages" not in record["source"]["path"]
        func = ast.parse(record["code"]).body[0]
        assert isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        assert ast.get_docstring(func) is None and "test" not in func.name.lower()
    assert stats["files"] < 100  # lazy: it did not walk the whole library


def test_harvest_command(tree):
    result = run(["--harvest", str(tree), "--limit", "2"])
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in out_records(result)] == ["harvest/proj/pkg/core.py:add_all",
                                                       "harvest/proj/pkg/core.py:outer"]
    assert "prepare: 2 records" in result.stderr
    default = run(["--harvest", "--limit", "3"])
    assert len(out_records(default)) == 3


def test_harvested_methods_with_tabs_and_no_dedent_needed(tmp_path):
    src = tmp_path / "t.py"
    src.write_text('class A:\n\tdef go(self, x):\n\t\t"""Go somewhere with x."""\n\t\ty = x\n\t\treturn y\n')
    (record,) = harvest(str(src))
    assert record["code"] == "def go(self, x):\n\ty = x\n\treturn y"
    assert record["source"]["path"] == "t.py"
