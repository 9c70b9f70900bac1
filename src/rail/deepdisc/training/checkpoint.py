"""Per-member training checkpoints: written atomically after every epoch, read back weights-only.

A checkpoint is a dict of tensors and plain data (``torch.load(weights_only=True)`` reads it): the model and
optimiser states, the best weights so far, the early-stopping counters, the history, and a fingerprint of the
options and data, so that resuming with other options or data is refused instead of silently mixing runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ModelError

__all__ = ["CHECKPOINT_KIND", "LATER_OPTIONS", "LATER_ENTRIES", "MemberState", "save_checkpoint", "read_checkpoint"]

CHECKPOINT_KIND = "deepdisc-member-checkpoint"
#: Options added to the fingerprints' option dicts after checkpoints were first written, with the value a
#: checkpoint without them was written with (their default): such a checkpoint still resumes a run that leaves
#: them at it (an upgrade of the package in the middle of a run does not void its checkpoints).
LATER_OPTIONS = {"finetune": "all", "head_views": 0, "head_distill": 0.0}
#: Fingerprint entries added after checkpoints were first written: a checkpoint without one still resumes (it
#: cannot tell; ``init_weights``, the digest of the initial model's weights, came with 0.4).
LATER_ENTRIES = ("init_weights",)


class MemberState:
    """Mutable training state of one member: what a checkpoint holds.

    Attributes
    ----------
    model, optimizer
        The member's model and optimiser (their ``state_dict`` are saved).
    epoch : int
        Epochs completed.
    best_state : dict or None
        Weights (CPU tensors) at the best validation loss so far.
    best_epoch : int
        Epoch of ``best_state`` (-1 before any).
    best_loss : float
        Lowest validation loss so far (`rail.deepdisc.training.validation.validation_objective`).
    best_nll : float
        Validation redshift NLL of the kept epoch ``best_epoch``.
    since_best : int
        Epochs since the best one (early-stopping counter).
    history : list of dict
        One record per completed epoch.
    done : bool
        Training of this member is finished.
    scope : str
        The name of ``model`` in the whole network when it is one part of it (``"redshift_head"``: the head
        fine-tuned alone, the rest being the initial model's); "" (default) for the whole network. A part's
        checkpoints record it (``"scope"``) and hold that part alone; a checkpoint without it holds the whole
        network, and resuming a part from one takes that part's entries.
    """

    def __init__(self, model, optimizer, scope: str = ""):
        self.model, self.optimizer, self.scope = model, optimizer, scope
        self.epoch = 0  # epochs completed
        self.best_state: dict | None = None
        self.best_epoch = -1
        self.best_loss = math.inf
        self.best_nll = math.inf
        self.since_best = 0
        self.history: list[dict] = []
        self.done = False

    def to_checkpoint(self, member: int, seed: int, fingerprint: dict) -> dict:
        """Return the checkpoint dict of this state (tensors and plain data)."""
        return {
            "kind": CHECKPOINT_KIND,
            "member": member,
            "seed": seed,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
            "best_nll": self.best_nll,
            "since_best": self.since_best,
            "history": self.history,
            "done": self.done,
            **({"scope": self.scope} if self.scope else {}),
        }

    def resume_from(self, checkpoint: Path | None, *, fingerprint: dict, member: int, seed: int) -> bool:
        """Restore model, optimiser and state from a member checkpoint of this run, if it exists.

        Returns
        -------
        bool
            Whether a checkpoint was read (`read_checkpoint` refuses one of another run, member or seed).
        """
        if checkpoint is None or not checkpoint.exists():
            return False
        ckpt = read_checkpoint(checkpoint, kind=CHECKPOINT_KIND, fingerprint=fingerprint,
                               description="DeepDISC member checkpoint", expected={"member": member, "seed": seed},
                               optimizer=self.optimizer)
        if ckpt.get("scope", "") != self.scope:  # the whole network's checkpoint: this part's entries
            ckpt = {**ckpt, **{key: self._part(ckpt[key]) for key in ("model", "best_state") if ckpt[key] is not None}}
        self.model.load_state_dict(ckpt["model"])
        self.load_checkpoint(ckpt)
        return True

    def _part(self, state_dict: dict) -> dict:
        """The entries of `scope` in a whole network's state dict, named as in the part's own."""
        prefix = f"{self.scope}."
        return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}

    def load_checkpoint(self, ckpt: dict) -> None:
        """Restore this state (but the model and optimiser, see `read_checkpoint`) from a checkpoint dict."""
        for key in ("epoch", "best_state", "best_epoch", "best_loss", "best_nll", "since_best", "history", "done"):
            setattr(self, key, ckpt[key])


def save_checkpoint(ckpt: dict, path: Path) -> None:
    """Write a checkpoint atomically (temporary file beside it, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: Path, *, kind: str, fingerprint: dict, description: str, expected: dict | None = None,
                    model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Read a checkpoint written by `save_checkpoint` (weights only) and check that it belongs to this run.

    The one reader of the package's checkpoints: training members (`CHECKPOINT_KIND`), pretraining
    (`rail.deepdisc.pretraining.loop`) and backbone-only pretraining (`rail.deepdisc.pretraining.backbone`).

    Parameters
    ----------
    path : Path
        The checkpoint file.
    kind : str
        Its ``"kind"`` entry.
    fingerprint : dict
        Options and data description the checkpoint's ``"fingerprint"`` must equal.
    description : str
        What the file should be, for the message ("DeepDISC member checkpoint").
    expected : dict, optional
        Other top-level entries that must match (a member's index and seed).
    model, optimizer : optional
        Restored from the checkpoint's ``"model"`` and ``"optimizer"`` states when given.

    Returns
    -------
    dict
        The checkpoint.

    Raises
    ------
    ModelError
        Naming the file: unreadable (corrupt, truncated, not weights-only), not a ``kind`` checkpoint, or
        written by a run with other options or data (naming the entries that differ).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError
        raise ModelError(f"{path}: unreadable checkpoint ({type(err).__name__}); delete it to start over") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind or not isinstance(ckpt.get("fingerprint"), dict):
        raise ModelError(f"{path}: not a {description}; delete it or write checkpoints elsewhere")
    stored = ckpt["fingerprint"]
    diff = sorted(k for k in set(fingerprint) | set(stored)
                  if not (k in LATER_ENTRIES and k not in stored) and not _same(fingerprint.get(k), stored.get(k)))
    diff += [k for k, v in (expected or {}).items() if ckpt.get(k) != v]
    if diff:
        raise ModelError(
            f"{path}: checkpoint was written with other options or data (other {', '.join(diff)}); resume "
            f"with the same options, or delete it or write checkpoints elsewhere to start over"
        )
    if model is not None:
        model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt


def _same(now, stored) -> bool:
    """Whether a fingerprint entry matches the stored one, an option dict lacking `LATER_OPTIONS` included."""
    if isinstance(now, dict) and isinstance(stored, dict):
        stored = {**{k: v for k, v in LATER_OPTIONS.items() if k in now and k not in stored}, **stored}
    return now == stored
