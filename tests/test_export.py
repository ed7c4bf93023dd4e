"""pdc export: ONNX fp32/int8 directories, provenance, parity with PyTorch, atomic writes."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from pdc import export as core
from pdc.cli import app
from pdc.errors import PdcError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models, one thread

# Problems the trained fixture saw (and two it did not); read by --problems - in `exported`.
PAIRS = [
    ("Return the sum of two integers a and b.", "def add(a, b):\n    return a + b"),
    ("Reverse the string s and return it.", "def rev(s):\n    return s[::-1]"),
    ("Check whether n is a prime number.", "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))"),
    ("Count how many vowels the word w contains.", "def vowels(w):\n    return sum(c in 'aeiou' for c in w)"),
]
PROBLEMS = [{"id": f"p{i}", "nl": nl} for i, (nl, _) in enumerate(PAIRS)] + [
    {"id": "p4", "nl": "Merge two sorted lists into one sorted list."},
    {"id": "p5", "nl": "Return the n-th Fibonacci number."},
]


def leftovers(parent) -> list[str]:
    """Temporary or set-aside directories an export may leave next to OUT."""
    return [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]


@pytest.fixture(scope="module")
def trained_dir(tiny_student_dir, tmp_path_factory) -> str:
    """The tiny student after 30 steps on four problems.

    The untrained fixture greedily repeats its start token (pad) for all 64
    steps, so any export would agree with it trivially; a few steps of training
    give varied, code-like tokens and make token parity a real test.
    """
    from conftest import train_briefly

    return train_briefly(tiny_student_dir, PAIRS, str(tmp_path_factory.mktemp("trained-tiny")))


@pytest.fixture(scope="module")
def exported(trained_dir, tmp_path_factory):
    """`pdc export` of the trained student, parity problems from stdin: (OUT, record, result)."""
    out = tmp_path_factory.mktemp("exports") / "export"
    stdin = "".join(json.dumps(p) + "\n" for p in PROBLEMS)
    result = CliRunner().invoke(app, ["export", "--model", trained_dir, "--out", str(out), "--problems", "-"],
                                input=stdin)
    assert result.exit_code == 0, result.stderr
    return out, json.loads(result.stdout), result


@pytest.mark.slow
def test_stdout_is_one_record_progress_on_stderr(exported):
    _, record, result = exported
    assert len(result.stdout.splitlines()) == 1
    assert "parity check" in result.stderr and "{" not in result.stderr
    assert set(record) >= {"model", "out", "files", "total_bytes", "fp32", "int8", "seconds", "opset"}


@pytest.mark.slow
def test_layout_each_variant_self_contained(exported, trained_dir):
    out, record, _ = exported
    for variant in ("fp32", "int8"):
        names = set(os.listdir(out / variant))
        assert {"encoder_model.onnx", "decoder_model_merged.onnx", "config.json", "tokenizer.json",
                "pdc_config.json"} <= names
        assert not names & {"decoder_model.onnx", "decoder_with_past_model.onnx"}  # merged replaces them
    on_disk = sorted(str(p) for p in out.rglob("*") if p.is_file() and p.name != "export.json")
    assert [f["path"] for f in record["files"]] == on_disk
    assert all(f["bytes"] == os.path.getsize(f["path"]) for f in record["files"])
    assert record["total_bytes"] == sum(f["bytes"] for f in record["files"])
    assert json.loads((out / "export.json").read_text()) == record
    assert record["model"] == trained_dir and record["out"] == str(out)
    assert record["int8"]["onnx_bytes"] < 0.6 * record["fp32"]["onnx_bytes"]
    assert oct(os.stat(out).st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode


@pytest.mark.slow
def test_provenance_block_in_each_pdc_config(exported, trained_dir):
    out, record, _ = exported
    source = json.loads(open(os.path.join(trained_dir, "pdc_config.json")).read())
    for variant in ("fp32", "int8"):
        config = json.loads((out / variant / "pdc_config.json").read_text())
        assert config["markers"] == source["markers"]
        assert config["max_target_length"] == source["max_target_length"]
        block = config["export"]
        assert block["source"] == os.path.abspath(trained_dir)
        assert block["precision"] == variant and block["task"] == core.TASK
        assert block["opset"] == record["opset"] >= 11
        assert "optimum" in block["versions"] and "onnxruntime" in block["versions"]
    assert json.loads((out / "fp32" / "pdc_config.json").read_text())["export"]["quantization"] is None
    q = json.loads((out / "int8" / "pdc_config.json").read_text())["export"]["quantization"]
    assert q == record["int8"]["quantization"]
    assert q == dict(core.QUANTIZATION, folded_transposes=q["folded_transposes"])
    # transformers ties the head through a Transpose when accelerate is installed, and
    # exports a separate transposed copy when it is not: either way the head is int8
    assert q["folded_transposes"] in ({}, {"decoder_model_merged.onnx": ["shared.weight_transposed"]})


def test_lm_head_is_an_int8_matmul_and_no_weight_is_dequantized_per_step(exported):
    """The head (d_model x vocabulary) runs as MatMulInteger in both If branches, and no
    DequantizeLinear rebuilds a whole weight matrix at every decoding step."""
    import onnx

    out, _, _ = exported
    vocab = json.loads((out / "int8" / "config.json").read_text())["vocab_size"]
    graph = onnx.load(str(out / "int8" / "decoder_model_merged.onnx"), load_external_data=False)
    dims = {init.name: list(init.dims) for init in graph.graph.initializer}
    nodes = []

    def walk(g):
        for node in g.node:
            nodes.append(node)
            for attr in node.attribute:
                if attr.g.node:
                    walk(attr.g)

    walk(graph.graph)
    heads = [n for n in nodes if n.op_type == "MatMulInteger" and dims.get(n.input[1], [0])[-1] == vocab]
    assert len(heads) == 2  # the head, in both If branches
    assert not any(n.op_type == "DequantizeLinear" and len(dims.get(n.input[0], [])) == 2 for n in nodes)


def test_fold_weight_transposes_makes_a_tied_head_quantizable(tmp_path):
    """A merged-decoder-like graph: If branches computing x @ Transpose(W) from a top-level W."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((50, 16)).astype(np.float32)  # (vocabulary, d_model), like shared.weight

    def branch(name):
        return helper.make_graph(
            [helper.make_node("Transpose", ["W"], ["W_t"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "W_t"], ["y_" + name])],
            name, [], [helper.make_tensor_value_info("y_" + name, TensorProto.FLOAT, [2, 50])])

    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], then_branch=branch("then"), else_branch=branch("else"))],
        "tied", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16]),
                 helper.make_tensor_value_info("flag", TensorProto.BOOL, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 50])], [numpy_helper.from_array(w, "W")])
    src, folded_path = tmp_path / "src", tmp_path / "folded.onnx"
    src.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src / "m.onnx"))

    assert core.fold_weight_transposes(str(src / "m.onnx"), str(folded_path)) == ["W_t"]
    x = rng.standard_normal((2, 16)).astype(np.float32)
    feed = {"x": x, "flag": np.array([True])}
    run = lambda path: ort.InferenceSession(str(path)).run(None, feed)[0]  # noqa: E731
    assert np.allclose(run(folded_path), x @ w.T, atol=1e-5)
    assert core.fold_weight_transposes(str(folded_path), str(tmp_path / "again.onnx")) == []  # nothing left

    settings = core.quantize_dir(str(src), str(tmp_path / "int8"))
    assert settings["folded_transposes"] == {"m.onnx": ["W_t"]}
    assert os.listdir(tmp_path / "int8") == ["m.onnx"]  # the prepared copy is gone
    q = onnx.load(str(tmp_path / "int8" / "m.onnx"))
    ops = [n.op_type for node in q.graph.node for a in node.attribute if a.g.node for n in a.g.node]
    assert ops.count("MatMulInteger") == 2 and "Transpose" not in ops and "MatMul" not in ops
    assert np.abs(run(tmp_path / "int8" / "m.onnx") - x @ w.T).max() < 0.1 * np.abs(x @ w.T).max()


@pytest.mark.slow
def test_fp32_parity_is_exact_and_int8_is_reported(exported):
    _, record, _ = exported
    fp32 = record["fp32"]["parity"]
    assert fp32 == {"n": len(PROBLEMS), "agree": len(PROBLEMS), "rate": 1.0, "divergences": []}
    int8 = record["int8"]["parity"]
    assert int8["n"] == len(PROBLEMS) and 0 <= int8["agree"] <= int8["n"]
    assert int8["rate"] == round(int8["agree"] / int8["n"], 4)
    assert len(int8["divergences"]) == int8["n"] - int8["agree"]
    for d in int8["divergences"]:
        assert d["id"] in {p["id"] for p in PROBLEMS}
        assert 0 <= d["position"] <= min(d["reference_tokens"], d["candidate_tokens"])


@pytest.mark.slow
def test_int8_dir_loads_with_optimum_and_generates(exported):
    from optimum.onnxruntime import ORTModelForSeq2SeqLM

    out, _, _ = exported
    student = core.load_onnx(str(out / "int8"))
    assert isinstance(student.model, ORTModelForSeq2SeqLM) and student.model.decoder.is_merged
    assert student.config["export"]["precision"] == "int8"
    ids = core.generate(student, core.encode(student, "[code] Reverse the string s."), max_new_tokens=12)
    assert 1 <= len(ids) <= 12 and all(isinstance(i, int) for i in ids)


@pytest.mark.slow
def test_existing_out_is_refused_and_left_alone(exported, trained_dir):
    out, _, _ = exported
    before = (out / "export.json").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["export", "-m", trained_dir, "-o", str(out), "--parity", "0"])
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert result.stdout == ""
    assert (out / "export.json").stat().st_mtime_ns == before
    assert leftovers(out.parent) == []


def test_force_never_replaces_a_directory_that_is_not_an_export(tiny_student_dir, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["export", "-m", tiny_student_dir, "-o", str(out), "--force"])
    assert result.exit_code == 1 and "not a pdc export" in result.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def _fake_export_onnx(model_dir, dst, opset=None):
    """Stands in for the real exporter: a directory with one small file, instantly."""
    os.makedirs(dst)
    with open(os.path.join(dst, "encoder_model.onnx"), "wb") as fh:
        fh.write(b"not really onnx")
    return 18


@pytest.mark.parametrize("error", [PdcError("quantization failed"), KeyboardInterrupt()])
def test_failure_leaves_neither_out_nor_temp_dir(tiny_student_dir, tmp_path, monkeypatch, error):
    monkeypatch.setattr(core, "export_onnx", _fake_export_onnx)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(core, "quantize_dir", fail)
    out = tmp_path / "export"
    with pytest.raises(type(error)):
        core.export(tiny_student_dir, str(out), quantize=True, parity_n=0)
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_force_replaces_an_earlier_export_atomically(tiny_student_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(core, "export_onnx", _fake_export_onnx)
    out = tmp_path / "export"
    out.mkdir()
    (out / "export.json").write_text("{}")
    (out / "stale.onnx").write_text("old")
    record = core.export(tiny_student_dir, str(out), quantize=False, parity_n=0, force=True)
    assert not (out / "stale.onnx").exists()
    assert (out / "fp32" / "encoder_model.onnx").exists()
    assert json.loads((out / "export.json").read_text()) == record
    assert record["int8"] is None and record["fp32"]["parity"] is None
    assert leftovers(tmp_path) == []


def test_bad_problem_record_names_line_and_field(tiny_student_dir, tmp_path):
    stdin = json.dumps({"id": "a", "nl": "ok"}) + "\n" + json.dumps({"id": "b", "text": "no nl"}) + "\n"
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", "-m", tiny_student_dir, "-o", str(out), "--problems", "-"],
                                input=stdin)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: stdin:2, field 'nl': missing")
    assert not out.exists() and os.listdir(tmp_path) == []


def test_first_divergence_golden():
    assert core.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert core.first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert core.first_divergence([1, 2], [1, 2, 3]) == 2
    assert core.first_divergence([], [5]) == 0
    assert core.first_divergence([], []) is None


def test_problem_texts_defaults_to_samples_and_reads_records():
    assert core.problem_texts(None, 3) == [(f"sample-{i}", core.SAMPLE_PROBLEMS[i]) for i in range(3)]
    assert core.problem_texts([{"id": "x", "nl": "a"}, {"nl": "b"}], 5) == [("x", "a"), ("1", "b")]
    assert core.problem_texts(["a", "b"], 1) == [("0", "a")]


@pytest.mark.slow
def test_parity_reports_where_two_models_part(trained_dir, tiny_student_dir):
    from pdc.students import load_trained

    trained, untrained = load_trained(trained_dir), load_trained(tiny_student_dir)
    problems = core.problem_texts(PROBLEMS, 2)
    same = core.parity(trained, trained, problems, max_new_tokens=8)
    assert same == {"n": 2, "agree": 2, "rate": 1.0, "divergences": []}
    apart = core.parity(trained, untrained, problems, max_new_tokens=8)
    assert apart["agree"] == 0 and apart["rate"] == 0.0
    assert [d["id"] for d in apart["divergences"]] == ["p0", "p1"]
    assert all(d["position"] == 0 and d["candidate_tokens"] == 8 for d in apart["divergences"])


@pytest.mark.slow
def test_target_arm64_quantizes_per_channel_and_runs_on_the_edge_runtime(trained_dir, tmp_path):
    from pdc.edge import EdgeModel

    out = tmp_path / "arm"
    stdin = "".join(json.dumps(p) + "\n" for p in PROBLEMS[:3])
    result = CliRunner().invoke(app, ["export", "-m", trained_dir, "-o", str(out), "--target", "arm64",
                                      "--problems", "-", "--parity", "3"], input=stdin)
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    q = record["int8"]["quantization"]
    assert q == dict(core.TARGETS["arm64"], folded_transposes=q["folded_transposes"])
    assert record["int8"]["quantization"]["per_channel"] is True and record["fp32"]["parity"]["rate"] == 1.0
    edge = EdgeModel(str(out / "int8"))
    ids = edge.generate(edge.encode("[code] Reverse the string s."), 12)
    assert 1 <= len(ids) <= 12


def test_unknown_target_is_refused(tiny_student_dir, tmp_path):
    result = CliRunner().invoke(app, ["export", "-m", tiny_student_dir, "-o", str(tmp_path / "x"), "--target", "mips"])
    assert result.exit_code == 1 and "unknown --target 'mips'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_fp32_parity_below_the_minimum_fails_and_writes_nothing(tiny_student_dir, tmp_path, monkeypatch):
    """A stand-in parity result (the real exporter agrees everywhere, so cannot show this path)."""
    monkeypatch.setattr(core, "export_onnx", _fake_export_onnx)
    monkeypatch.setattr(core, "load_onnx", lambda path, **kw: None)
    monkeypatch.setattr(core, "reference_outputs", lambda *a, **kw: [])

    def parity(reference, candidate, problems, budget, references):
        return {"n": 100, "agree": 98, "rate": 0.98, "divergences": [
            {"id": "p7", "position": 3, "reference_tokens": 9, "candidate_tokens": 9, "reference": "a",
             "candidate": "b"}, {"id": "p9", "position": 0, "reference_tokens": 1, "candidate_tokens": 2,
                                 "reference": "", "candidate": "x"}]}

    monkeypatch.setattr(core, "parity", parity)
    out = tmp_path / "export"
    with pytest.raises(PdcError, match=r"only 98 of 100 problems \(98.0%, at least 99% required\): problem p7 .* token 3"):
        core.export(tiny_student_dir, str(out), quantize=False, parity_n=2)
    assert os.listdir(tmp_path) == []
    record = core.export(tiny_student_dir, str(out), quantize=False, parity_n=2, min_fp32_parity=0.95)
    assert record["fp32"]["parity"]["rate"] == 0.98 and out.exists()
