"""The ablation: shuffle never keeps the order, replace never keeps a record's own steps."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from pdc import shuffle_cot as core
from pdc.cli import app
from pdc.errors import RecordError


def rec(i: int, steps: list[str] | None = None, status: str = "ok") -> dict:
    steps = steps if steps is not None else [f"step {i}.{k}" for k in range(4)]
    return {"id": f"r{i}", "nl": f"problem {i}", "status": status,
            "pseudocode": steps if status == "ok" else None}


def test_shuffle_is_never_the_identity_with_distinct_steps():
    for i in range(200):
        steps = [f"s{k}" for k in range(2 + i % 4)]
        out = core.shuffle(rec(i, steps), "x", seed=i)
        assert out["pseudocode"] != steps
        assert sorted(out["pseudocode"]) == sorted(steps)
        assert [steps[j] for j in out["ablation"]["permutation"]] == out["pseudocode"]
        assert out["ablation"]["mode"] == "shuffle" and out["ablation"]["seed"] == i


def test_shuffle_with_two_steps_swaps_them():
    assert core.shuffle(rec(1, ["a", "b"]), "x", 0)["pseudocode"] == ["b", "a"]


def test_shuffle_keeps_records_it_cannot_change():
    same = core.shuffle(rec(1, ["a", "a", "a"]), "x", 0)
    assert same["pseudocode"] == ["a", "a", "a"]
    assert core.shuffle(rec(2, ["only"]), "x", 0)["pseudocode"] == ["only"]
    failed = rec(3, status="error")
    assert core.shuffle(failed, "x", 0) == failed


def test_shuffle_depends_only_on_seed_and_id():
    a = core.shuffle(rec(5), "x", 7)
    b = core.shuffle(rec(5), "elsewhere", 7)
    assert a == b
    outs = {tuple(core.shuffle(rec(5), "x", s)["pseudocode"]) for s in range(20)}
    assert len(outs) > 1


def test_shuffle_rejects_bad_pseudocode_field():
    with pytest.raises(RecordError, match="field 'pseudocode'"):
        core.shuffle({"id": "a", "pseudocode": "not a list"}, "in:3", 0)


def test_sattolo_has_no_fixed_points():
    rng = random.Random(0)
    for n in range(2, 30):
        perm = core.sattolo(n, rng)
        assert sorted(perm) == list(range(n))
        assert all(perm[i] != i for i in range(n))


@pytest.mark.parametrize("n,window", [(2, 1000), (7, 3), (10, 5), (25, 4), (9, 2)])
def test_replace_never_gives_a_record_its_own_steps(n, window):
    records = [rec(i) for i in range(n)]
    out = list(core.replace(((r, f"in:{i}") for i, r in enumerate(records)), seed=3, window=window))
    assert [o["id"] for o in out] == [r["id"] for r in records]
    by_id = {r["id"]: r for r in records}
    for o in out:
        donor = o["ablation"]["donor"]
        assert donor != o["id"]
        assert o["pseudocode"] == by_id[donor]["pseudocode"]
        assert o["ablation"]["mode"] == "replace"


def test_replace_is_deterministic_and_seed_dependent():
    records = [rec(i) for i in range(30)]
    run = lambda seed: [o["ablation"]["donor"] for o in core.replace(((r, "x") for r in records), seed)]  # noqa: E731
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_replace_passes_failed_records_through_in_place():
    records = [rec(0), rec(1, status="error"), rec(2), rec(3)]
    out = list(core.replace(((r, "x") for r in records), 0))
    assert [o["id"] for o in out] == ["r0", "r1", "r2", "r3"]
    assert out[1] == records[1]


def test_replace_needs_two_records():
    with pytest.raises(RecordError, match="at least two"):
        list(core.replace(iter([(rec(0), "x")]), 0))


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_cli_shuffle_streams_records_with_ablation():
    result = CliRunner().invoke(app, ["shuffle-cot", "--mode", "shuffle", "--seed", "4"],
                                input=lines([rec(i) for i in range(5)]))
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [f"r{i}" for i in range(5)]
    assert all(o["ablation"]["seed"] == 4 for o in out)


def test_cli_replace_emits_error_record_in_place_for_bad_line():
    text = lines([rec(0), rec(1)]) + "{not json\n" + lines([rec(3)])
    result = CliRunner().invoke(app, ["shuffle-cot", "--mode", "replace", "--on-error", "emit"], input=text)
    assert result.exit_code == 3
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["r0", "r1", None, "r3"]
    assert out[2]["status"] == "error" and out[2]["where"] == "stdin:3"


def test_cli_bad_line_stops_with_line_number():
    result = CliRunner().invoke(app, ["shuffle-cot"], input=lines([rec(0)]) + "[1, 2]\n")
    assert result.exit_code == 1
    assert "stdin:2" in result.stderr and "expected a JSON object" in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["id"] == "r0"
