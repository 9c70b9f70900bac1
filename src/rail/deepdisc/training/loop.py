"""Training one ensemble member, with per-epoch checkpoints and exact resumption.

AdamW or SGD with learning-rate steps, augmentation, validation every epoch, early stopping, atomic per-epoch
checkpoints.

Reproducibility: every random draw of epoch ``e`` (tile order, augmentation, the RPN/RoI samplers) is seeded
from ``(member_seed, e)``, and a checkpoint holds the model, the optimizer (momentum buffers), the best state
and the history after each completed epoch, so a run killed at any point and resumed reaches the same weights
as an uninterrupted run with the same seed (on the same device and thread count).

The learning rate at epoch ``e`` is ``learning_rate * lr_gamma ** (number of lr_steps <= e)`` (Merz et al.
2025: /10 at epochs 45, 75, 105 of 150), times, with ``lr_schedule="cosine"`` (the default), a cosine decay
from 1 at the first epoch to `COSINE_FLOOR` at the last: with a constant rate the weights, and the validation
scores, of the last epochs of a short run still swing from epoch to epoch.

Validation (`rail.deepdisc.training.validation`): the training objective on the validation tiles (detection losses plus
the weighted redshift NLL, no augmentation). The member keeps the weights of the latest epoch whose validation loss
is within one standard error (of the weighted validation redshift NLL) of the lowest so far: the NLL of a few
dozen validation objects swings between epochs by about that much, and of two statistically equal epochs the
later one has the better-trained detector. With ``calibrate_widths`` the redshift NLL of this criterion is the
one after the epoch's own best width factor (``val_nll_calibrated`` in the history; ``val_nll`` stays the raw
one): the member will predict with calibrated widths, and the raw NLL of a head that sharpens as it trains
rises from the first epochs even while its redshifts improve (on the 4-band benchmark field, by the raw NLL,
one member of three kept epoch 0 of 12: a prior-like mixture, 26% detection completeness alone). Early
stopping: training stops after ``patience`` epochs without such an epoch. The kept epoch's validation redshift
log-likelihood weights the member in the ensemble.

Fine-tuning a pretrained model (`rail.deepdisc.training.finetune`): ``freeze`` parts (`FREEZABLE_PARTS`) get no gradient
during the first ``freeze_epochs`` epochs. `run_epoch` (one pass over a set of tiles) is also the training step
of `rail.deepdisc.pretraining.loop`, so pretraining and training share one loop.

Departures from Merz et al. (2025), for learning redshifts from few labels in few steps (see
``benchmarks/bench_learning.py``): the redshift head's parameters get ``head_lr_factor`` times the learning
rate (its own parameter group), and after each full step the head takes ``head_steps`` extra updates on the
detached inputs it saw in that step and the ``head_replay - 1`` steps before it in the same epoch (RoI
features, pixel features, E(B-V) of the labelled boxes; with ~3 labels per tile one batch holds too few
objects for repeated updates on it alone not to overfit it). A head
update costs ~1% of a backbone forward-backward pass, so the head sees many more updates per CPU second,
while the backbone and detection heads are updated exactly as before. Only ``redshift_backbone_grad`` (default
0.1) of the redshift NLL's gradient flows from the head's RoI features into the shared backbone and FPN: the
gradients of sharp mixtures are large and, at full strength, reshape the shared features faster than detection
can follow (on the colour-coded test tiles, recall at IoU 0.5 fell from ~0.9 to ~0.6), while a tenth of it still
tunes them for redshifts. Each parameter group (shared, detection, redshift head) is clipped on its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rail.deepdisc.model.network import DeepDiscRCNN, HeadInputs
from rail.deepdisc.model.redshift_head import mixture_nll
from rail.deepdisc.training.checkpoint import MemberState, load_checkpoint, save_checkpoint
from rail.deepdisc.training.data import make_batch, targets_to_device
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.settings import FREEZABLE_PARTS, LR_SCHEDULES, OPTIMIZERS, TrainSettings
from rail.deepdisc.training.validation import (
    ValidationScores,
    calibrate_widths,
    validation_objective,
    validation_scores,
)

__all__ = [
    "TrainSettings",
    "MemberData",
    "MemberResult",
    "learning_rate_at",
    "train_member",
    "make_optimizer",
    "run_epoch",
    "set_frozen",
    "head_updates",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "COSINE_FLOOR",
    "FREEZABLE_PARTS",
]

log = logging.getLogger(__name__)

#: Learning rate of the last epoch under the cosine schedule, as a fraction of the starting one.
COSINE_FLOOR = 0.05
_SEED_STRIDE = 1_000_003  # member seed -> per-epoch seed: member_seed * stride + epoch


@dataclass
class MemberData:
    """The arrays one member trains on.

    Attributes
    ----------
    images : ndarray (N, C, H, W)
        Raw pixels of every tile.
    segmaps : ndarray (N, H, W)
    targets : list of N dict
        From `rail.deepdisc.training.data.tile_targets` with validation labels hidden in training tiles.
    train, val : ndarray of int
        Tile indices.
    sky_sigma : ndarray (C,)
        Per-band sky noise (flux units), for the noise augmentation.
    """

    images: np.ndarray
    segmaps: np.ndarray
    targets: list
    train: np.ndarray
    val: np.ndarray
    sky_sigma: np.ndarray


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


def make_optimizer(model: DeepDiscRCNN, settings: TrainSettings) -> torch.optim.Optimizer:
    """Make the optimiser of `TrainSettings` over every parameter of ``model``.

    Three parameter groups, each with its own gradient clipping in training: the detection heads (RPN, box
    and mask heads), the redshift head (``lr_scale`` = ``settings.head_lr_factor``) and the rest (input
    normaliser, backbone, FPN: the features both tasks share). A group's learning rate is its ``lr_scale``
    times the schedule's (`learning_rate_at`). Separate clipping keeps the large gradients of sharp mixtures
    (which reach the backbone) from scaling down the detection heads' updates.
    """
    parts = {
        "detection": [*model.rpn.parameters(), *model.roi_heads.parameters()],
        "redshift_head": list(model.redshift_head.parameters()),
    }
    taken = {id(p) for params in parts.values() for p in params}
    groups = [
        {"name": "shared", "params": [p for p in model.parameters() if id(p) not in taken], "lr_scale": 1.0},
        {"name": "detection", "params": parts["detection"], "lr_scale": 1.0},
        {"name": "redshift_head", "params": parts["redshift_head"], "lr_scale": settings.head_lr_factor},
    ]
    for group in groups:
        group["lr"] = settings.learning_rate * group["lr_scale"]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=settings.learning_rate, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    return torch.optim.AdamW(groups, lr=settings.learning_rate, weight_decay=settings.weight_decay)


def head_updates(
    model: DeepDiscRCNN,
    inputs: HeadInputs,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    clip_grad_norm: float = 0.0,
    dist_ctx: DistContext = DistContext(),
) -> float:
    """Take ``steps`` optimiser steps of the redshift head alone on fixed (detached) inputs.

    Only the head's parameters receive gradients, so the optimiser (which skips parameters without a
    gradient) leaves every other parameter, and its state, untouched. Under DDP the head's gradients are
    averaged over ranks, so every rank takes the same steps.

    Returns
    -------
    float
        The mean redshift NLL over the steps (NaN when ``steps`` is 0 or no object is labelled).
    """
    head = model.redshift_head
    trainable = any(p.requires_grad for p in head.parameters())
    if steps < 1 or not trainable or not dist_ctx.all_true(len(inputs.z) > 0):
        return math.nan
    total = 0.0
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = mixture_nll(head(inputs.features, inputs.extra), inputs.z)
        loss.backward()
        if dist_ctx.distributed:
            for p in head.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= dist_ctx.world_size
        if clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(head.parameters(), clip_grad_norm)
        optimizer.step()
        total += float(loss.detach())
    optimizer.zero_grad(set_to_none=True)
    return total / steps


def set_frozen(model: DeepDiscRCNN, parts: tuple[str, ...], frozen: bool) -> int:
    """Freeze (``requires_grad=False``) or release the parameters of model parts; return how many tensors.

    Parameters
    ----------
    model : DeepDiscRCNN
        The network.
    parts : tuple of str
        Among `FREEZABLE_PARTS`: ``"backbone"`` is the ResNet body (``model.backbone.body``), ``"fpn"`` the
        feature pyramid (``model.backbone.fpn``), ``"redshift_head"`` the mixture head (keeps a pretrained
        colour-redshift mapping while a biased spec-z sample adapts the rest; its width factor is still
        calibrated after training).
    frozen : bool
        Freeze (True) or make trainable again (False).

    Notes
    -----
    A frozen parameter gets no gradient, so the optimiser skips it entirely (no step, no weight decay).
    BatchNorm running statistics (``backbone_norm="batch"``) still update in training mode.
    """
    modules = {"backbone": model.backbone.body, "fpn": model.backbone.fpn, "redshift_head": model.redshift_head}
    count = 0
    for part in parts:
        for param in modules[part].parameters():
            param.requires_grad_(not frozen)
            count += 1
    return count


def learning_rate_at(epoch: int, settings: TrainSettings) -> float:
    """Learning rate of epoch ``epoch`` (0-based): step decay, times the cosine decay if ``lr_schedule="cosine"``.

    Examples
    --------
    >>> s = TrainSettings(learning_rate=1e-3, lr_steps=(2, 4), lr_gamma=0.1, lr_schedule="steps")
    >>> [round(learning_rate_at(e, s), 7) for e in range(5)]
    [0.001, 0.001, 0.0001, 0.0001, 1e-05]
    >>> s = TrainSettings(learning_rate=1e-3, epochs=3)
    >>> [round(learning_rate_at(e, s), 7) for e in range(3)]
    [0.001, 0.000525, 5e-05]
    """
    n_steps = sum(1 for s in settings.lr_steps if s <= epoch)
    lr = settings.learning_rate * settings.lr_gamma**n_steps
    if settings.lr_schedule == "cosine":
        progress = min(epoch / max(settings.epochs - 1, 1), 1.0)
        lr *= COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))
    return lr


def _epoch_seed(member_seed: int, epoch: int) -> int:
    return (member_seed * _SEED_STRIDE + epoch) % (2**63 - 1)


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
    if resume and checkpoint is not None and checkpoint.exists():
        state.load_checkpoint(load_checkpoint(checkpoint, member=member, seed=seed, fingerprint=fingerprint))
        log.info("member %d: resumed after epoch %d from %s", member, state.epoch, checkpoint)
    frozen = _apply_freeze(model, settings, state.epoch, None)
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
        now_frozen = _apply_freeze(model, settings, state.epoch, frozen)
        if now_frozen != frozen:  # DDP registers the trainable parameters when wrapping: wrap again
            frozen, net = now_frozen, dist_ctx.wrap(model)
        record = run_epoch(
            net, model, data, settings, state.epoch, seed, optimizer, device, dist_ctx, bar=bar
        )
        record["frozen"] = list(settings.freeze) if frozen else []
        _end_epoch(state, model, data, settings, record, device, dist_ctx)
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
        state_dict=_cpu_snapshot(model) if settings.calibrate_widths else state.best_state,
        val_log_likelihood=val_ll,
        best_epoch=state.best_epoch,
        seed=seed,
        history=state.history,
        std_scale=scale,
    )


def _cpu_snapshot(model: torch.nn.Module) -> dict:
    """A copy of the model's weights on the CPU (independent of later training steps)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _apply_freeze(model, settings: TrainSettings, epoch: int, was_frozen: bool | None) -> bool:
    frozen = bool(settings.freeze) and epoch < settings.freeze_epochs
    if frozen != was_frozen and settings.freeze:
        n = set_frozen(model, settings.freeze, frozen)
        log.info("epoch %d: %s %s (%d tensors)", epoch, "froze" if frozen else "released",
                 "+".join(settings.freeze), n)
    return frozen


def run_epoch(
    net,
    model: DeepDiscRCNN,
    data: MemberData,
    settings: TrainSettings,
    epoch: int,
    seed: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    dist_ctx: DistContext,
    *,
    bar=None,
    presharded: bool = False,
) -> dict:
    """One pass over ``data.train`` in a random order: forward, backward and an optimiser step per batch.

    Parameters
    ----------
    net : nn.Module
        ``model`` itself, or its DDP wrapper (`DistContext.wrap`).
    model : DeepDiscRCNN
        The network (its parameters are clipped and stepped).
    data : MemberData
        Tiles and targets; ``data.train`` are the tiles of this pass.
    settings : TrainSettings
        Batch size, augmentation, learning-rate schedule, loss weights.
    epoch : int
        Epoch number (sets the learning rate via `learning_rate_at`).
    seed : int
        Seed of the pass: tile order, augmentation and the RPN/RoI samplers derive from ``(seed, epoch)``.
    optimizer : torch.optim.Optimizer
    device : torch.device
    dist_ctx : DistContext
        Under DDP every rank takes its shard of the batches (see `DistContext.shard`).
    bar : tqdm, optional
        Advanced by one per batch.
    presharded : bool
        ``data.train`` is already this rank's own share (e.g. tiles this rank simulated): it is cut into
        batches without sharding (every rank must then hold equally many tiles).

    Returns
    -------
    dict
        Mean losses over the batches (``loss`` = weighted total), ``epoch``, ``lr``, ``skipped`` (batches
        skipped for a non-finite loss).
    """
    epoch_seed = _epoch_seed(seed, epoch)
    rng = np.random.default_rng([epoch_seed, dist_ctx.rank])
    torch.manual_seed(epoch_seed + dist_ctx.rank)
    order = np.random.default_rng(epoch_seed).permutation(data.train)
    lr = learning_rate_at(epoch, settings)
    model.redshift_head.dropout = settings.head_dropout
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    sums: dict[str, float] = {}
    n_done = n_skipped = 0
    batches = (DistContext() if presharded else dist_ctx).shard(order, settings.batch_size)
    replay: list[HeadInputs] = []
    for batch in batches:
        images, targets = make_batch(
            data.images,
            data.segmaps,
            data.targets,
            batch,
            augment=settings.augmentation,
            rng=rng,
            sky_sigma=data.sky_sigma,
        )
        losses, head_inputs = net(
            images.to(device),
            targets_to_device(targets, device),
            head_inputs=True,
            redshift_grad=settings.redshift_backbone_grad,
        )
        total = sum(v for k, v in losses.items() if k != "loss_redshift")
        total = total + settings.redshift_loss_weight * losses["loss_redshift"]
        optimizer.zero_grad(set_to_none=True)
        if not dist_ctx.all_true(bool(torch.isfinite(total))):  # every rank skips together under DDP
            n_skipped += 1
            if bar is not None:
                bar.update(1)
            continue
        total.backward()
        if settings.clip_grad_norm > 0:  # per group: sharp mixtures' large gradients do not stall detection
            for group in optimizer.param_groups:
                torch.nn.utils.clip_grad_norm_(group["params"], settings.clip_grad_norm)
        optimizer.step()
        replay = [*replay, head_inputs][-settings.head_replay :]
        head_nll = head_updates(
            model,
            HeadInputs(*(torch.cat(parts) for parts in zip(*replay))),
            optimizer,
            steps=settings.head_steps,
            clip_grad_norm=settings.clip_grad_norm,
            dist_ctx=dist_ctx,
        )
        if math.isfinite(head_nll):
            sums["loss_redshift_head_steps"] = sums.get("loss_redshift_head_steps", 0.0) + head_nll
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(total.detach())
        n_done += 1
        if bar is not None:
            bar.update(1)
    if n_skipped:
        log.warning("epoch %d: skipped %d batch(es) with a non-finite loss", epoch, n_skipped)
    record = {key: value / max(n_done, 1) for key, value in sums.items()}
    record.update(epoch=epoch, lr=lr, skipped=n_skipped)
    return record


def _end_epoch(
    state: MemberState,
    model,
    data: MemberData,
    settings: TrainSettings,
    record: dict,
    device,
    dist_ctx: DistContext,
) -> None:
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
    record["val_loss"] = val_loss
    state.history.append(record)
    epoch = state.epoch
    state.epoch += 1
    if math.isfinite(val_loss) and val_loss <= state.best_loss + tolerance:
        state.best_nll, state.best_epoch, state.since_best = val_nll, epoch, 0
        state.best_loss = min(state.best_loss, val_loss)
        state.best_state = _cpu_snapshot(model)
    else:
        state.since_best += 1
    state.done = state.epoch >= settings.epochs or state.since_best >= settings.patience
    if state.done and state.best_state is None:  # validation loss never finite: keep the last weights
        state.best_state = _cpu_snapshot(model)
        state.best_epoch, state.best_nll = epoch, val_nll
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
