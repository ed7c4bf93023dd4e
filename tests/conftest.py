"""Shared fixtures: a tiny untrained student built the way `pdc train` builds one."""

from __future__ import annotations

import inspect
import os

import pytest


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory) -> str:
    """A `scratch:tiny` T5 with random weights and a tokenizer trained on real code.

    Saved exactly as `pdc train` saves a student (weights, tokenizer,
    pdc_config.json), so export/bench/eval load it through their real paths.
    """
    from pdc import jsonl, students, tasks

    texts = [inspect.getsource(m) for m in (jsonl, students, tasks, os)]
    student = students.build_scratch("tiny", texts, seed=0)
    out = str(tmp_path_factory.mktemp("tiny-student"))
    students.save_student(student, out, {
        "markers": tasks.DEFAULT_MARKERS.to_dict(),
        "student": "scratch:tiny",
        "max_source_length": 128,
        "max_target_length": 64,
        "code_input": "nl",
        "seed": 0,
    })
    return out


@pytest.fixture(scope="session")
def cot_file(tmp_path_factory) -> str:
    """Extract output for ~150 real standard-library functions (prepare --harvest | extract -t ast)."""
    from pdc.extract import extract_record
    from pdc.jsonl import write_jsonl_file
    from pdc.prepare import PrepareConfig, harvest
    from pdc.teachers import get_teacher

    teacher = get_teacher("ast")
    problems = harvest(config=PrepareConfig(limit=150))
    path = str(tmp_path_factory.mktemp("cot") / "cot.jsonl")
    write_jsonl_file(path, (extract_record(teacher, p, p["id"]) for p in problems))
    return path
