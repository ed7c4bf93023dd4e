"""Loss curves from `pdc train`'s JSONL events: the paper's Figure 3.

`loss_series` turns one run's events (`start`, `epoch`, `early_stop`, `done`)
into per-epoch series; `plot_loss` draws one or more runs into a PNG with
matplotlib's Agg backend (no display needed): training loss solid, validation
loss dashed, one colour per run, the best epoch (lowest validation loss, the
weights `train` kept) marked with a dot.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

from pdc.errors import PdcError, RecordError

SERIES = ("train_loss", "valid_loss", "train_loss_code", "valid_loss_code",
          "train_loss_pseudocode", "valid_loss_pseudocode")
PARTS = {"total": ("train_loss", "valid_loss"),
         "code": ("train_loss_code", "valid_loss_code"),
         "pseudocode": ("train_loss_pseudocode", "valid_loss_pseudocode")}


def run_label(path: str) -> str:
    """A run's name from its log path: the file stem, or the folder for `.../NAME/train.jsonl`."""
    stem = os.path.basename(path)
    for ext in (".gz", ".jsonl", ".json"):
        stem = stem[: -len(ext)] if stem.endswith(ext) else stem
    if stem in ("train", "log", "events") and os.path.dirname(os.path.abspath(path)):
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    return stem.removeprefix("train-") or stem


def loss_series(lines: Iterable, run: str) -> dict[str, Any]:
    """Per-epoch losses of one run, exactly as its `epoch` events give them.

    Returns {run, epochs: [1, 2, ...], train_loss: [...], valid_loss: [...],
    the per-task series, best_epoch, early_stop (epoch or None)}; a loss an
    event lacks (no valid split; a baseline has no pseudocode loss) is None.
    """
    out: dict[str, Any] = {"run": run, "epochs": [], **{k: [] for k in SERIES},
                           "best_epoch": None, "early_stop": None}
    best_valid = math.inf
    for line in lines:
        if line.error is not None:
            raise line.error
        event, where = line.record, line.where
        kind = event.get("event")
        if kind == "epoch":
            epoch = event.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                raise RecordError(where, "epoch", "expected a whole number")
            if out["epochs"] and epoch <= out["epochs"][-1]:
                raise RecordError(where, "epoch", f"epoch {epoch} after epoch {out['epochs'][-1]}: one run per file")
            for key in SERIES:
                value = event.get(key)
                if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                    raise RecordError(where, key, "expected a number")
            if event.get("train_loss") is None:
                raise RecordError(where, "train_loss", "missing")
            out["epochs"].append(epoch)
            for key in SERIES:
                out[key].append(event.get(key))
            valid = event.get("valid_loss")
            if event.get("best") is True or (valid is not None and valid < best_valid and "best" not in event):
                out["best_epoch"] = epoch
            if valid is not None:
                best_valid = min(best_valid, valid)
        elif kind == "early_stop":
            out["early_stop"] = event.get("epoch")
        elif kind == "done" and isinstance(event.get("best_epoch"), int):
            out["best_epoch"] = event["best_epoch"]
    if not out["epochs"]:
        raise PdcError(f"{run}: no epoch events, pass the JSONL that `pdc train` prints")
    return out


def plot_loss(runs: list[dict[str, Any]], out: str, *, part: str = "total", title: str | None = None,
              log_scale: bool = False, dpi: int = 150) -> dict[str, Any]:
    """Draw the runs' `part` losses into the PNG `out` (written atomically); return what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if part not in PARTS:
        raise PdcError(f"unknown loss part '{part}', choose {', '.join(PARTS)}")
    train_key, valid_key = PARTS[part]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = []
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        points = {}
        for key, style, label in ((train_key, "-", "train"), (valid_key, "--", "valid")):
            xs = [e for e, v in zip(run["epochs"], run[key]) if v is not None]
            ys = [v for v in run[key] if v is not None]
            if xs:
                ax.plot(xs, ys, style, color=colour, marker="o" if len(xs) == 1 else None,
                        label=f"{run['run']} ({label})")
            points[label] = list(zip(xs, ys))
        best = run.get("best_epoch")
        if best in run["epochs"] and run[valid_key][run["epochs"].index(best)] is not None:
            ax.plot([best], [run[valid_key][run["epochs"].index(best)]], "o", color=colour, markersize=6)
        drawn.append({"run": run["run"], "epochs": len(run["epochs"]), "best_epoch": best,
                      "early_stop": run.get("early_stop"), "points": points})
    if not any(p for d in drawn for p in d["points"].values()):
        plt.close(fig)
        raise PdcError(f"no {part} losses in the logs (a baseline trained with --alpha 0 has no pseudocode loss)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if part == "total" else f"{part} loss")
    if log_scale:
        ax.set_yscale("log")
    ax.set_title(title or "Training and validation loss (solid: train, dashed: valid; dot: best epoch)",
                 fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(out)}")
    try:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": f"pdc plot-loss, matplotlib {matplotlib.__version__}"})
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"out": out, "bytes": os.path.getsize(out), "part": part, "runs": drawn,
            "matplotlib": matplotlib.__version__}
