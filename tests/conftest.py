"""Shared fixtures: a tiny untrained student built the way `pdc train` builds one."""

from __future__ import annotations

import inspect
import os

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: they gain nothing from threads, and on a
    busy 2-core runner spinning OpenMP workers slow them several-fold. Restored afterwards
    (training results depend on the count). Use: pytestmark = pytest.mark.usefixtures(...)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def train_briefly(student_dir: str, pairs: list[tuple[str, str]], out: str, steps: int = 30) -> str:
    """Save to `out` the student after `steps` Adam steps on (problem, code) pairs.

    An untrained student greedily repeats one token for every input, so an
    export would agree with it trivially; a few steps give varied, input-dependent
    tokens and make token-level comparisons (parity, runtimes) real tests.
    """
    import torch

    from pdc.students import load_trained, save_student
    from pdc.tasks import code_input

    student = load_trained(student_dir)
    tok, model = student.tokenizer, student.model
    enc = tok([code_input(nl, student.markers) for nl, _ in pairs], padding=True, return_tensors="pt",
              return_token_type_ids=False)  # (N, S)
    labels = tok([code for _, code in pairs], padding=True, return_tensors="pt").input_ids  # (N, T)
    labels[labels == tok.pad_token_id] = -100
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    save_student(student, out, student.config)
    return out
