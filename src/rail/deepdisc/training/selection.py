"""Validation after every epoch and the choice of the epoch a member keeps (`end_epoch`).

Validation (`rail.deepdisc.training.validation`): the training objective on the validation tiles (detection
losses plus the weighted redshift NLL, no augmentation). The member keeps the weights of the latest epoch whose
validation loss is within one standard error (of the weighted validation redshift NLL) of the lowest so far:
the NLL of a few dozen validation objects swings between epochs by about that much, and of two statistically
equal epochs the later one has the better-trained detector. With ``calibrate_widths`` the redshift NLL of this
criterion is the one after the epoch's own best width factor (``val_nll_calibrated`` in the history;
``val_nll`` stays the raw one): the member will predict with calibrated widths, and the raw NLL of a head that
sharpens as it trains rises from the first epochs even while its redshifts improve (on the 4-band benchmark
field, by the raw NLL, one member of three kept epoch 0 of 12: a prior-like mixture, 26% detection completeness
alone). Early stopping: training stops after ``patience`` epochs without such an epoch. The kept epoch's
validation redshift log-likelihood weights the member in the ensemble.
"""

from __future__ import annotations

import logging
import math

import torch

from rail.deepdisc.training.checkpoint import MemberState
from rail.deepdisc.training.data import MemberData
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.settings import TrainSettings
from rail.deepdisc.training.validation import ValidationScores, validation_objective, validation_scores

__all__ = ["end_epoch", "keep_or_stop", "cpu_snapshot"]

log = logging.getLogger(__name__)


def cpu_snapshot(model: torch.nn.Module) -> dict:
    """A copy of the model's weights on the CPU (independent of later training steps)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def end_epoch(
    state: MemberState,
    model,
    data: MemberData,
    settings: TrainSettings,
    record: dict,
    device,
    dist_ctx: DistContext,
) -> None:
    """Validate the epoch just trained, add its record to the history and update the kept epoch.

    Rank 0 scores the validation tiles (`validation_scores`) and broadcasts the scores; ``record`` gets
    ``val_nll``, ``n_val``, ``val_detection_loss``, ``val_loss`` (and ``val_nll_calibrated``,
    ``val_width_factor`` with ``calibrate_widths``); ``state`` advances one epoch, keeps these weights when
    the epoch is within one standard error of the best, and sets ``done`` (last epoch or ``patience``).
    """
    calibrated = settings.calibrate_widths
    scores = (
        validation_scores(model, data, batch_size=settings.batch_size, device=device, fit_widths=calibrated)
        if dist_ctx.is_main
        else ValidationScores(0.0, 0.0, 0, 0.0)
    )
    val_ll, val_se, n_val, val_det, cal_ll, cal_se, factor = dist_ctx.broadcast(
        [scores.log_likelihood, scores.log_likelihood_se, float(scores.n_objects), scores.detection_loss,
         scores.calibrated_log_likelihood, scores.calibrated_log_likelihood_se, scores.width_factor]
    )
    record.update(val_nll=-val_ll, n_val=int(n_val), val_detection_loss=val_det)
    if calibrated and math.isfinite(cal_ll):  # select on what the member will predict after `calibrate_widths`
        record.update(val_nll_calibrated=-cal_ll, val_width_factor=factor)
        val_ll, val_se = cal_ll, cal_se
    val_nll = -val_ll
    val_loss = validation_objective(val_det, val_nll, settings.redshift_loss_weight)
    tolerance = settings.redshift_loss_weight * val_se if math.isfinite(val_se) else 0.0
    epoch = state.epoch
    keep_or_stop(state, model, record, val_loss, val_nll, tolerance, epochs=settings.epochs,
                 patience=settings.patience)
    log.info(
        "epoch %d: loss %.4f, validation loss %.4f (detection %.4f, redshift NLL %.4f; best %.4f at epoch %d)",
        epoch,
        record.get("loss", 0.0),
        val_loss,
        val_det,
        val_nll,
        state.best_loss,
        state.best_epoch,
    )


def keep_or_stop(state: MemberState, model: torch.nn.Module, record: dict, val_loss: float, val_nll: float,
                 tolerance: float, *, epochs: int, patience: int) -> None:
    """The selection rule: record the epoch just validated, keep its weights if within ``tolerance`` of the best.

    ``record`` gets ``val_loss`` and joins ``state.history``; ``state`` advances one epoch and keeps ``model``'s
    weights when ``val_loss`` is at most the lowest so far plus ``tolerance`` (one standard error of the
    validation NLL); ``done`` is set after ``epochs`` epochs or ``patience`` epochs without a kept one. If no
    validation loss was ever finite, the last weights are kept. Shared by DeepDISC's members (`end_epoch`) and
    the catalog MDN (`rail.deepdisc.peers.catalog_mdn_train`).
    """
    record["val_loss"] = val_loss
    state.history.append(record)
    epoch = state.epoch
    state.epoch += 1
    if math.isfinite(val_loss) and val_loss <= state.best_loss + tolerance:
        state.best_nll, state.best_epoch, state.since_best = val_nll, epoch, 0
        state.best_loss = min(state.best_loss, val_loss)
        state.best_state = cpu_snapshot(model)
    else:
        state.since_best += 1
    state.done = state.epoch >= epochs or state.since_best >= patience
    if state.done and state.best_state is None:  # validation loss never finite: keep the last weights
        state.best_state = cpu_snapshot(model)
        state.best_epoch, state.best_nll = epoch, val_nll
