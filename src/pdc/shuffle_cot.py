"""The paper's ablation (Table 4): destroy the pseudocode's logic before distilling.

    shuffle  permute a record's own steps; never the identity when the record
             has two or more distinct steps.
    replace  give a record the pseudocode of another record, never its own.

Both are deterministic under a seed. `shuffle` depends only on the seed and the
record's id. `replace` streams in windows of `window` records: within a window
a random cyclic permutation (Sattolo's algorithm, which has no fixed points)
picks each record's donor, so memory stays bounded. A final window of one
record takes its donor from the previous window. Records without pseudocode
(status "error") pass through unchanged.

Each changed record gets `ablation: {mode, seed, ...}` saying what was done.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Iterable, Iterator

from pdc.errors import RecordError


def _rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def steps_of(record: dict[str, Any], where: str) -> list[str] | None:
    if record.get("status", "ok") != "ok" or record.get("pseudocode") is None:
        return None
    steps = record["pseudocode"]
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise RecordError(where, "pseudocode", "expected a list of strings")
    return steps


def shuffle_steps(steps: list[str], rng: random.Random) -> list[int]:
    """A permutation of range(len(steps)) that changes the step order when it can."""
    order = list(range(len(steps)))
    if len(set(steps)) < 2:
        return order
    while True:
        rng.shuffle(order)
        if [steps[i] for i in order] != steps:
            return order


def shuffle(record: dict[str, Any], where: str, seed: int) -> dict[str, Any]:
    """The record with its own pseudocode steps permuted."""
    steps = steps_of(record, where)
    if steps is None:
        return record
    if not isinstance(record.get("id"), str):
        raise RecordError(where, "id", "missing (shuffle is seeded by the id)")
    order = shuffle_steps(steps, _rng(seed, record["id"]))
    out = dict(record)
    out["pseudocode"] = [steps[i] for i in order]
    out["ablation"] = {"mode": "shuffle", "seed": seed, "permutation": order}
    return out


def sattolo(n: int, rng: random.Random) -> list[int]:
    """A uniformly random cyclic permutation: perm[i] != i for every i (n >= 2)."""
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def replace(lines: Iterable[tuple[dict[str, Any], str]], seed: int, window: int = 1000) -> Iterator[dict[str, Any]]:
    """Each record with another record's pseudocode, in input order."""
    if window < 2:
        raise ValueError("window must be at least 2")
    rng = random.Random(seed)
    previous: list[dict[str, Any]] = []
    buffer: list[tuple[dict[str, Any], list[str] | None]] = []

    def flush() -> Iterator[dict[str, Any]]:
        nonlocal previous, buffer
        donors = [r for r, steps in buffer if steps is not None]
        if len(donors) == 1 and previous:
            perm_donor = {0: previous[rng.randrange(len(previous))]}
        elif len(donors) >= 2:
            perm = sattolo(len(donors), rng)
            perm_donor = {i: donors[perm[i]] for i in range(len(donors))}
        else:
            perm_donor = {}
        k = 0
        for record, steps in buffer:
            if steps is None:
                yield record
                continue
            donor = perm_donor.get(k)
            k += 1
            if donor is None:  # the only record with pseudocode in the whole input
                raise RecordError("input", "pseudocode", "replace needs at least two records with pseudocode")
            out = dict(record)
            out["pseudocode"] = list(donor["pseudocode"])
            out["ablation"] = {"mode": "replace", "seed": seed, "donor": donor.get("id")}
            yield out
        if donors:
            previous = donors
        buffer = []

    for record, where in lines:
        buffer.append((record, steps_of(record, where)))
        if len(buffer) >= window:
            yield from flush()
    yield from flush()
