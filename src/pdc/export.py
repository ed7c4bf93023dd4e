"""Export a trained student to ONNX, quantize it to int8, and check it still writes the same code.

    from pdc.export import export
    record = export("runs/demo/model", "runs/demo/export")   # what `pdc export` prints

Layout of an export directory (each variant loads on its own with
`optimum.onnxruntime.ORTModelForSeq2SeqLM.from_pretrained(OUT/<variant>)`,
`pdc bench --model OUT/<variant>` or `pdc.export.load_onnx`):

    OUT/
      export.json                  the record `pdc export` printed (provenance, sizes, parity)
      fp32/
        encoder_model.onnx         encoder
        decoder_model_merged.onnx  decoder, first step and with-past steps in one graph (If node)
        config.json  generation_config.json  tokenizer files
        pdc_config.json            the student's pdc_config plus an "export" provenance block
      int8/                        same file names, weights dynamically quantized to int8
                                   (absent with --no-quantize)

Parity: greedy generation with the PyTorch student and with each ONNX variant on
the same inputs, compared token by token. An input agrees when the two token
sequences are identical; for one that does not, the record gives the first
generated position where they differ. fp32 should agree everywhere; int8 may not.

The whole export (files, quantization, parity) is built in a hidden temporary
sibling of OUT and renamed into place only when every step succeeded, so OUT
is either absent, the previous export, or the complete new one.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator, Sequence

from pdc.errors import PdcError
from pdc.students import PDC_CONFIG, Student, read_pdc_config

TASK = "text2text-generation-with-past"
MANIFEST = "export.json"
VARIANTS = ("fp32", "int8")
MERGED_DECODER = "decoder_model_merged.onnx"
UNMERGED_DECODERS = ("decoder_model.onnx", "decoder_with_past_model.onnx")

# The default quantization: dynamic (activations quantized at run time, no
# calibration data), int8 weights, one scale per tensor, subgraphs included so
# the merged decoder's If branches are quantized too.
QUANTIZATION = {"method": "dynamic", "weight_type": "QInt8", "per_channel": False,
                "reduce_range": False, "subgraphs": True, "target": "x86"}

# Quantization per target CPU (`pdc export --target`). Dynamic quantization always
# quantizes activations to uint8 at run time, so the weight type picks the integer
# kernel: QInt8 weights run onnxruntime's U8S8 kernels, the fast path on both
# targets (AVX2/AVX-512-VNNI on x86-64; NEON dot-product on arm64 such as the
# Raspberry Pi 5's Cortex-A76), where U8U8 (QUInt8 weights) is slower.
#   x86:   one scale per tensor, full 8-bit range: the setting measured by
#          `make bench-edge`. (On x86 CPUs without VNNI, U8S8 can saturate in
#          the 16-bit intermediate sums; if int8 parity is poor there, re-export
#          with --target arm64, whose per-channel scales lose less.)
#   arm64: one scale per output channel: ARM's U8S8 kernels accumulate in 32 bits
#          without saturation, so the full range is safe, and per-channel scales
#          keep more accuracy for the same speed on a Pi.
TARGETS = {
    "x86": dict(QUANTIZATION),
    "arm64": dict(QUANTIZATION, per_channel=True, target="arm64"),
}

# fp32 ONNX must write what PyTorch writes on at least this share of the parity problems,
# else the export fails and nothing is written (int8 agreement is reported, not enforced).
MIN_FP32_PARITY = 0.99

# Used for parity when no problems are given: short, varied, no data needed.
SAMPLE_PROBLEMS = (
    "Return the sum of two integers a and b.",
    "Reverse the string s and return it.",
    "Check whether n is a prime number.",
    "Count how many vowels the word w contains.",
    "Return the largest element of a non-empty list xs.",
    "Merge two sorted lists into one sorted list.",
    "Return the n-th Fibonacci number, with fib(0) = 0.",
    "Remove duplicate items from a list while keeping their first order.",
    "Convert a temperature in Celsius to Fahrenheit.",
    "Return True if the brackets in s are balanced.",
    "Group the words of a list by their first letter into a dict.",
    "Read a CSV line and return its fields as a list of strings.",
)

Log = Callable[[str], None]


def _nolog(message: str) -> None:
    pass


def is_onnx_file(name: str) -> bool:
    """An ONNX graph or its external weights (which quantization rewrites, never copies)."""
    return name.endswith(".onnx") or ".onnx_data" in name or name.endswith(".onnx.data")


def onnx_files(directory: str) -> list[str]:
    """The *.onnx graphs directly inside `directory`, sorted."""
    if not os.path.isdir(directory):
        return []
    return sorted(f for f in os.listdir(directory) if f.endswith(".onnx"))


def variants_in(export_dir: str) -> list[str]:
    """The loadable variant directories of a pdc export root (OUT/int8, OUT/fp32), smallest first."""
    return [os.path.join(export_dir, v) for v in reversed(VARIANTS) if onnx_files(os.path.join(export_dir, v))]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep stdout for data while exporters talk: their prints go to stderr, their
    tracer/deprecation warnings and INFO/WARNING logs are hidden (PDC_DEBUG=1 shows them)."""
    if os.environ.get("PDC_DEBUG") == "1":
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    import logging

    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # onnxruntime.quantization logs on the root logger
        libraries = []  # transformers and optimum keep their own logger trees
        for module in ("transformers.utils.logging", "optimum.utils.logging"):
            try:
                lib = importlib.import_module(module)
            except ImportError:  # pragma: no cover
                continue
            libraries.append((lib, lib.get_verbosity()))
            lib.set_verbosity_error()
        try:
            yield
        finally:
            root.setLevel(level)
            for lib, verbosity in libraries:
                lib.set_verbosity(verbosity)


# --- loading and generating -------------------------------------------------------------


from pdc.edge import session_options  # noqa: E402  (one definition, shared with the edge runtime)


def load_onnx(model_dir: str, threads: int | None = None, spin: bool = True) -> Student:
    """An ONNX export directory as a Student (ORTModelForSeq2SeqLM on CPU, tokenizer, pdc_config)."""
    if not onnx_files(model_dir):
        variants = variants_in(model_dir)
        hint = f" (it is a pdc export: name a variant, {' or '.join(variants)})" if variants else ""
        raise PdcError(f"no *.onnx files in {model_dir}{hint}, export one with `pdc export --model DIR --out {model_dir}`")
    with quiet():
        from optimum.onnxruntime import ORTModelForSeq2SeqLM
        from transformers import AutoTokenizer

        try:
            model = ORTModelForSeq2SeqLM.from_pretrained(model_dir, session_options=session_options(threads, spin),
                                                         provider="CPUExecutionProvider")
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
        except (OSError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PdcError(f"cannot load ONNX model from {model_dir}: {first}") from None
    return Student(model, tokenizer, model_dir, read_pdc_config(model_dir))


def max_new_tokens_for(student: Student, max_new_tokens: int | None = None) -> int:
    """The generation budget: explicit, else the student's max_target_length, else 64."""
    return int(max_new_tokens or student.config.get("max_target_length") or 64)


def encode(student: Student, text: str) -> dict[str, Any]:
    """Tokenize one input the way training did: truncated to max_source_length, ids and mask only."""
    max_len = int(student.config.get("max_source_length") or 512)
    return student.tokenizer(text, truncation=True, max_length=max_len, return_tensors="pt",
                             return_token_type_ids=False)  # input_ids, attention_mask: (1, S)


def generate(student: Student, enc: dict[str, Any], max_new_tokens: int, num_beams: int = 1) -> list[int]:
    """Deterministic generation for one encoded input; the new token ids (decoder start dropped)."""
    import torch

    with torch.inference_mode():
        out = student.model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=num_beams,
                                     do_sample=False, early_stopping=num_beams > 1)  # (1, 1 + T)
    return out[0, 1:].tolist()


# --- parity -------------------------------------------------------------------------------


def problem_texts(problems: Sequence[str | dict[str, Any]] | None, n: int) -> list[tuple[str, str]]:
    """Up to n (id, nl) pairs: from records with `nl` (and maybe `id`), strings, or the samples."""
    chosen: list[tuple[str, str]] = []
    source = SAMPLE_PROBLEMS if problems is None else problems
    for i, p in enumerate(source):
        if len(chosen) >= n:
            break
        if isinstance(p, str):
            chosen.append((f"sample-{i}" if problems is None else str(i), p))
        else:
            from pdc.jsonl import require

            chosen.append((str(p.get("id", i)), require(p, "nl", f"problem {i}")))
    return chosen


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first index where two token sequences differ (a prefix differs at its end); None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def reference_outputs(reference: Student, problems: Sequence[tuple[str, str]],
                      max_new_tokens: int) -> list[tuple[dict[str, Any], list[int]]]:
    """Encode each problem as a code-task input and generate greedily with the reference model."""
    from pdc.tasks import code_input

    outputs = []
    for _, nl in problems:
        enc = encode(reference, code_input(nl, reference.markers))
        outputs.append((enc, generate(reference, enc, max_new_tokens)))
    return outputs


def parity(reference: Student, candidate: Student, problems: Sequence[tuple[str, str]],
           max_new_tokens: int, references: list[tuple[dict[str, Any], list[int]]] | None = None) -> dict[str, Any]:
    """Greedy generation with both models on each (id, nl) problem; exact token agreement.

    Returns {"n", "agree", "rate", "divergences": [{"id", "position", "reference_tokens",
    "candidate_tokens", "reference", "candidate"}]} where position is the first generated
    token that differs and reference/candidate are the decoded outputs (first 160 chars).
    `references` (from reference_outputs) saves regenerating with the reference model.
    """
    if references is None:
        references = reference_outputs(reference, problems, max_new_tokens)
    agree, divergences = 0, []
    decode = reference.tokenizer.decode
    for (pid, _), (enc, ref) in zip(problems, references):
        cand = generate(candidate, enc, max_new_tokens)
        pos = first_divergence(ref, cand)
        if pos is None:
            agree += 1
            continue
        divergences.append({
            "id": pid, "position": pos, "reference_tokens": len(ref), "candidate_tokens": len(cand),
            "reference": decode(ref, skip_special_tokens=True)[:160],
            "candidate": decode(cand, skip_special_tokens=True)[:160],
        })
    n = len(problems)
    return {"n": n, "agree": agree, "rate": round(agree / n, 4) if n else None, "divergences": divergences}


def check_fp32_parity(checked: dict[str, Any], minimum: float) -> None:
    """Refuse an fp32 export that disagrees with PyTorch on more than (1 - minimum) of the problems."""
    if not checked["n"] or checked["rate"] >= minimum:
        return
    first = checked["divergences"][0]
    raise PdcError(f"fp32 ONNX agrees with PyTorch on only {checked['agree']} of {checked['n']} problems "
                   f"({checked['rate']:.1%}, at least {minimum:.0%} required): problem {first['id']} first differs "
                   f"at generated token {first['position']}; nothing written. Check --opset, or pass "
                   f"--min-fp32-parity 0 to keep the export anyway")


# --- export steps -------------------------------------------------------------------------


def export_onnx(model_dir: str, dst: str, opset: int | None = None) -> int:
    """ONNX-export a seq2seq directory into `dst` (encoder + merged decoder); returns the opset used."""
    import onnx
    from optimum.exporters.onnx import main_export

    try:
        # do_validation=False: parity() below checks what matters (the generated tokens).
        main_export(model_dir, dst, task=TASK, opset=opset, device="cpu", do_validation=False,
                    local_files_only=True)
    except Exception as e:  # the exporter fails in many ways (tracing, unsupported ops, opset); one line each
        if os.environ.get("PDC_DEBUG") == "1":
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PdcError(f"ONNX export of {model_dir} failed ({type(e).__name__}: {first}), "
                       "check --opset and the model type; PDC_DEBUG=1 shows the traceback") from None
    names = onnx_files(dst)
    if MERGED_DECODER in names:  # the merged decoder replaces the two it was built from
        for name in UNMERGED_DECODERS:
            if name in names:
                os.remove(os.path.join(dst, name))
    names = onnx_files(dst)
    if not names:
        raise PdcError(f"ONNX export of {model_dir} wrote no .onnx files")
    graph = onnx.load(os.path.join(dst, names[0]), load_external_data=False)
    return max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=opset or 0)


def quantize_dir(src: str, dst: str, *, per_channel: bool = False, reduce_range: bool = False,
                 target: str = "x86") -> dict[str, Any]:
    """Dynamic int8 quantization of every .onnx graph in `src` into `dst` (same file names).

    Other files (config, tokenizer, pdc_config.json) are copied, so `dst` loads on its
    own. Returns the settings used (recorded in the export provenance).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not is_onnx_file(name) and os.path.isfile(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    external = any(is_onnx_file(n) and not n.endswith(".onnx") for n in os.listdir(src))
    folded: dict[str, list[str]] = {}
    for name in onnx_files(src):
        graph_path = os.path.join(src, name)
        prepared = os.path.join(dst, ".prepared-" + name)
        folded[name] = fold_weight_transposes(graph_path, prepared)
        if folded[name]:
            graph_path = prepared
        try:
            quantize_dynamic(graph_path, os.path.join(dst, name),
                             weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
                             use_external_data_format=external,
                             extra_options={"EnableSubgraph": True})  # the merged decoder's If branches
        finally:
            for leftover in os.listdir(dst):
                if leftover.startswith(".prepared-"):
                    os.remove(os.path.join(dst, leftover))
    return dict(QUANTIZATION, per_channel=per_channel, reduce_range=reduce_range, target=target,
                folded_transposes={k: v for k, v in folded.items() if v})


def fold_weight_transposes(src: str, dst: str) -> list[str]:
    """Write to `dst` the graph `src` with every Transpose of a weight replaced by the transposed weight.

    A tied LM head (T5, CodeT5) is `MatMul(x, Transpose(shared.weight))`. Dynamic
    quantization only rewrites a MatMul whose weight is an initializer, so left
    alone the head stays fp32 and, worse, the quantized embedding is dequantized
    in full (32,100 x 768) at every decoding step: measured 33 ms per step
    instead of 13 on a CodeT5-base shape. Folding stores the head's weight once,
    transposed, as an initializer both If branches share; the quantizer then
    turns the head into an int8 matmul. Returns the folded weights' names
    (nothing is written when there are none).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(src)
    weights = {init.name: init for init in model.graph.initializer}
    folded: dict[str, Any] = {}

    def visit(graph) -> None:
        local = {init.name for init in graph.initializer}
        keep = []
        for node in graph.node:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if (node.op_type == "Transpose" and node.input[0] in weights and node.input[0] not in local
                    and len(weights[node.input[0]].dims) == 2 and perm in (None, [1, 0])):
                folded.setdefault(node.output[0], node.input[0])
                continue
            keep.append(node)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)
        if len(keep) != len(graph.node):
            del graph.node[:]
            graph.node.extend(keep)

    visit(model.graph)
    if not folded:
        return []
    for out_name, weight_name in folded.items():
        array = numpy_helper.to_array(weights[weight_name]).T.copy()
        model.graph.initializer.append(numpy_helper.from_array(array, out_name))
    size = sum(init.ByteSize() for init in model.graph.initializer)
    onnx.save(model, dst, save_as_external_data=size > 1_500_000_000,  # protobuf's 2 GB limit
              location=os.path.basename(dst) + ".data")
    return sorted(folded)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("optimum", "optimum-onnx", "onnx", "onnxruntime", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_provenance(variant_dir: str, source_config: dict[str, Any], block: dict[str, Any]) -> None:
    """pdc_config.json of an exported variant: the student's config plus an "export" block."""
    config = dict(source_config)
    config["export"] = block
    with open(os.path.join(variant_dir, PDC_CONFIG), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
        fh.write("\n")


def files_of(root: str, shown_as: str) -> list[dict[str, Any]]:
    """Every file under `root` (manifest excluded) as {"path" (under shown_as), "bytes"}, sorted."""
    rows = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel != MANIFEST:
                rows.append({"path": os.path.join(shown_as, rel), "bytes": os.path.getsize(full)})
    return sorted(rows, key=lambda r: r["path"])


def _replaceable(out_dir: str) -> bool:
    """--force replaces only an earlier pdc export or an empty directory, never arbitrary data."""
    return os.path.isdir(out_dir) and (not os.listdir(out_dir) or os.path.isfile(os.path.join(out_dir, MANIFEST)))


def check_out(out_dir: str, force: bool) -> None:
    """Refuse an existing OUT unless --force and OUT is an earlier export (or empty)."""
    if not os.path.lexists(out_dir):
        return
    if not force:
        raise PdcError(f"{out_dir} already exists, choose another --out or pass --force to replace it")
    if not _replaceable(out_dir):
        raise PdcError(f"{out_dir} exists and is not a pdc export (no {MANIFEST}), "
                       "refusing to replace it even with --force; remove it yourself or choose another --out")


def _move_into_place(tmp: str, out_dir: str, force: bool) -> None:
    if not os.path.lexists(out_dir):
        os.rename(tmp, out_dir)
        return
    check_out(out_dir, force)  # it may have appeared while we worked
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
    os.rmdir(old)
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(model_dir: str, out_dir: str, *, quantize: bool = True, parity_n: int = 8,
           problems: Sequence[str | dict[str, Any]] | None = None, force: bool = False,
           opset: int | None = None, max_new_tokens: int | None = None,
           target: str = "x86", min_fp32_parity: float = MIN_FP32_PARITY, log: Log = _nolog) -> dict[str, Any]:
    """Export `model_dir` to OUT/fp32 (and OUT/int8), check parity on `parity_n` problems, rename into place.

    `problems`: records with `nl` (or strings); None uses SAMPLE_PROBLEMS. Returns the
    record that is also written to OUT/export.json. Raises PdcError if OUT exists
    (unless `force` and it is an earlier export); on any failure OUT is untouched and
    the temporary directory is removed.
    """
    from pdc.students import load_trained

    if target not in TARGETS:
        raise PdcError(f"unknown --target '{target}', choose {' or '.join(TARGETS)}")
    preset = TARGETS[target]
    start = time.perf_counter()
    out_dir = out_dir.rstrip("/\\") or out_dir
    check_out(out_dir, force)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    student = load_trained(model_dir)  # fail fast on a bad model directory, before any writing
    chosen = problem_texts(problems, parity_n)
    budget = max_new_tokens_for(student, max_new_tokens)

    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT should look like any directory
    timings: dict[str, float] = {}
    try:
        fp32 = os.path.join(tmp, "fp32")
        t = time.perf_counter()
        log(f"exporting {model_dir} to ONNX ({TASK})")
        with quiet():
            used_opset = export_onnx(model_dir, fp32, opset)
        timings["export_s"] = round(time.perf_counter() - t, 3)
        block = {"source": os.path.abspath(model_dir), "format": "onnx", "task": TASK, "opset": used_opset,
                 "versions": _versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_provenance(fp32, student.config, dict(block, precision="fp32", quantization=None))

        variants = {"fp32": fp32}
        settings = None
        if quantize:
            t = time.perf_counter()
            log(f"quantizing to int8 (dynamic, QInt8 weights, target {target})")
            with quiet():
                settings = quantize_dir(fp32, os.path.join(tmp, "int8"), per_channel=preset["per_channel"],
                                        reduce_range=preset["reduce_range"], target=target)
            write_provenance(os.path.join(tmp, "int8"), student.config,
                             dict(block, precision="int8", quantization=settings))
            variants["int8"] = os.path.join(tmp, "int8")
            timings["quantize_s"] = round(time.perf_counter() - t, 3)

        record: dict[str, Any] = {"model": model_dir, "out": out_dir}
        results: dict[str, Any] = {}
        references = None
        if chosen:
            t = time.perf_counter()
            log(f"parity check on {len(chosen)} inputs (greedy, {budget} new tokens): generating with PyTorch")
            references = reference_outputs(student, chosen, budget)
            timings["parity_torch_s"] = round(time.perf_counter() - t, 3)
        for name, path in variants.items():
            checked = None
            if chosen:
                t = time.perf_counter()
                log(f"parity check: onnx {name}")
                checked = parity(student, load_onnx(path, spin=False), chosen, budget, references)
                timings[f"parity_{name}_s"] = round(time.perf_counter() - t, 3)
                log(f"  {name}: {checked['agree']}/{checked['n']} identical")
                if name == "fp32":
                    check_fp32_parity(checked, min_fp32_parity)
            shown = os.path.join(out_dir, name)
            results[name] = {"dir": shown, "bytes": sum(f["bytes"] for f in files_of(path, shown)),
                             "onnx_bytes": sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
                                               if is_onnx_file(f)),
                             "parity": checked}
        if settings is not None:
            results["int8"]["quantization"] = settings
        files = files_of(tmp, out_dir)
        record.update({"files": files, "total_bytes": sum(f["bytes"] for f in files),
                       "opset": used_opset, "fp32": results["fp32"], "int8": results.get("int8"),
                       "max_new_tokens": budget, "timings": timings,
                       "seconds": round(time.perf_counter() - start, 3)})
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2)
            fh.write("\n")
        _move_into_place(tmp, out_dir, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
