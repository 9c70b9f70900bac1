"""Training one ensemble member, with per-epoch checkpoints and exact resumption.

AdamW or SGD with a learning-rate schedule (`rail.deepdisc.training.optimiser`), augmentation, one pass over the
training tiles per epoch (`rail.deepdisc.training.epoch`), validation and the choice of the kept epoch after
every epoch with early stopping (`rail.deepdisc.training.selection`), atomic per-epoch checkpoints.

Reproducibility: every random draw of epoch ``e`` (tile order, augmentation, the RPN/RoI samplers) is seeded
from ``(member_seed, e)``, and a checkpoint holds the model, the optimizer (momentum buffers), the best state
and the history after each completed epoch, so a run killed at any point and resumed reaches the same weights
as an uninterrupted run with the same seed (on the same device and thread count).

Fine-tuning a pretrained model (`rail.deepdisc.training.finetune`): ``freeze`` parts get no gradient during
the first ``freeze_epochs`` epochs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rail.deepdisc.model.network import DeepDiscRCNN
from rail.deepdisc.training.checkpoint import MemberState, save_checkpoint
from rail.deepdisc.training.data import MemberData
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.epoch import run_epoch
from rail.deepdisc.training.finetune import freeze_for_epoch
from rail.deepdisc.training.optimiser import make_optimizer
from rail.deepdisc.training.selection import cpu_snapshot, end_epoch
from rail.deepdisc.training.settings import TrainSettings
from rail.deepdisc.training.validation import calibrate_widths

__all__ = ["MemberResult", "train_member"]

log = logging.getLogger(__name__)


@dataclass
class MemberResult:
    """A trained member: kept weights, validation log-likelihood (after width calibration), history.

    ``calibration`` holds its mixtures of the ensemble's calibration objects
    (`rail.deepdisc.training.calibration.calibration_record`), when the ensemble held tiles out for it.
    """

    state_dict: dict
    val_log_likelihood: float
    best_epoch: int
    seed: int
    history: list
    std_scale: float = 1.0
    calibration: dict | None = None


def train_member(
    model: DeepDiscRCNN,
    data: MemberData,
    settings: TrainSettings,
    *,
    member: int,
    seed: int,
    checkpoint: Path | None,
    resume: bool,
    fingerprint: dict,
    device: torch.device,
    dist_ctx: DistContext = DistContext(),
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> MemberResult:
    """Train one member to early stopping or ``settings.epochs``; return its best weights.

    Parameters
    ----------
    model : DeepDiscRCNN
        Initialised model (normalisation statistics set), on the CPU or ``device``.
    data : MemberData
        Arrays and the member's partition.
    settings : TrainSettings
        Optimisation settings.
    member, seed : int
        Member index and its seed (every epoch's randomness derives from it).
    checkpoint : Path or None
        This member's checkpoint file, rewritten after each epoch by rank 0 (None: no checkpoints).
    resume : bool
        Continue from ``checkpoint`` when it exists.
    fingerprint : dict
        Options and data description a resumed checkpoint must match.
    device : torch.device
        Training device.
    dist_ctx : DistContext
        DDP context (single process by default).
    progress : bool
        Show a progress bar (rank 0 only).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, record)`` after each epoch's checkpoint is written.

    Returns
    -------
    MemberResult
        With ``settings.calibrate_widths``, ``model`` is left holding the result's (kept, calibrated) weights.
    """
    model.to(device).train()
    model.redshift_head.std_scale.fill_(1.0)  # train the raw widths (an initial model may be calibrated)
    optimizer = make_optimizer(model, settings)
    state = MemberState(model, optimizer)
    if resume and state.resume_from(checkpoint, fingerprint=fingerprint, member=member, seed=seed):
        log.info("member %d: resumed after epoch %d from %s", member, state.epoch, checkpoint)
    frozen = freeze_for_epoch(model, settings, state.epoch, None)
    net = dist_ctx.wrap(model)
    n_batches = len(dist_ctx.shard(data.train, settings.batch_size))
    bar = tqdm(
        total=settings.epochs * n_batches,
        initial=state.epoch * n_batches,
        unit="batch",
        desc=f"member {member}",
        disable=not (progress and dist_ctx.is_main),
        leave=False,
    )
    while not state.done:
        now_frozen = freeze_for_epoch(model, settings, state.epoch, frozen)
        if now_frozen != frozen:  # DDP registers the trainable parameters when wrapping: wrap again
            frozen, net = now_frozen, dist_ctx.wrap(model)
        record = run_epoch(
            net, model, data, settings, state.epoch, seed, optimizer, device, dist_ctx, bar=bar
        )
        record["frozen"] = list(settings.freeze) if frozen else []
        end_epoch(state, model, data, settings, record, device, dist_ctx)
        bar.set_postfix(loss=f"{record.get('loss', math.nan):.3f}", val_nll=f"{record['val_nll']:.3f}")
        if dist_ctx.is_main and checkpoint is not None:
            save_checkpoint(state.to_checkpoint(member, seed, fingerprint), checkpoint)
        dist_ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(state.epoch - 1, record)
    bar.close()
    val_ll, scale = -state.best_nll, 1.0
    if settings.calibrate_widths:
        model.load_state_dict(state.best_state)
        scale, calibrated = calibrate_widths(model, data, batch_size=settings.batch_size, device=device,
                                             dist_ctx=dist_ctx)
        val_ll = calibrated if math.isfinite(calibrated) else val_ll
        log.info("member %d: widths x %.3f, validation log-likelihood %.4f -> %.4f", member, scale,
                 -state.best_nll, val_ll)
    return MemberResult(
        state_dict=cpu_snapshot(model) if settings.calibrate_widths else state.best_state,
        val_log_likelihood=val_ll,
        best_epoch=state.best_epoch,
        seed=seed,
        history=state.history,
        std_scale=scale,
    )
