"""Conventions every command shares: help with an example pipe, exit codes, quiet broken pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pdc.cli import COMMANDS, app

PDC = [sys.executable, "-m", "pdc"]
COMMAND_NAMES = [c.replace("_", "-") for c in COMMANDS]


def run(args, input_text=None, **kw):
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(PDC + args, input=input_text, capture_output=True, text=True, env=env, timeout=120, **kw)


def test_top_level_help_lists_every_command_and_a_pipe():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMAND_NAMES:
        assert name in result.stdout
    assert "| pdc" in result.stdout


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_each_command_help_shows_an_example_pipe(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "pdc " in result.stdout and ("|" in result.stdout or "<" in result.stdout)


def test_python_dash_m_works_like_pdc():
    result = run(["--help"])
    assert result.returncode == 0 and "shuffle-cot" in result.stdout


def test_usage_error_exits_2():
    result = run(["shuffle-cot", "--mode", "sideways"], input_text="")
    assert result.returncode == 2
    assert "sideways" in result.stderr and result.stdout == ""


def test_bad_json_is_one_line_naming_line_and_exit_1():
    good = json.dumps({"id": "a", "pseudocode": ["x", "y"], "status": "ok"})
    result = run(["shuffle-cot"], input_text=good + "\n{broken\n")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("Error: stdin:2: not valid JSON")
    assert json.loads(result.stdout)["id"] == "a"  # what was written stays written


@pytest.mark.parametrize("text,problem", [
    ('{"id": "a", "x": NaN}', "NaN is not valid JSON"),
    ('{"id": "\\ud800"}', "lone surrogate"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_json_traps_are_reported_by_line(text, problem):
    result = run(["shuffle-cot"], input_text=text + "\n")
    assert result.returncode == 1
    assert "stdin:1" in result.stderr and problem in result.stderr


def test_bad_utf8_is_reported_by_line():
    data = b'{"id": "a", "pseudocode": ["x", "y"]}\n{"id": "\xff"}\n'
    result = subprocess.run(PDC + ["shuffle-cot"], input=data, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert b"stdin:2: not UTF-8" in result.stderr


def test_head_ends_the_pipe_quietly():
    records = "".join(json.dumps({"id": f"r{i}", "pseudocode": ["a", "b", "c"], "status": "ok"}) + "\n"
                      for i in range(20000))
    proc = subprocess.run(
        f"{sys.executable} -m pdc shuffle-cot | head -1",
        shell=True, input=records, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["id"] == "r0"
    assert proc.stderr == ""


def test_missing_input_file_is_a_clear_error():
    result = run(["shuffle-cot", "no/such/file.jsonl"])
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot open no/such/file.jsonl")


def test_terminal_stdin_is_refused_instead_of_hanging():
    script = ("import pty, os, sys, subprocess\n"
              "m, s = pty.openpty()\n"
              "p = subprocess.run([sys.executable, '-m', 'pdc', 'shuffle-cot'], stdin=s, capture_output=True, timeout=60)\n"
              "print(p.returncode); print(p.stderr.decode())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90).stdout
    assert out.startswith("2\n") and "stdin is a terminal" in out
