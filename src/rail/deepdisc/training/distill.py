"""Distilling an ensemble into one network: the ensemble's photo-z at the cost of one member (issue 20).

Each member's backbone and FPN are most of an ensemble's inference cost (``benchmarks/README.md``, "Ensemble
speed"), so sharing detection between members saves little; a *student* network of the same architecture,
trained to reproduce the ensemble's mixtures, costs exactly one member.

Teacher. The ensemble as ``deepdisc estimate`` runs it (`EnsemblePredictor.from_artifact`: every member's
own width calibration and, when the artifact holds calibration records, the ensemble's width factor), in eval
mode, reading every catalogued object of the distillation tiles from its catalog box (`tile_targets`); its
mixture per object is the members' components side by side, weighted by the members' weights. The teacher
labels every catalogued object, so the student learns from all of them, the faint unlabelled ones included,
not only the few with spec-z; and any tiles can be added as a transfer set, since no label is needed. The
labels are computed once, before training, on the unaugmented tiles: a dihedral transform or a jittered box
does not change an object's redshift, and the members were trained to be invariant to both.

Student. Initialised from the ensemble's highest-weight member (its detection already works), trained with
the members' loop pieces (`make_batch` augmentation, `make_optimizer`, `learning_rate_at`, per-group gradient
clipping, the seeded epochs of `epoch_seed`, `MemberState` checkpoints) on: the detection losses of the
catalog boxes, as in training; the distillation loss; and, with ``distill_specz_weight``, the spec-z NLL.
Its redshift head trains without dropout (``distill_head_dropout`` 0, not the members' ``head_dropout``): the
student is estimated in eval mode, and a head fitted to the teacher with dropout on fits it there, not in eval
mode. With the members' 0.3, the student's mean KL divergence from a 3-member ensemble *grew* during
distillation (0.038 to 0.053 nats, 2039 objects, 2 epochs) and on 1370 held-out objects was 0.057 against
its starting member's 0.039; without dropout it fell to 0.029, and 0.033 on the held-out objects
(``benchmarks/README.md``, "Distilled ensemble").

Distillation loss: the cross-entropy ``H(p, q) = -int p(z) log q(z) dz`` of the teacher's mixture p under the
student's q (the KL divergence up to p's own entropy, which does not depend on the student), per object.
Each teacher component contributes ``w_k E_{z ~ N(mu_k, sigma_k)}[-log q(z)]``, computed by Gauss-Hermite
quadrature (`GAUSS_HERMITE_NODES` nodes at ``mu_k + sqrt(2) sigma_k x_i``): deterministic (no Monte-Carlo
noise), exact where log q is a polynomial of degree below ``2 x nodes`` over the component, and it resolves
components of any width, where a fixed redshift grid would miss the narrowest (0.01) ones. Its gradient is
that of the spec-z NLL at the nodes, so it is as well conditioned as ordinary training.

Widths. The targets already hold the ensemble's calibrated widths, so the student learns calibrated widths
directly: its ``std_scale`` stays the fixed factor of the member it started from (the raw widths learn
around it) and its artifact has no calibration record, so `EnsemblePredictor` applies no further factor.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.inference.predictor import EnsemblePredictor
from rail.deepdisc.mixture import Mixture
from rail.deepdisc.model.network import DeepDiscRCNN, model_from_artifact
from rail.deepdisc.model.normalise import band_statistics
from rail.deepdisc.model.redshift_head import MixtureParams, mixture_log_prob, mixture_nll
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.training.checkpoint import MemberState, read_checkpoint, save_checkpoint
from rail.deepdisc.training.data import make_batch, targets_to_device, tile_targets
from rail.deepdisc.training.epoch import epoch_seed
from rail.deepdisc.training.optimiser import learning_rate_at, make_optimizer
from rail.deepdisc.training.settings import DistillSettings, TrainSettings

__all__ = [
    "DISTILL_CHECKPOINT_KIND",
    "GAUSS_HERMITE_NODES",
    "DistillData",
    "distillation_data",
    "teacher_mixtures",
    "mixture_cross_entropy",
    "mixture_kl",
    "distillation_gap",
    "distill_ensemble",
]

log = logging.getLogger(__name__)

DISTILL_CHECKPOINT_KIND = "deepdisc-distill-checkpoint"
#: Gauss-Hermite nodes per teacher component of the distillation cross-entropy.
GAUSS_HERMITE_NODES = 8


@dataclass
class DistillData:
    """The distillation tiles, their catalog targets and the teacher's mixture of every target box.

    Attributes
    ----------
    images, segmaps : ndarray
        All tiles of the distillation files, in order.
    targets : list of dict
        `tile_targets` of every tile (boxes, object_id, redshift, ebv).
    teacher : list of Mixture
        Per tile, the ensemble's mixture of each target box, row for row with ``targets``.
    sky_sigma : ndarray (C,)
        Per-band sky noise (the noise augmentation).
    """

    images: np.ndarray
    segmaps: np.ndarray
    targets: list
    teacher: list
    sky_sigma: np.ndarray

    @property
    def n_objects(self) -> int:
        """Target boxes over all tiles."""
        return sum(len(t["boxes"]) for t in self.targets)


def distillation_data(teacher: EnsemblePredictor, tilesets: list[TileSet], *, batch_size: int, seed: int = 0,
                      progress: bool = True) -> DistillData:
    """Check the tiles against the model, compute their targets and the teacher's mixtures of every box.

    Raises
    ------
    ModelError
        A TileSet whose bands or pixel scale differ from the model's (naming both).
    ConfigError
        TileSets of different tile shapes.
    """
    for ts in tilesets:
        teacher.check_compatible(ts.bands, ts.pixel_scale, data_name=str(ts.source))
    shapes = {ts.tile_shape for ts in tilesets}
    if len(shapes) != 1:
        raise ConfigError(f"distillation tiles must share one tile shape, got {sorted(shapes)} in "
                          f"{', '.join(str(ts.source) for ts in tilesets)}")
    images = np.concatenate([ts.images for ts in tilesets])
    segmaps = np.concatenate([ts.segmaps for ts in tilesets])
    targets = [t for ts in tilesets for t in tile_targets(ts)]
    mixtures = teacher_mixtures(teacher, images, targets, batch_size=batch_size, progress=progress)
    sky = band_statistics(images, segmaps, seed=seed).sky_sigma
    return DistillData(images, segmaps, targets, mixtures, sky)


@torch.no_grad()
def teacher_mixtures(teacher: EnsemblePredictor, images: np.ndarray, targets: list[dict], *, batch_size: int,
                     progress: bool = True) -> list[Mixture]:
    """The ensemble's mixture of every target box (eval mode, unaugmented tiles), one `Mixture` per tile."""
    n_members = len(teacher.members)
    per_member: list[list[Mixture]] = [[] for _ in range(n_members)]
    n = len(targets)
    bar = tqdm(total=n * n_members, unit="tile", desc="teacher", disable=not progress, leave=False)
    for m, model in teacher.networks():  # one member's network at a time
        model.eval()
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            enc = model.encode(torch.from_numpy(np.ascontiguousarray(images[a:b], dtype=np.float32)).to(
                teacher.device))
            boxes = [torch.from_numpy(targets[k]["boxes"]) for k in range(a, b)]
            params = model.redshift(enc, boxes, [torch.from_numpy(targets[k]["ebv"]) for k in range(a, b)])
            arrays = [p.to("cpu", torch.float64).numpy() for p in params]
            start = 0
            for k in range(a, b):
                stop = start + len(targets[k]["boxes"])
                per_member[m].append(Mixture(*(x[start:stop] for x in arrays)))
                start = stop
            bar.update(b - a)
    bar.close()
    return [Mixture.combine([per_member[m][k] for m in range(n_members)], teacher.weights)
            for k in range(n)]


def mixture_cross_entropy(teacher: MixtureParams, student: MixtureParams, *,
                          nodes: int = GAUSS_HERMITE_NODES) -> torch.Tensor:
    """``-int p(z) log q(z) dz`` per object, p the teacher's mixture and q the student's (Gauss-Hermite).

    Parameters
    ----------
    teacher : MixtureParams
        (N, J) tensors, weights summing to 1 per row.
    student : MixtureParams
        (N, K) tensors.
    nodes : int
        Quadrature nodes per teacher component.

    Returns
    -------
    Tensor (N,)
        The cross-entropy (nats); its minimum over q is p's entropy, reached at q = p.
    """
    x, h = np.polynomial.hermite.hermgauss(nodes)
    dtype, device = student.means.dtype, student.means.device
    x = torch.as_tensor(x, dtype=dtype, device=device)
    h = torch.as_tensor(h / math.sqrt(math.pi), dtype=dtype, device=device)
    w, mu, sd = (t.to(device=device, dtype=dtype) for t in teacher)
    z = (mu[:, :, None] + math.sqrt(2.0) * sd[:, :, None] * x).flatten(1)  # (N, J * nodes)
    q = MixtureParams(*(t[:, None, :] for t in student))
    log_q = mixture_log_prob(q, z).view(*mu.shape, nodes)
    return -(w[:, :, None] * h * log_q).sum(dim=(1, 2))


def mixture_kl(teacher: MixtureParams, student: MixtureParams, *, nodes: int = GAUSS_HERMITE_NODES) -> torch.Tensor:
    """The KL divergence teacher || student per object (nats).

    `mixture_cross_entropy` less the teacher's entropy, both by the same quadrature.
    """
    return (mixture_cross_entropy(teacher, student, nodes=nodes)
            - mixture_cross_entropy(teacher, teacher, nodes=nodes))


@torch.no_grad()
def distillation_gap(model: DeepDiscRCNN, data: DistillData, *, batch_size: int, device) -> dict:
    """How far the student (eval mode, unaugmented tiles) is from the teacher, over every target box.

    Returns
    -------
    dict
        ``kl``: mean KL divergence teacher || student (nats, Gauss-Hermite); ``dzmean``: mean |zmean_student -
        zmean_teacher|; ``n_objects``.
    """
    was_training = model.training
    model.eval()
    kl, dz = [], []
    for a in range(0, len(data.targets), batch_size):
        idx = range(a, min(a + batch_size, len(data.targets)))
        enc = model.encode(torch.from_numpy(np.ascontiguousarray(data.images[idx.start:idx.stop],
                                                                 dtype=np.float32)).to(device))
        student = model.redshift(enc, [torch.from_numpy(data.targets[k]["boxes"]) for k in idx],
                                 [torch.from_numpy(data.targets[k]["ebv"]) for k in idx])
        teacher = _teacher_params(data, idx, device)
        if len(teacher.means) == 0:
            continue
        student = MixtureParams(*(t.double() for t in student))
        kl.append(mixture_kl(teacher, student))
        s = Mixture(*(t.cpu().numpy() for t in student))
        t = Mixture(*(p.cpu().numpy() for p in teacher))
        dz.append(np.abs(s.mean() - t.mean()))
    model.train(was_training)
    if not kl:
        return {"kl": math.nan, "dzmean": math.nan, "n_objects": 0}
    return {"kl": float(torch.cat(kl).mean()), "dzmean": float(np.concatenate(dz).mean()),
            "n_objects": int(sum(len(d) for d in dz))}


def _teacher_params(data: DistillData, tiles, device) -> MixtureParams:
    parts = [data.teacher[k] for k in tiles]
    return MixtureParams(*(torch.from_numpy(np.concatenate([getattr(p, f) for p in parts])).to(device)
                           for f in Mixture._fields))


def _distill_epoch(model: DeepDiscRCNN, data: DistillData, settings: TrainSettings, distill: DistillSettings,
                   epoch: int, seed: int, optimizer, device, bar) -> dict:
    """One pass over the tiles: detection losses + distillation cross-entropy (+ spec-z NLL), one step a batch."""
    seed_e = epoch_seed(seed, epoch)
    rng = np.random.default_rng(seed_e)
    torch.manual_seed(seed_e)
    order = np.random.default_rng([seed_e, 1]).permutation(len(data.targets))
    lr = learning_rate_at(epoch, settings)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    model.redshift_head.dropout = distill.distill_head_dropout
    sums: dict[str, float] = {}
    n_done = n_skipped = 0
    for a in range(0, len(order), settings.batch_size):
        batch = order[a:a + settings.batch_size]
        images, targets = make_batch(data.images, data.segmaps, data.targets, batch, augment=settings.augmentation,
                                     rng=rng, sky_sigma=data.sky_sigma)
        targets = targets_to_device(targets, device)
        enc = model.encode(images.to(device))
        proposals, rpn_losses = model.rpn(enc.images, enc.features, targets)
        _, roi_losses = model.roi_heads(enc.features, proposals, enc.images.image_sizes, targets)
        every = [{**t, "redshift": torch.nan_to_num(t["redshift"], nan=-1.0)} for t in targets]  # keep all boxes
        inputs = model.redshift_inputs(enc, every, grad_scale=settings.redshift_backbone_grad)
        student = model.redshift_head(inputs.features, inputs.extra)
        teacher = _teacher_params(data, batch, device)
        losses = {**rpn_losses, **roi_losses}
        losses["loss_distill"] = (mixture_cross_entropy(teacher, student).mean() if len(teacher.means)
                                  else student.means.sum() * 0.0)
        z = torch.cat([t["redshift"] for t in targets]).to(student.means.dtype)
        losses["loss_redshift"] = mixture_nll(student, z)
        total = sum(v for k, v in losses.items() if k not in ("loss_distill", "loss_redshift"))
        total = total + losses["loss_distill"] + distill.distill_specz_weight * losses["loss_redshift"]
        optimizer.zero_grad(set_to_none=True)
        if not bool(torch.isfinite(total)):
            n_skipped += 1
            bar.update(1)
            continue
        total.backward()
        if settings.clip_grad_norm > 0:
            for group in optimizer.param_groups:
                torch.nn.utils.clip_grad_norm_(group["params"], settings.clip_grad_norm)
        optimizer.step()
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(total.detach())
        n_done += 1
        bar.update(1)
        bar.set_postfix(distill=f"{float(losses['loss_distill'].detach()):.3f}")
    if n_skipped:
        log.warning("distillation epoch %d: skipped %d batch(es) with a non-finite loss", epoch, n_skipped)
    record = {key: value / max(n_done, 1) for key, value in sums.items()}
    record.update(epoch=epoch, lr=lr, skipped=n_skipped)
    return record



def distill_ensemble(artifact: dict, tilesets: list[TileSet], settings: TrainSettings, distill: DistillSettings, *,
                     seed: int = 0, checkpoint: Path | None = None, resume: bool = False,
                     device: torch.device = torch.device("cpu"), progress: bool = True, name: str = "model") -> dict:
    """Distil a model artifact's ensemble into one network on ``tilesets``; return the student's artifact.

    Parameters
    ----------
    artifact : dict
        The ensemble (`rail.deepdisc.model.artifact.load_artifact`).
    tilesets : list of TileSet
        Distillation tiles (the training field; unlabelled tiles welcome: the teacher labels every object).
    settings : TrainSettings
        Optimisation settings (``epochs`` and ``learning_rate`` are the distillation's).
    distill : DistillSettings
        ``distill_specz_weight``.
    seed : int
        Every random draw of epoch ``e`` derives from ``(seed, e)``.
    checkpoint : Path, optional
        Rewritten atomically after every epoch; with ``resume`` an existing one is continued.
    device : torch.device
    progress : bool
        Progress bars.
    name : str
        How messages name the model (its file).

    Returns
    -------
    dict
        A one-member artifact of the same architecture (``deepdisc estimate`` runs it as it runs any model);
        ``provenance["distillation"]`` holds the teacher-student gap (mean KL and mean |dzmean| over the
        distillation objects) before and after.
    """
    member_components = int(artifact["config"]["n_components"])
    n_components = distill.distill_components or member_components
    if n_components < member_components:  # before the teacher's labelling, which takes minutes on a field
        raise ConfigError(f"distill_components = {n_components} is fewer than the members' {member_components} "
                          f"components of {name}: 0 keeps theirs, more split them")
    teacher = EnsemblePredictor.from_artifact(artifact, device=str(device), name=name)
    data = distillation_data(teacher, tilesets, batch_size=settings.batch_size, seed=seed, progress=progress)
    first = teacher.detector  # the highest-weight member
    scale = teacher.members.network(first).redshift_head.std_scale.clone()  # with the ensemble's factor, if any
    del teacher
    student = model_from_artifact(artifact, first, device=device)
    student.redshift_head.std_scale.copy_(scale)
    student.redshift_head.split_components(n_components, generator=torch.Generator().manual_seed(seed))
    n_labelled = sum(int(np.isfinite(t["redshift"]).sum()) for t in data.targets)
    log.info("distilling %d member(s) of %s into member %d's network on %d tiles: %d objects (%d with spec-z)",
             len(artifact["members"]), name, first, len(data.targets), data.n_objects, n_labelled)
    before = distillation_gap(student, data, batch_size=settings.batch_size, device=device)
    student.train()
    optimizer = make_optimizer(student, settings)
    state = MemberState(student, optimizer)
    fingerprint = {"training": settings.to_dict(), "specz_weight": distill.distill_specz_weight,
                   "head_dropout": distill.distill_head_dropout, "components": n_components, "seed": seed,
                   "n_tiles": len(data.targets), "n_objects": data.n_objects,
                   "teacher": [float(m["weight"]) for m in artifact["members"]]}
    if resume and checkpoint is not None and checkpoint.exists():
        state.load_checkpoint(read_checkpoint(checkpoint, kind=DISTILL_CHECKPOINT_KIND, fingerprint=fingerprint,
                                              description="DeepDISC distillation checkpoint", model=student,
                                              optimizer=optimizer))
        log.info("distillation: resumed after epoch %d from %s", state.epoch, checkpoint)
    n_batches = math.ceil(len(data.targets) / settings.batch_size)
    bar = tqdm(total=settings.epochs * n_batches, initial=state.epoch * n_batches, unit="batch", desc="distill",
               disable=not progress, leave=False)
    while state.epoch < settings.epochs:
        record = _distill_epoch(student, data, settings, distill, state.epoch, seed, optimizer, device, bar)
        state.history.append(record)
        state.epoch += 1
        state.done = state.epoch >= settings.epochs
        log.info("distillation epoch %d: cross-entropy %.4f, detection %.4f", record["epoch"],
                 record.get("loss_distill", math.nan), record.get("loss", math.nan) - record.get("loss_distill", 0))
        if checkpoint is not None:
            ckpt = state.to_checkpoint(first, seed, fingerprint)
            save_checkpoint({**ckpt, "kind": DISTILL_CHECKPOINT_KIND}, checkpoint)
    bar.close()
    after = distillation_gap(student, data, batch_size=settings.batch_size, device=device)
    log.info("student vs ensemble over %d objects: KL %.4f -> %.4f nats, |dzmean| %.4f -> %.4f", after["n_objects"],
             before["kl"], after["kl"], before["dzmean"], after["dzmean"])
    source = artifact["members"][first]
    member = {"state_dict": {k: v.detach().cpu().clone() for k, v in student.state_dict().items()},
              "val_log_likelihood": float(source.get("val_log_likelihood", math.nan)), "weight": 1.0,
              "seed": int(seed), "best_epoch": settings.epochs - 1,
              "std_scale": float(student.redshift_head.std_scale), "history": state.history}
    provenance = {
        "distilled_from": {"source": name, "members": len(artifact["members"]), "initial_member": first,
                           "provenance": artifact.get("provenance") or {}},
        "distillation": {"tiles": [str(ts.source) for ts in tilesets], "n_tiles": len(data.targets),
                         "n_objects": data.n_objects, "n_labelled_objects": n_labelled, "epochs": settings.epochs,
                         "learning_rate": settings.learning_rate, "specz_weight": distill.distill_specz_weight,
                         "head_dropout": distill.distill_head_dropout, "components": n_components,
                         "gap_before": before, "gap_after": after},
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {"config": {**artifact["config"], "n_components": n_components}, "members": [member],
            "provenance": provenance}
