"""One training pass over a set of tiles (`run_epoch`), with the redshift head's extra updates (`head_updates`).

Every random draw of epoch ``e`` (tile order, augmentation, the RPN/RoI samplers) is seeded from
``(seed, e)`` (`epoch_seed`). `run_epoch` is the training step of both `rail.deepdisc.training.member` and
`rail.deepdisc.pretraining.loop`, so training and pretraining share one loop.

Departures from Merz et al. (2025), for learning redshifts from few labels in few steps (see
``benchmarks/bench_learning.py``): the redshift head's parameters get ``head_lr_factor`` times the learning
rate (its own parameter group), and after each full step the head takes ``head_steps`` extra updates on the
detached inputs it saw in that step and the ``head_replay - 1`` steps before it in the same epoch (RoI
features, pixel features, E(B-V) of the labelled boxes; with ~3 labels per tile one batch holds too few
objects for repeated updates on it alone not to overfit it). A head update costs ~1% of a backbone
forward-backward pass, so the head sees many more updates per CPU second, while the backbone and detection
heads are updated exactly as before. Only ``redshift_backbone_grad`` (default 0.1) of the redshift NLL's
gradient flows from the head's RoI features into the shared backbone and FPN: the gradients of sharp mixtures
are large and, at full strength, reshape the shared features faster than detection can follow (on the
colour-coded test tiles, recall at IoU 0.5 fell from ~0.9 to ~0.6), while a tenth of it still tunes them for
redshifts. Each parameter group (shared, detection, redshift head) is clipped on its own.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from rail.deepdisc.model.network import DeepDiscRCNN, HeadInputs
from rail.deepdisc.model.redshift_head import mixture_nll
from rail.deepdisc.training.data import MemberData, make_batch, targets_to_device
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.optimiser import learning_rate_at
from rail.deepdisc.training.settings import TrainSettings

__all__ = ["run_epoch", "head_updates", "epoch_seed"]

log = logging.getLogger(__name__)

_SEED_STRIDE = 1_000_003  # member seed -> per-epoch seed: member_seed * stride + epoch


def epoch_seed(member_seed: int, epoch: int) -> int:
    """Seed of every random draw of epoch ``epoch`` of a member seeded ``member_seed``."""
    return (member_seed * _SEED_STRIDE + epoch) % (2**63 - 1)


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
    seed_e = epoch_seed(seed, epoch)
    rng = np.random.default_rng([seed_e, dist_ctx.rank])
    torch.manual_seed(seed_e + dist_ctx.rank)
    order = np.random.default_rng(seed_e).permutation(data.train)
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
