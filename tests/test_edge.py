"""The torch-free edge runtime: same tokens as optimum/PyTorch, greedy and beam, no torch imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pdc.tasks import code_input

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models, one thread

# Same four problems the trained fixture of test_export learns, plus unseen ones.
PROBLEMS = ["Return the sum of two integers a and b.", "Reverse the string s and return it.",
            "Check whether n is a prime number.", "Count how many vowels the word w contains.",
            "Merge two sorted lists into one sorted list.", "Sort a dict by its values."]
PAIRS = [(PROBLEMS[0], "def add(a, b):\n    return a + b"), (PROBLEMS[1], "def rev(s):\n    return s[::-1]"),
         (PROBLEMS[2], "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))"),
         (PROBLEMS[3], "def vowels(w):\n    return sum(c in 'aeiou' for c in w)")]
BLOCKER = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "optimum"):
                raise ImportError(f"edge runtime imported {name}")
    sys.meta_path.insert(0, Block())
    from pdc.cli import main
    sys.argv = ["pdc"] + sys.argv[1:]
    try:
        main()
    finally:
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum"))
        print("HEAVY=" + ",".join(heavy), file=sys.stderr)
""")


@pytest.fixture(scope="module")
def trained(tiny_student_dir, tmp_path_factory):
    """(student dir, export dir) of the tiny student after 30 steps, so its outputs vary by input."""
    from conftest import train_briefly
    from pdc.export import export

    root = tmp_path_factory.mktemp("edge")
    train_briefly(tiny_student_dir, PAIRS, str(root / "student"))
    export(str(root / "student"), str(root / "export"), quantize=True, parity_n=0)
    return str(root / "student"), root / "export"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_same_tokens_as_optimum_greedy_and_beams(trained, variant):
    from pdc.edge import EdgeModel
    from pdc.export import encode, generate, load_onnx

    student_dir, out = trained
    edge, ort = EdgeModel(str(out / variant)), load_onnx(str(out / variant))
    lengths = set()
    for nl in PROBLEMS:
        text = code_input(nl, edge.markers)
        enc = encode(ort, text)
        ids = edge.encode(text)
        assert ids == enc["input_ids"][0].tolist()
        for beams in (1, 4):
            expected = generate(ort, enc, 24, beams)
            got = edge.generate(ids, 24, beams, early_stopping=beams > 1)
            assert got == expected, (nl, beams)
            assert edge.decode(got) == ort.tokenizer.decode(got, skip_special_tokens=True)
            lengths.add(len(got))
    assert len(lengths) > 1 or lengths != {24}  # some outputs stop at </s>: the test sees real text


@pytest.mark.slow
def test_fp32_edge_equals_pytorch_and_batches_agree(trained):
    from pdc.edge import EdgeModel
    from pdc.export import encode, generate
    from pdc.students import load_trained

    student_dir, out = trained
    edge, student = EdgeModel(str(out / "fp32")), load_trained(student_dir)
    batch = [edge.encode(code_input(nl, edge.markers)) for nl in PROBLEMS]
    singles = [edge.generate(ids, 24) for ids in batch]
    for nl, got in zip(PROBLEMS, singles):
        assert got == generate(student, encode(student, code_input(nl, student.markers)), 24)
    assert edge.greedy(batch, 24) == singles  # padding and per-row stopping change nothing in fp32
    beams = edge.beam_search(batch[0], 3, 24, early_stopping=True)
    assert len(beams) == 3 and beams[0].score >= beams[1].score >= beams[2].score


def test_not_an_export_is_one_line_error(tiny_student_dir):
    from pdc.edge import EdgeModel
    from pdc.errors import PdcError

    with pytest.raises(PdcError, match="not a pdc ONNX export .*encoder_model.onnx"):
        EdgeModel(tiny_student_dir)


def _run_blocked(args, stdin):
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-c", BLOCKER, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_generate_and_bench_never_import_torch_or_transformers(trained):
    _, out = trained
    problems = "".join(json.dumps({"id": f"p{i}", "nl": nl}) + "\n" for i, nl in enumerate(PROBLEMS[:2]))
    result = _run_blocked(["generate", "-m", str(out / "int8"), "--max-new-tokens", "8", "-k", "2"], problems)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["p0", "p1"]
    assert records[0]["generated_by"]["backend"] == "onnx" and isinstance(records[0]["code"], str)
    result = _run_blocked(["bench", "-m", str(out / "fp32"), "--max-new-tokens", "8", "--threads", "1"], problems)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["backend"] == "onnx" and summary["n"] == 2 and "torch" not in summary["machine"]


def test_blocker_really_blocks():
    """The import blocker above fails a command that needs torch (so the test above can fail)."""
    result = _run_blocked(["generate", "-m", "/nonexistent-dir", "x y"], "")
    assert result.returncode == 1 and "does not exist" in result.stderr
    probe = subprocess.run([sys.executable, "-c", BLOCKER.replace("from pdc.cli import main", "import torch")],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode != 0 and "edge runtime imported torch" in probe.stderr


def test_edge_extra_pulls_no_torch():
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    names = lambda reqs: {r.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower()  # noqa: E731
                          for r in reqs}
    edge = names(project["dependencies"]) | names(project["optional-dependencies"]["edge"])
    assert {"onnxruntime", "tokenizers", "numpy", "typer", "rich", "jsonlines"} <= edge
    assert not edge & {"torch", "transformers", "optimum", "optimum-onnx", "onnx", "codebleu", "tree-sitter"}
