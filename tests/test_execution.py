"""Functional correctness: the sandbox (hostile snippets included), pass@k, MBPP/HumanEval records, eval --exec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdc.cli import app
from pdc.execution import SandboxConfig, interpreter, isolation, pass_at_k, run_program, run_tests
from pdc.prepare import from_humaneval, from_mbpp, read_rows

DATA = Path(__file__).parent / "data"
FAST = SandboxConfig(timeout=3, memory_mb=512)


# ----------------------------------------------------------------- pass@k


def test_pass_at_k_matches_chen_et_al():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)            # c/n
    assert pass_at_k(5, 0, 5) == 0 and pass_at_k(5, 1, 5) == 1  # any correct
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))
    assert pass_at_k(4, 3, 2) == 1.0                           # n - c < k
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)


# ----------------------------------------------------------------- the sandbox


def test_passing_failing_and_early_exit():
    assert run_tests("def add(a, b):\n    return a + b", "assert add(1, 2) == 3", FAST).status == "passed"
    failed = run_tests("def add(a, b):\n    return a - b", "assert add(1, 2) == 3", FAST)
    assert failed.status == "failed" and "AssertionError" in failed.stderr
    # exiting 0 before the tests is not a pass
    assert run_tests("import sys\nsys.exit(0)", "assert False", FAST).status == "failed"
    assert run_tests("def f(:", "assert f()", FAST).status == "failed"  # SyntaxError


def test_output_is_captured_and_cut():
    result = run_program("print('hello')\nimport sys\nprint('x' * 100000, file=sys.stderr)", FAST)
    assert result.status == "passed" and result.stdout == "hello"
    assert len(result.stderr) <= 2000


@pytest.fixture
def canary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("canary")
    os.chmod(folder, 0o755)
    path = folder / "canary.txt"
    path.write_text("still here")
    os.chmod(path, 0o644)
    return path


HOSTILE = {
    "infinite loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(60)",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "huge allocation": "x = bytearray(64 * 1024 ** 3)",
    "huge list": "x = [0] * (10 ** 11)",
    "huge file": "with open('big', 'wb') as f:\n    for _ in range(1000):\n        f.write(b'x' * 1024 * 1024)",
    "huge output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
    "local network": "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()",
    "subprocess": "import subprocess\nsubprocess.run(['true'], check=True)",
    "ctypes": "import ctypes\nctypes.CDLL(None).getpid()",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_snippet_fails_within_limits(name):
    started = time.monotonic()
    result = run_program(HOSTILE[name], FAST)
    assert result.status in ("failed", "timeout"), result
    assert time.monotonic() - started < FAST.timeout + 20  # generous: the machine is shared


def test_deleting_files_outside_the_sandbox_fails(canary):
    for code in (f"import os\nos.remove({str(canary)!r})",
                 f"import shutil\nshutil.rmtree({str(canary.parent)!r})",
                 f"open({str(canary)!r}, 'w').write('gone')",
                 f"import os\nos.rename({str(canary)!r}, 'mine')"):
        assert run_program(code, FAST).status == "failed"
    assert canary.read_text() == "still here"
    # inside its own working directory a program may write and delete
    assert run_program("open('a', 'w').write('x')\nimport os\nos.remove('a')", FAST).status == "passed"


def test_process_group_is_gone_after_a_timeout():
    marker = "pdc-sandbox-sleeper-%d" % os.getpid()
    code = f"import time\n# {marker}\ntime.sleep(60)"
    assert run_program(code, SandboxConfig(timeout=1)).status == "timeout"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


# The operating-system layers alone (the audit hook off): what they do depends on
# the machine, so each test says what it needs.

NO_HOOK = SandboxConfig(timeout=3, memory_mb=512, audit_hook=False)
dropping = pytest.mark.skipif(not interpreter()[1], reason="needs root (the sandbox then runs as nobody)")


@dropping
def test_os_layer_user_nobody_cannot_delete_the_canary(canary):
    assert run_program(f"import os\nos.remove({str(canary)!r})", NO_HOOK).status == "failed"
    assert canary.exists()


@dropping
def test_os_layer_process_limit_stops_a_fork_bomb():
    code = ("import os\nn = 0\nfor _ in range(500):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n"
            "        import time\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)")
    result = run_program(code, NO_HOOK)
    assert result.status == "passed" and int(result.stdout) < NO_HOOK.max_processes


def test_os_layer_network_namespace_has_no_route():
    if not isolation()["network_namespace"]:
        pytest.skip("this kernel refuses network namespaces (the audit hook still blocks sockets)")
    result = run_program("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)", NO_HOOK)
    assert result.status == "failed" and "unreachable" in result.stderr.lower()


def test_os_layer_memory_limit():
    assert "MemoryError" in run_program("x = bytearray(4 * 1024 ** 3)", NO_HOOK).stderr


# ----------------------------------------------------------------- MBPP and HumanEval records


def test_mbpp_rows_become_records_with_tests():
    rows = list(read_rows([str(DATA / "mbpp_sample.jsonl")]))
    records = {r.record["task_id"]: from_mbpp(r.record, r.where) for r in rows}
    first = records[11]
    assert first["id"] == "mbpp/11" and first["split"] == "test" and first["lang"] == "python"
    assert first["tests"].count("assert ") == 3 and "\r" not in first["code"]
    assert records[511]["split"] == "valid" and records[601]["split"] == "train" and records[1]["split"] == "train"
    assert "test_setup_code" not in records[367]["tests"] and records[367]["tests"].count("assert") >= 1
    sanitized = [from_mbpp(r.record, r.where) for r in read_rows([str(DATA / "sanitized_mbpp_sample.json")])]
    assert sanitized[0]["id"] == "mbpp-sanitized/2"
    assert any(r["tests"].startswith("import math") for r in sanitized)


def test_mbpp_reference_solutions_pass():
    rows = [r.record for r in read_rows([str(DATA / "mbpp_sample.jsonl"), str(DATA / "sanitized_mbpp_sample.json")])]
    records = [from_mbpp(row, "x") for row in rows]
    results = {r["id"]: run_tests(r["code"], r["tests"], SandboxConfig(timeout=20)).status for r in records}
    assert set(results.values()) == {"passed"}, {k: v for k, v in results.items() if v != "passed"}
    assert "mbpp/367" in results and "mbpp/927" in results  # need test_setup_code after the code


def test_humaneval_rows_become_records_and_pass():
    rows = list(read_rows([str(DATA / "humaneval_sample.jsonl")]))
    records = [from_humaneval(r.record, r.where) for r in rows]
    assert records[0]["id"] == "humaneval/0" and records[0]["split"] == "test"
    assert records[0]["nl"].startswith("Check if in given list of numbers")
    assert records[0]["tests"].rstrip().endswith("check(has_close_elements)")
    for record in records:
        assert run_tests(record["code"], record["tests"], FAST).status == "passed"
        wrong = record["code"].replace("return", "return not", 1) if "return True" in record["code"] \
            else record["code"].replace("% 1.0", "% 2.0")
        assert run_tests(wrong, record["tests"], FAST).status == "failed"


def test_bad_mbpp_row_names_the_field():
    from pdc.errors import RecordError

    with pytest.raises(RecordError, match="test_list"):
        from_mbpp({"task_id": 3, "text": "x", "code": "y", "test_list": []}, "f.jsonl:3")
    with pytest.raises(RecordError, match="entry_point"):
        from_humaneval({"task_id": "HumanEval/9", "prompt": "def f():\n", "canonical_solution": " pass",
                        "test": "def check(c): pass", "entry_point": "not a name"}, "f.jsonl:1")


# ----------------------------------------------------------------- through the CLI


def _prepared(tmp_path) -> Path:
    out = tmp_path / "problems.jsonl"
    result = CliRunner().invoke(app, ["prepare", str(DATA / "humaneval_sample.jsonl"),
                                      str(DATA / "sanitized_mbpp_sample.json")])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    for r in records:  # three candidates: the reference, a broken one, a hostile one
        r["predictions"] = [r["code"], r["code"].replace("return", "return None and", 1), "while True: pass"]
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def test_eval_exec_reports_pass_at_k_and_security(tmp_path):
    problems = _prepared(tmp_path)
    result = CliRunner().invoke(app, ["eval", str(problems), "--exec", "--exec-timeout", "2", "--split", "all",
                                      "--security", "--workers", "2", "--limit", "6"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]
    assert len(records) == 6
    for r in records:
        assert r["exec"]["status"][0] == "passed" and r["exec"]["status"][2] == "timeout"
    ex = summary["exec"]
    assert ex["problems"] == 6 and ex["top1_pass"] == 100 and ex["pass@3"] == 100
    n_broken = sum(r["exec"]["status"][1] == "passed" for r in records)  # None and x: may still pass
    assert ex["pass@1"] == pytest.approx(100 * (6 + n_broken) / 18, abs=1e-3)
    assert ex["sandbox"]["timeout"] == 2 and "Chen et al." in ex["method"]
    sec = summary["security"]
    assert sec["snippets"] == 6 and set(sec) >= {"low", "medium", "high", "unparsable", "method"}


def test_eval_exec_names_a_record_without_tests(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "lang": "python", "nl": "x", "code": "y", "predictions": ["y"]}) + "\n")
    result = CliRunner().invoke(app, ["eval", str(path), "--exec", "--split", "all"])
    assert result.exit_code == 1 and "field 'tests'" in result.stderr
