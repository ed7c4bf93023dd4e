"""pdc plot-loss: train's JSONL events -> loss-curve PNG (the paper's Figure 3)."""

from __future__ import annotations

import json
import struct

import pytest
from typer.testing import CliRunner

from pdc import plot_loss as core
from pdc.cli import app
from pdc.errors import PdcError
from pdc.jsonl import Line

pytest.importorskip("matplotlib")


def events(valid=(7.1, 6.2, 6.4, 6.5), train=(7.5, 6.0, 5.1, 4.4), early_stop=True) -> list[dict]:
    """Events shaped as `pdc train` prints them (src/pdc/train.py)."""
    out = [{"event": "start", "student": "scratch:tiny", "device": "cpu", "parameters": 230400,
            "train_records": 32, "valid_records": 8, "skipped_records": 0, "steps_per_epoch": 2}]
    best, best_epoch = None, 0
    for epoch, (t, v) in enumerate(zip(train, valid), start=1):
        improved = best is None or v < best
        best, best_epoch = (v, epoch) if improved else (best, best_epoch)
        out.append({"event": "epoch", "epoch": epoch, "step": 2 * epoch, "train_loss": t,
                    "train_loss_code": t + 0.1, "train_loss_pseudocode": t - 0.1, "valid_loss": v,
                    "valid_loss_code": v + 0.2, "valid_loss_pseudocode": v - 0.2, "best": improved, "seconds": 1.0})
    if early_stop:
        out.append({"event": "early_stop", "epoch": len(train), "best_epoch": best_epoch})
    out.append({"event": "done", "out": "m", "best_epoch": best_epoch, "best_valid_loss": best, "epochs_run": len(train),
                "steps": 2 * len(train), "seconds": 4.0})
    return out


def lines(records: list[dict], name="log") -> list[Line]:
    return [Line(f"{name}:{i}", r) for i, r in enumerate(records, start=1)]


def test_series_equal_the_events():
    series = core.loss_series(lines(events()), "distilled")
    assert series["epochs"] == [1, 2, 3, 4]
    assert series["train_loss"] == [7.5, 6.0, 5.1, 4.4]
    assert series["valid_loss"] == [7.1, 6.2, 6.4, 6.5]
    assert series["valid_loss_code"] == [7.3, 6.4, 6.6000000000000005, 6.7]
    assert series["best_epoch"] == 2 and series["early_stop"] == 4


def test_series_without_valid_split_and_bad_events():
    no_valid = [{"event": "epoch", "epoch": 1, "train_loss": 3.0, "best": True}]
    series = core.loss_series(lines(no_valid), "r")
    assert series["valid_loss"] == [None] and series["best_epoch"] == 1
    with pytest.raises(Exception, match="log:1, field 'train_loss': missing"):
        core.loss_series(lines([{"event": "epoch", "epoch": 1}]), "r")
    with pytest.raises(Exception, match="log:2, field 'epoch'"):
        core.loss_series(lines([no_valid[0], no_valid[0]]), "r")
    with pytest.raises(Exception, match="log:1, field 'valid_loss': expected a number"):
        core.loss_series(lines([{"event": "epoch", "epoch": 1, "train_loss": 1, "valid_loss": "x"}]), "r")
    with pytest.raises(PdcError, match="r: no epoch events"):
        core.loss_series(lines([{"event": "start"}]), "r")


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def test_png_written_with_the_points_of_every_run(tmp_path):
    runs = [core.loss_series(lines(events()), "distilled"),
            core.loss_series(lines(events(valid=(8.0, 7.0), train=(8.5, 7.5), early_stop=False)), "baseline")]
    out = tmp_path / "fig" / "loss.png"
    drawn = core.plot_loss(runs, str(out))
    assert png_size(out) == (960, 600)
    assert 10_000 < out.stat().st_size < 1_000_000 and drawn["bytes"] == out.stat().st_size
    assert drawn["runs"][0]["points"]["train"] == [(1, 7.5), (2, 6.0), (3, 5.1), (4, 4.4)]
    assert drawn["runs"][1]["points"]["valid"] == [(1, 8.0), (2, 7.0)]
    assert [r["best_epoch"] for r in drawn["runs"]] == [2, 2]
    assert [p.name for p in out.parent.iterdir()] == ["loss.png"]  # no temporary left


def test_cli_labels_from_paths_and_part(tmp_path):
    cell = tmp_path / "tiny@ast@distilled"
    cell.mkdir()
    (cell / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events()))
    other = tmp_path / "train-baseline.jsonl"
    other.write_text("".join(json.dumps(e) + "\n" for e in events(early_stop=False)))
    out = tmp_path / "loss.png"
    result = CliRunner().invoke(app, ["plot-loss", str(cell / "train.jsonl"), str(other), "--out", str(out),
                                      "--part", "pseudocode"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [r["run"] for r in record["runs"]] == ["tiny@ast@distilled", "baseline"]
    assert record["runs"][0]["points"]["valid"][0] == [1, 6.8999999999999995]
    png_size(out)
    result = CliRunner().invoke(app, ["plot-loss", str(other), "--out", str(out), "--label", "a", "--label", "b"])
    assert result.exit_code == 1 and "2 --label for 1 logs" in result.stderr
    result = CliRunner().invoke(app, ["plot-loss", str(other), "--out", str(out), "--part", "x"])
    assert result.exit_code == 1 and "unknown loss part 'x'" in result.stderr
