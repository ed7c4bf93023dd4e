"""Training checkpoints that a killed run can trust.

A checkpoint is a directory `<checkpoint-dir>/ckpt-<step>`:

    model/           the student now (Hugging Face weights, tokenizer, pdc_config.json)
    best.pt          the best weights so far, when they are not the current ones
    optimizer.pt     optimizer (and fp16 GradScaler) state
    rng.pt           torch RNG states of every process
    state.json       epoch, position in the epoch, step, history, best, Python and
                     NumPy RNG states, the training config and data fingerprint
    MANIFEST.json    size and sha256 of every file above, written last

It is written under a temporary name (`.tmp-ckpt-...`), every file fsynced,
and renamed into place, so a run killed mid-save leaves only a temporary
directory that resume ignores (and removes). Resume takes the newest
`ckpt-*` whose manifest matches its files and skips any that do not.
Tensors are read back with `torch.load(weights_only=True)`: a checkpoint is
data, never code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from typing import Any

MANIFEST = "MANIFEST.json"
PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-ckpt-"
# Test hook: "STEP:SECONDS" pauses the save of step STEP before its manifest is
# written (touching PAUSED in the temporary directory), so a test can kill -9 it.
PAUSE_ENV = "PDC_TEST_PAUSE_IN_SAVE"


def name_for(step: int) -> str:
    return f"{PREFIX}{step:09d}"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files_under(root: str) -> list[str]:
    out = []
    for here, _, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(here, f), root))
    return sorted(out)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(ckpt_dir: str, step: int, student, tensors: dict[str, Any], state: dict[str, Any],
          keep: int) -> str:
    """Write checkpoint `step` atomically; keep the newest `keep`; return its path."""
    import torch

    from pdc.students import save_student

    os.makedirs(ckpt_dir, exist_ok=True)
    final = os.path.join(ckpt_dir, name_for(step))
    tmp = os.path.join(ckpt_dir, f"{TMP_PREFIX}{step:09d}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_student(student, os.path.join(tmp, "model"), student.config)
    for name, obj in tensors.items():
        torch.save(obj, os.path.join(tmp, f"{name}.pt"))
    with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    _pause_hook(tmp, step)
    files = _files_under(tmp)
    manifest = {"step": step, "files": {f: {"size": os.path.getsize(os.path.join(tmp, f)),
                                             "sha256": sha256_file(os.path.join(tmp, f))} for f in files}}
    with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    for f in files + [MANIFEST]:
        _fsync(os.path.join(tmp, f))
    if os.path.exists(final):  # a rerun of the same step (resume after a crash): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(ckpt_dir)
    for old in sorted(complete(ckpt_dir))[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(ckpt_dir, old), ignore_errors=True)
    return final


def _pause_hook(tmp: str, step: int) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    at, seconds = spec.split(":")
    if int(at) == step:
        open(os.path.join(tmp, "PAUSED"), "w").close()
        time.sleep(float(seconds))


def complete(ckpt_dir: str) -> list[str]:
    """Names of the renamed (not temporary) checkpoints, oldest first."""
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(n for n in os.listdir(ckpt_dir) if n.startswith(PREFIX))


def remove_torn(ckpt_dir: str) -> list[str]:
    """Delete temporary directories left by killed saves; return their names."""
    if not os.path.isdir(ckpt_dir):
        return []
    torn = [n for n in os.listdir(ckpt_dir) if n.startswith(TMP_PREFIX)]
    for n in torn:
        shutil.rmtree(os.path.join(ckpt_dir, n), ignore_errors=True)
    return torn


def verify(path: str) -> str | None:
    """None if every file of the manifest is there with its size and sha256, else the problem."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as fh:
            manifest = json.load(fh)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"no readable {MANIFEST} ({type(e).__name__})"
    for name in ("state.json", "optimizer.pt", "rng.pt"):
        if name not in files:
            return f"{MANIFEST} does not list {name}"
    for name, meta in files.items():
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            return f"{name} is missing"
        if os.path.getsize(full) != meta.get("size"):
            return f"{name} has {os.path.getsize(full)} bytes, the manifest says {meta.get('size')}"
        if sha256_file(full) != meta.get("sha256"):
            return f"{name} does not match its sha256"
    return None


def latest(ckpt_dir: str) -> tuple[str | None, list[dict[str, str]]]:
    """The newest checkpoint that verifies, and the ones skipped on the way (with why)."""
    rejected = []
    for name in reversed(complete(ckpt_dir)):
        path = os.path.join(ckpt_dir, name)
        problem = verify(path)
        if problem is None:
            return path, rejected
        rejected.append({"path": path, "reason": problem})
    return None, rejected


def load(path: str, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(state.json, {name: tensors}) of a verified checkpoint."""
    import torch

    with open(os.path.join(path, "state.json"), encoding="utf-8") as fh:
        state = json.load(fh)
    tensors = {}
    for f in os.listdir(path):
        if f.endswith(".pt"):
            tensors[f[:-3]] = torch.load(os.path.join(path, f), map_location="cpu", weights_only=True)
    return state, tensors


# ------------------------------------------------------------- RNG states

def rng_state() -> tuple[dict[str, Any], dict[str, Any]]:
    """This process's RNG states: (JSON-able Python and NumPy part, tensor part)."""
    import numpy as np
    import torch

    py = random.getstate()
    npy = np.random.get_state()
    plain = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return plain, tensors


def set_rng_state(plain: dict[str, Any], tensors: dict[str, Any]) -> None:
    import numpy as np
    import torch

    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = plain["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
