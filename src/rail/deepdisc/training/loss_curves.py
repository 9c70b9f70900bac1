"""Loss curves of a training run: a JSON file of every member's per-epoch history and a PNG figure.

The JSON holds, per member, its index, seed, weight, best epoch and one record per epoch (mean training losses
by term, total loss, learning rate, validation NLL). The figure shows the total training loss (and its
redshift term) and the
validation NLL of every member against epoch (raw, and after each epoch's width calibration when training
calibrated the widths), with each member's kept epoch marked.
"""

from __future__ import annotations

import json
import os

from rail.deepdisc.atomic import atomic_path, write_text_atomic

__all__ = ["loss_curves", "write_loss_curves"]

_FIG_SIZE_IN = (10.0, 4.0)
_DPI = 110


def loss_curves(artifact: dict) -> dict:
    """Return the loss-curve record of an artifact (plain data, JSON-serialisable)."""
    return {
        "members": [
            {
                "member": k,
                "seed": m.get("seed"),
                "weight": m["weight"],
                "best_epoch": m.get("best_epoch"),
                "val_log_likelihood": m["val_log_likelihood"],
                "history": m.get("history", []),
            }
            for k, m in enumerate(artifact["members"])
        ]
    }


def write_loss_curves(artifact: dict, json_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Write the loss curves of an artifact as JSON and PNG (both atomically).

    Parameters
    ----------
    artifact : dict
        A trained artifact whose members hold ``history``.
    json_path, png_path : str or Path
        Output files.
    """
    curves = loss_curves(artifact)
    write_text_atomic(json.dumps(curves, indent=1), json_path)
    with atomic_path(png_path, suffix=".png") as tmp:
        _plot(curves, tmp)


def _plot(curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=_FIG_SIZE_IN, constrained_layout=True)
    for member in curves["members"]:
        hist = member["history"]
        epochs = [r["epoch"] for r in hist]
        label = f"member {member['member']} (w={member['weight']:.2f})"
        (line,) = ax_train.plot(epochs, [r.get("loss", float("nan")) for r in hist], marker=".", label=label)
        ax_train.plot(
            epochs,
            [r.get("loss_redshift", float("nan")) for r in hist],
            linestyle="--",
            color=line.get_color(),
        )
        ax_val.plot(epochs, [r["val_nll"] for r in hist], marker=".", color=line.get_color(), label=label)
        key = "val_nll_calibrated" if any("val_nll_calibrated" in r for r in hist) else "val_nll"
        if key != "val_nll":  # the kept epoch was chosen on the NLL after each epoch's width calibration
            ax_val.plot(epochs, [r.get(key, float("nan")) for r in hist], linestyle="--", color=line.get_color())
        kept = [r for r in hist if r["epoch"] == member.get("best_epoch")]  # by number: a continued
        if kept:  # pretraining's history starts where the earlier run's ended
            ax_val.plot([kept[0]["epoch"]], [kept[0].get(key, float("nan"))], marker="*", markersize=12,
                        color=line.get_color())
    ax_train.set(
        xlabel="epoch",
        ylabel="mean training loss per batch",
        title="training loss: all terms (solid), redshift NLL (dashed)",
    )
    ax_val.set(xlabel="epoch", ylabel="validation NLL per object (nats)",
               title="validation NLL (dashed: widths calibrated; * = kept)")
    for ax in (ax_train, ax_val):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize="small")
    fig.savefig(path, dpi=_DPI, format="png")
    plt.close(fig)
