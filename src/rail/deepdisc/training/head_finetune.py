"""Fine-tuning the redshift head alone on a pretrained network's frozen features (``finetune="head"``).

Fine-tuning every layer of a pretrained network (``deepdisc train --init``, ``finetune="all"``) passes every
training tile through the backbone, the detector and the head in every epoch. With ``finetune="head"`` the
pretrained backbone, feature pyramid and detector stay as they are, and only the redshift head learns the
spec-z:

1. the head's inputs of every labelled object (the RoI-aligned features of its catalog box, the pixel path's
   colours and patches, its E(B-V)) are computed once for the ensemble, without augmentation
   (`labelled_head_features`), and each member takes those of its training and validation tiles;
2. each epoch is one pass over the member's training objects in a random order (`epoch_seed`), in steps of
   `HEAD_BATCH_OBJECTS` objects, with AdamW at ``learning_rate x head_lr_factor`` on the learning-rate schedule,
   the head's dropout, weight decay and gradient clipping of the member's settings;
3. after every epoch, the validation objects' NLL (after the epoch's best width factor with
   ``calibrate_widths``) chooses the kept epoch and stops early as for a full member (`keep_or_stop`), and an
   atomic checkpoint is written, so a killed run resumes exactly; the kept head's widths are then calibrated.
   The checkpoint holds the head alone (its weights, AdamW's moments and the kept epoch's weights: 55 MB on the
   benchmark instead of the whole network's 155 MB); the rest is the initial model's, whose weights digest is
   in the fingerprint, so resuming from another initial model is refused.

On the JADES-size benchmark (1391 spec-z on 1628 training tiles, one thread) the inputs took 44 s and an epoch
~1.7 s, the checkpoint included (~1 s without it); an epoch with every layer training takes ~7 CPU minutes. On
that benchmark (``benchmarks/README.md``, "Fine-tuning the redshift head alone") three heads fine-tuned alone (40
epochs) gave sigma_IQR / eta 0.054 / 0.090 at F444W < 27 and 0.112 / 0.325 for all galaxies, against 0.056 / 0.088
and 0.104 / 0.317 for one member fine-tuned in full: the same at the bright end, a little worse for the faint
galaxies, at a fraction of the cost; after a pretraining twice as long it was the benchmark's best DeepDISC
(0.049 / 0.081 and 0.100 / 0.305). What it cannot do: adapt the detector or the features to the new images (real
data far from the pretraining's simulations need ``finetune="all"``).

Augmentation: with ``head_views = V > 0`` the inputs are also computed for ``V`` augmented copies of every
labelled tile (`rail.deepdisc.training.data.make_batch` with the member's augmentation: rotations, flips, box
jitter, ...), and each epoch takes every training object from one copy drawn at random; validation stays
unaugmented. On the benchmark 4 views changed nothing beyond the errors.

Objects without spec-z: with ``head_distill = W > 0`` the inputs of the labelled tiles' objects without a spec-z
are computed too, the initial (pretrained) head's mixtures of them are kept as targets
(`rail.deepdisc.training.head_distill.Distillation`), and every
step adds ``W`` times their mean cross-entropy to the head's mixtures, for as many of them as the step has labelled
objects. Spec-z are bright and at low redshift; this keeps what the label-complete pretraining taught the head
about everything else. On the benchmark ``W = 1`` lowered the outlier fraction of all galaxies from 0.305 to 0.295
and raised the 68% coverage from 0.55 to 0.60 at unchanged bright-end figures (``docs/pretraining.md``).
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

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.network import DeepDiscRCNN, HeadInputs
from rail.deepdisc.model.redshift_head import mixture_log_prob, mixture_nll
from rail.deepdisc.training.checkpoint import MemberState, save_checkpoint
from rail.deepdisc.training.data import MemberData, make_batch, targets_to_device
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.epoch import epoch_seed
from rail.deepdisc.training.head_distill import Distillation
from rail.deepdisc.training.member import MemberResult
from rail.deepdisc.training.optimiser import learning_rate_at
from rail.deepdisc.training.selection import cpu_snapshot, keep_or_stop
from rail.deepdisc.training.settings import Augmentation, TrainSettings
from rail.deepdisc.training.validation import fitted_widths, mean_and_se

__all__ = ["HEAD_BATCH_OBJECTS", "LabelledFeatures", "labelled_head_features", "head_pass", "view_options",
           "train_head_member"]

log = logging.getLogger(__name__)

#: Labelled objects per optimisation step of the head (the catalog MDN's batch).
HEAD_BATCH_OBJECTS = 32
#: Most objects without spec-z whose inputs ``head_distill`` keeps (13 kB each with the default head): a seeded
#: random subset of the tiles beyond it (an epoch of 1000 labelled objects draws as many of them).
MAX_UNLABELLED = 20000
UNLABELLED_SEED = 2017
#: The head's name in the whole network: the ``scope`` of its member checkpoints (`MemberState`).
HEAD_SCOPE = "redshift_head"


@dataclass
class LabelledFeatures:
    """The redshift head's inputs of labelled objects, with where each object sits in the targets.

    Attributes
    ----------
    inputs : HeadInputs
        ``features`` (N, F), ``extra`` (N, 1), ``z`` (N,): ground-truth boxes, no augmentation.
    tile : ndarray (N,) int
        Tile of each row.
    index : ndarray (N,) int
        Position of the row's object in its tile's targets.
    views : HeadInputs or None
        Augmented copies of the same rows: ``features`` (V, N, F), ``extra`` (V, N, 1), ``z`` (N,).
    unlabelled : HeadInputs or None
        The inputs of the tiles' objects without a spec-z (``z`` NaN), for ``head_distill``: the same for every
        member (a member's hidden validation labels are not among them).
    """

    inputs: HeadInputs
    tile: np.ndarray
    index: np.ndarray
    views: HeadInputs | None = None
    unlabelled: HeadInputs | None = None

    def select(self, targets: list, tiles: np.ndarray) -> LabelledFeatures:
        """The rows of ``tiles`` whose object is labelled in ``targets`` (a member's, validation labels hidden)."""
        labelled = np.array([bool(np.isfinite(targets[t]["redshift"][j])) for t, j in zip(self.tile, self.index)],
                            bool)
        keep = np.flatnonzero(np.isin(self.tile, tiles) & labelled)
        rows = torch.from_numpy(keep).to(self.inputs.z.device)
        views = (None if self.views is None else
                 HeadInputs(self.views.features[:, rows], self.views.extra[:, rows], self.views.z[rows]))
        return LabelledFeatures(HeadInputs(*(t[rows] for t in self.inputs)), self.tile[keep], self.index[keep], views,
                                self.unlabelled)


@torch.no_grad()
def labelled_head_features(model: DeepDiscRCNN, images: np.ndarray, segmaps: np.ndarray, targets: list,
                           tiles: np.ndarray, *, batch_size: int, device: torch.device,
                           augment: Augmentation | None = None, views: int = 0, seed: int = 0,
                           sky_sigma: np.ndarray | None = None, unlabelled: bool = False) -> LabelledFeatures:
    """The redshift head's inputs of the labelled objects of ``tiles`` (ground-truth boxes, no augmentation).

    Tiles without a label are skipped (the detector is not trained). With the backbone frozen they are the same
    for every member started from the same pretrained network: `rail.deepdisc.training.ensemble.train_ensemble`
    computes them once, on every labelled tile, and each member takes its own (`LabelledFeatures.select`).
    With ``views > 0`` and ``augment``, ``views`` augmented copies are computed too (each tile transformed as a
    training batch is, `rail.deepdisc.training.data.make_batch`, with the numpy generator seeded by
    ``(seed, view)``; ``sky_sigma`` for the noise and dimming augmentations). With ``unlabelled``, the inputs of
    the objects of ``tiles`` without a spec-z are computed too (`LabelledFeatures.unlabelled`).
    """
    tiles = np.asarray([t for t in tiles if np.isfinite(targets[t]["redshift"]).any()], np.int64)
    index = [np.flatnonzero(np.isfinite(targets[t]["redshift"])) for t in tiles]  # redshift_inputs' order
    tile = np.repeat(tiles, [len(i) for i in index])
    index = np.concatenate(index) if index else np.zeros(0, np.int64)
    if not len(tiles):
        n_features = sum(model.redshift_head.groups)
        empty = HeadInputs(torch.zeros(0, n_features, device=device), torch.zeros(0, 1, device=device),
                           torch.zeros(0, device=device))
        return LabelledFeatures(empty, tile, index)
    was_training = model.training
    model.eval()
    try:
        others = None
        if unlabelled:  # one pass over every object of the tiles
            inputs, others = _with_unlabelled(model, images, segmaps, targets, tiles, batch_size, device)
        else:
            inputs = _pass(model, images, segmaps, targets, tiles, batch_size, device, None, None, sky_sigma)
        copies = [_pass(model, images, segmaps, targets, tiles, batch_size, device, augment,
                        np.random.default_rng([seed, v]), sky_sigma)
                  for v in tqdm(range(views if augment is not None else 0), desc="head views", unit="view",
                                disable=views < 2, leave=False)]
    finally:
        model.train(was_training)
    stacked = (HeadInputs(torch.stack([c.features for c in copies]), torch.stack([c.extra for c in copies]),
                          inputs.z) if copies else None)
    return LabelledFeatures(inputs, tile, index, stacked, others)


def _with_unlabelled(model, images, segmaps, targets, tiles, batch_size, device) -> tuple[HeadInputs, HeadInputs]:
    """The head's inputs of the labelled objects of ``tiles`` and of those without a spec-z (``z`` NaN).

    One pass over every object of the tiles. Beyond `MAX_UNLABELLED` objects without a spec-z, those of the tiles
    of a seeded random subset holding about that many are kept.
    """
    missing = [~np.isfinite(targets[t]["redshift"]) for t in tiles]
    counts = np.array([int(m.sum()) for m in missing])
    kept = np.ones(len(tiles), bool)
    if counts.sum() > MAX_UNLABELLED:
        order = np.random.default_rng(UNLABELLED_SEED).permutation(len(tiles))
        kept[:] = False
        kept[order[: int(np.searchsorted(np.cumsum(counts[order]), MAX_UNLABELLED)) + 1]] = True
    every = [dict(t, redshift=np.where(np.isfinite(t["redshift"]), t["redshift"], 0.0)) for t in targets]
    both = _pass(model, images, segmaps, every, tiles, batch_size, device, None, None, None)
    unlabelled = np.concatenate(missing)
    in_kept = np.repeat(kept, [len(m) for m in missing])
    labelled = torch.from_numpy(np.flatnonzero(~unlabelled)).to(both.z.device)
    others = torch.from_numpy(np.flatnonzero(unlabelled & in_kept)).to(both.z.device)
    return (HeadInputs(*(t[labelled] for t in both)),
            HeadInputs(both.features[others], both.extra[others], torch.full((len(others),), float("nan"),
                                                                              device=both.z.device)))


def _pass(model, images, segmaps, targets, tiles, batch_size, device, augment, rng, sky_sigma) -> HeadInputs:
    """The head's inputs of the labelled objects of ``tiles``, their tiles transformed by ``augment``."""
    parts = []
    for k in range(0, len(tiles), batch_size):
        batch, batch_targets = make_batch(images, segmaps, targets, tiles[k : k + batch_size], augment=augment,
                                          rng=rng, sky_sigma=sky_sigma)
        enc = model.encode(batch.to(device))
        parts.append(model.redshift_inputs(enc, targets_to_device(batch_targets, device)))
    return HeadInputs(*(torch.cat(p) for p in zip(*parts)))


def head_pass(head, features: torch.Tensor, extra: torch.Tensor, z: torch.Tensor, order: np.ndarray, optimizer, *,
              lr: float, dropout: float, batch_size: int, clip_grad_norm: float,
              distill: Distillation | None = None, rng: np.random.Generator | None = None,
              totals: dict | None = None) -> float:
    """One pass of a redshift head over the objects ``order``, ``batch_size`` at a time; the mean training NLL.

    The epoch step of the head fine-tuned alone (`train_head_member`) and of the catalog MDN
    (`rail.deepdisc.peers.catalog_mdn_train`): learning rate ``lr``, the head's dropout, the mixture NLL, gradient
    clipping (0 = none); the head is left in eval mode. With ``distill``, every step adds the cross-entropy of
    as many unlabelled objects, drawn with ``rng``, to the initial head's mixtures (`Distillation`); its mean
    per labelled object (weighted) is added to ``totals["distill"]``.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    head.dropout = dropout
    head.train()
    total = 0.0
    for k in range(0, len(order), batch_size):
        batch = torch.from_numpy(np.asarray(order[k : k + batch_size])).to(z.device)
        loss = mixture_nll(head(features[batch], extra[batch]), z[batch])
        total += float(loss.detach()) * len(batch)
        if distill is not None:
            rows = torch.from_numpy(rng.integers(len(distill.inputs.z), size=len(batch))).to(z.device)
            kept = distill.loss(head, rows)
            loss = loss + kept
            if totals is not None:
                totals["distill"] = totals.get("distill", 0.0) + float(kept.detach()) * len(batch) / len(order)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(head.parameters(), clip_grad_norm)
        optimizer.step()
    head.eval()
    return total / max(len(order), 1)


def _head_epoch(head, inputs: HeadInputs, views: HeadInputs | None, optimizer, settings: TrainSettings, epoch: int,
                seed: int, distill: Distillation | None = None) -> dict:
    """One pass over the training objects in a random order (`epoch_seed`); the epoch's record.

    With ``views``, each object enters as one of its augmented views, drawn at random every epoch.
    """
    seed_e = epoch_seed(seed, epoch)
    torch.manual_seed(seed_e)
    rng = np.random.default_rng(seed_e)
    order = rng.permutation(len(inputs.z))
    features, extra = inputs.features, inputs.extra
    if views is not None:
        pick = torch.from_numpy(rng.integers(len(views.features), size=len(inputs.z))).to(inputs.z.device)
        rows = torch.arange(len(inputs.z), device=inputs.z.device)
        features, extra = views.features[pick, rows], views.extra[pick, rows]
    lr = learning_rate_at(epoch, settings) * settings.head_lr_factor
    totals: dict = {}
    loss = head_pass(head, features, extra, inputs.z, order, optimizer, lr=lr, dropout=settings.head_dropout,
                     batch_size=HEAD_BATCH_OBJECTS, clip_grad_norm=settings.clip_grad_norm, distill=distill, rng=rng,
                     totals=totals)
    kept = {"loss_distill": totals.get("distill", 0.0)} if distill is not None else {}
    return {"epoch": epoch, "lr": lr, "loss": loss + sum(kept.values()), "loss_redshift": loss, **kept}


@torch.no_grad()
def _validate(head, inputs: HeadInputs, calibrate: bool) -> tuple[dict, float, float, float]:
    """The epoch's validation record, the NLL the kept epoch is chosen on, its standard error, the width factor."""
    if not len(inputs.z):
        return {"val_nll": math.nan, "n_val": 0}, math.nan, math.nan, 1.0
    params = head(inputs.features, inputs.extra)
    mean, se = mean_and_se(mixture_log_prob(params, inputs.z).double().cpu().numpy())
    record = {"val_nll": -mean, "n_val": len(inputs.z)}
    factor = 1.0
    if calibrate:
        factor, per_object = fitted_widths(params, inputs.z)
        mean, se = mean_and_se(per_object)
        record.update(val_nll_calibrated=-mean, val_width_factor=factor)
    return record, -mean, se, factor


def view_options(settings: TrainSettings, seed: int, sky_sigma: np.ndarray) -> dict:
    """`labelled_head_features` keywords of the augmented views that ``settings`` ask for."""
    return {"augment": settings.augmentation, "views": settings.head_views, "seed": seed, "sky_sigma": sky_sigma,
            "unlabelled": settings.head_distill > 0}


def train_head_member(
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
    features: LabelledFeatures | None = None,
) -> MemberResult:
    """One member: the redshift head of ``model`` (pretrained) fine-tuned alone; see the module docstring.

    Parameters and return value are `rail.deepdisc.training.member.train_member`'s, but it runs in one process
    (the head trains in seconds; under DDP it refuses). ``model`` is left holding the kept, width-calibrated
    weights. ``features``: `labelled_head_features` of the tiles (computed here when not given).

    Raises
    ------
    ConfigError
        Under DDP (``dist_ctx.distributed``).
    """
    if dist_ctx.distributed:
        raise ConfigError("finetune head trains in one process (seconds per epoch): run it without torchrun")
    model.to(device)
    head = model.redshift_head
    if features is None:
        features = labelled_head_features(model, data.images, data.segmaps, data.targets,
                                          np.union1d(data.train, data.val), batch_size=settings.batch_size,
                                          device=device, **view_options(settings, seed, data.sky_sigma))
    distill = Distillation.of(head, features.unlabelled, settings.head_distill)  # the initial head, calibrated
    head.std_scale.fill_(1.0)
    train, val = features.select(data.targets, data.train), features.select(data.targets, data.val)
    train_inputs, train_views, val_inputs = train.inputs, train.views, val.inputs
    log.info("member %d: fine-tuning the redshift head alone on %d training objects (%d augmented views) and %d "
             "validation objects", member, len(train_inputs.z), 0 if train_views is None else
             len(train_views.features), len(val_inputs.z))
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate * settings.head_lr_factor,
                                  weight_decay=settings.weight_decay)
    state = MemberState(head, optimizer, HEAD_SCOPE)  # checkpoints of the head alone: the rest is the initial model
    if resume and state.resume_from(checkpoint, fingerprint=fingerprint, member=member, seed=seed):
        log.info("member %d: resumed after epoch %d from %s", member, state.epoch, checkpoint)
    bar = tqdm(total=settings.epochs, initial=state.epoch, unit="epoch", desc=f"member {member} (head)",
               disable=not progress, leave=False)
    while not state.done:
        record = _head_epoch(head, train_inputs, train_views, optimizer, settings, state.epoch, seed, distill)
        val_record, val_nll, se, _ = _validate(head, val_inputs, settings.calibrate_widths)
        record.update(val_record, frozen=["backbone", "fpn", "detector"])
        keep_or_stop(state, head, record, val_nll, val_nll, se if math.isfinite(se) else 0.0,
                     epochs=settings.epochs, patience=settings.patience)
        if checkpoint is not None:
            save_checkpoint(state.to_checkpoint(member, seed, fingerprint), checkpoint)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", val_nll=f"{val_nll:.3f}")
        if on_epoch_end is not None:
            on_epoch_end(state.epoch - 1, record)
    bar.close()
    head.load_state_dict(state.best_state)
    model.eval()
    val_ll, scale = -state.best_nll, 1.0
    if settings.calibrate_widths and len(val_inputs.z):
        _, _, _, scale = _validate(head, val_inputs, True)
        head.std_scale.fill_(scale)
        with torch.no_grad():
            val_ll = float(mixture_log_prob(head(val_inputs.features, val_inputs.extra), val_inputs.z).mean())
        log.info("member %d: widths x %.3f, validation log-likelihood %.4f -> %.4f", member, scale,
                 -state.best_nll, val_ll)
    model.train()
    return MemberResult(state_dict=cpu_snapshot(model), val_log_likelihood=val_ll, best_epoch=state.best_epoch,
                        seed=seed, history=state.history, std_scale=scale)
