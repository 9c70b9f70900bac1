"""The optimiser of a member and its learning-rate schedule.

`make_optimizer`: AdamW (default) or SGD over three parameter groups (shared features, detection heads, redshift
head), each clipped on its own in training. `learning_rate_at`: the learning rate at epoch ``e`` is
``learning_rate * lr_gamma ** (number of lr_steps <= e)`` (Merz et al. 2025: /10 at epochs 45, 75, 105 of 150),
times, with ``lr_schedule="cosine"`` (the default), a cosine decay from 1 at the first epoch to `COSINE_FLOOR`
at the last: with a constant rate the weights, and the validation scores, of the last epochs of a short run
still swing from epoch to epoch.
"""

from __future__ import annotations

import math

import torch

from rail.deepdisc.model.network import DeepDiscRCNN
from rail.deepdisc.training.settings import TrainSettings

__all__ = ["COSINE_FLOOR", "make_optimizer", "learning_rate_at"]

#: Learning rate of the last epoch under the cosine schedule, as a fraction of the starting one.
COSINE_FLOOR = 0.05


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
