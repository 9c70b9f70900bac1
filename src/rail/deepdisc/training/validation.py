"""Validation of a training member: redshift likelihood, detection loss, the kept-epoch objective, widths.

`validation_scores` measures, on a member's validation tiles without augmentation, the mean log-likelihood of
the labelled objects' spec-z under their mixtures (ground-truth boxes), its standard error, and the detection
losses (anchors and proposals sampled from a fixed seed in a forked random state, so validation is
deterministic and leaves the training streams untouched); with ``fit_widths`` also the same likelihood after
the width factor that maximises it (what the member will predict once `calibrate_widths` has run).
`validation_objective` combines them as the training loss does; `rail.deepdisc.training.selection` keeps the
latest epoch within one standard error of its lowest. `calibrate_widths` fits the redshift head's width factor
(``std_scale``) on the same objects after training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rail.deepdisc.model.network import DeepDiscRCNN
from rail.deepdisc.model.redshift_head import MixtureParams, fit_std_scale, mixture_log_prob
from rail.deepdisc.training.data import MemberData, make_batch, targets_to_device
from rail.deepdisc.training.ddp import DistContext

__all__ = [
    "ValidationScores",
    "validation_scores",
    "validation_log_likelihood",
    "validation_objective",
    "calibrate_widths",
    "held_out_mixtures",
    "fitted_widths",
    "mean_and_se",
    "MIN_CALIBRATION_OBJECTS",
]

#: Fewest labelled validation objects for which the width calibration is fitted (else the factor stays 1).
MIN_CALIBRATION_OBJECTS = 10
_VALIDATION_SEED = 0  # anchor/proposal sampling of the validation detection losses


@torch.no_grad()
def validation_log_likelihood(
    model: DeepDiscRCNN, data: MemberData, *, batch_size: int, device: torch.device
) -> tuple[float, int]:
    """Mean log-likelihood of the validation objects' spec-z under their mixtures (ground-truth boxes).

    Returns
    -------
    mean_log_likelihood : float
        Per labelled object (nats).
    n_objects : int
        Number of labelled validation objects.
    """
    scores = validation_scores(model, data, batch_size=batch_size, device=device, detection=False)
    return scores.log_likelihood, scores.n_objects


@dataclass(frozen=True)
class ValidationScores:
    """What `validation_scores` measures on the validation tiles.

    Attributes
    ----------
    log_likelihood : float
        Mean log-likelihood per labelled object of its spec-z (nats; NaN without labelled objects).
    log_likelihood_se : float
        Standard error of that mean (NaN with fewer than two objects).
    n_objects : int
        Number of labelled validation objects.
    detection_loss : float
        Mean over validation batches of the summed detection losses (RPN objectness and box regression,
        box classifier and regression, mask), as in training; NaN when not measured.
    calibrated_log_likelihood, calibrated_log_likelihood_se : float
        The mean log-likelihood and its standard error with every width times ``width_factor`` (NaN when not
        measured or without labelled objects).
    width_factor : float
        The factor maximising the validation likelihood (`fit_std_scale`; 1 with fewer than
        `MIN_CALIBRATION_OBJECTS` objects or when not fitted).
    """

    log_likelihood: float
    log_likelihood_se: float
    n_objects: int
    detection_loss: float
    calibrated_log_likelihood: float = math.nan
    calibrated_log_likelihood_se: float = math.nan
    width_factor: float = 1.0


def validation_scores(
    model: DeepDiscRCNN,
    data: MemberData,
    *,
    batch_size: int,
    device: torch.device,
    detection: bool = True,
    fit_widths: bool = False,
) -> ValidationScores:
    """Redshift log-likelihood and (optionally) detection loss on the validation tiles, without augmentation.

    The detection losses sample anchors and proposals as in training; those draws come from a fixed seed in a
    forked random state, so validation is deterministic and leaves the training random streams untouched.
    With ``fit_widths`` the likelihood is also measured after the best width factor (`fit_std_scale`).
    """
    mixtures: list[tuple[MixtureParams, torch.Tensor]] = []
    det_total, n_batches = 0.0, 0
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_VALIDATION_SEED)
        for enc, targets, params, z in _validation_batches(model, data, batch_size=batch_size, device=device):
            if len(z):
                mixtures.append((MixtureParams(*(t.double().cpu() for t in params)), z.double().cpu()))
            if detection:
                det_total += _detection_loss(model, enc, targets)
                n_batches += 1
    params, z = _join_mixtures(mixtures, model.redshift_head.n_components, torch.float64)
    ll = mixture_log_prob(params, z).numpy()
    scores = {"n_objects": len(ll), "detection_loss": det_total / n_batches if n_batches else math.nan}
    mean, se = mean_and_se(ll)
    if fit_widths and len(z):
        factor, calibrated = fitted_widths(params, z)
        cal_mean, cal_se = mean_and_se(calibrated)
        scores.update(calibrated_log_likelihood=cal_mean, calibrated_log_likelihood_se=cal_se, width_factor=factor)
    return ValidationScores(log_likelihood=mean, log_likelihood_se=se, **scores)


def fitted_widths(params: MixtureParams, z: torch.Tensor) -> tuple[float, np.ndarray]:
    """Maximum-likelihood width factor (1 below `MIN_CALIBRATION_OBJECTS` objects), per-object log-likelihoods.

    The width calibration of every model with a `RedshiftMixtureHead` (DeepDISC's members, the catalog MDN).
    """
    params = MixtureParams(*(t.double() for t in params))
    factor = fit_std_scale(params, z) if len(z) >= MIN_CALIBRATION_OBJECTS else 1.0
    scaled = MixtureParams(params.weights, params.means, params.stds * factor)
    return factor, mixture_log_prob(scaled, z.double()).numpy()


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (NaN when there are too few values)."""
    mean = float(values.mean()) if len(values) else math.nan
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return mean, se


def held_out_mixtures(
    model: DeepDiscRCNN, data: MemberData, *, batch_size: int, device: torch.device
) -> tuple[MixtureParams, torch.Tensor]:
    """Mixtures (ground-truth boxes, current widths) and spec-z of the labelled objects of ``data.val``, on the CPU.

    Returns
    -------
    params : MixtureParams
        N mixtures (N = 0 without labelled objects).
    z : Tensor (N,)
        Their spec-z.
    """
    batches = [(MixtureParams(*(t.cpu() for t in p)), z.cpu())
               for _, _, p, z in _validation_batches(model, data, batch_size=batch_size, device=device) if len(z)]
    return _join_mixtures(batches, model.redshift_head.n_components, torch.float32)


def _join_mixtures(batches: list[tuple[MixtureParams, torch.Tensor]], n_components: int,
                   empty_dtype: torch.dtype) -> tuple[MixtureParams, torch.Tensor]:
    """One (mixtures, spec-z) pair from per-batch pairs; zero rows of ``empty_dtype`` when there are none."""
    if not batches:
        return (MixtureParams(*(torch.zeros(0, n_components, dtype=empty_dtype) for _ in range(3))),
                torch.zeros(0, dtype=empty_dtype))
    fields = zip(*(p for p, _ in batches))
    return MixtureParams(*(torch.cat(parts) for parts in fields)), torch.cat([z for _, z in batches])


def _validation_batches(model: DeepDiscRCNN, data: MemberData, *, batch_size: int, device: torch.device):
    """Yield ``(encoded, targets, mixtures, spec-z)`` per validation batch, in eval mode without gradients.

    Mixtures are on the ground-truth boxes of the labelled objects; ``targets`` (on ``device``) hold every
    object. The model's training mode is restored when the generator ends.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for k in range(0, len(data.val), batch_size):
                images, targets = make_batch(
                    data.images, data.segmaps, data.targets, data.val[k : k + batch_size], augment=None, rng=None
                )
                targets = targets_to_device(targets, device)
                enc = model.encode(images.to(device))
                keep = [~torch.isnan(t["redshift"]) for t in targets]
                params = model.redshift(
                    enc, [t["boxes"][m] for t, m in zip(targets, keep)], [t["ebv"][m] for t, m in zip(targets, keep)]
                )
                z = torch.cat([t["redshift"][m] for t, m in zip(targets, keep)])
                yield enc, targets, params, z.to(params.means.dtype)
    finally:
        model.train(was_training)


def _detection_loss(model: DeepDiscRCNN, enc, targets: list[dict]) -> float:
    """Summed RPN and RoI losses of one encoded batch (RPN and RoI heads briefly in training mode)."""
    model.rpn.train()
    model.roi_heads.train()
    try:
        proposals, rpn_losses = model.rpn(enc.images, enc.features, targets)
        _, roi_losses = model.roi_heads(enc.features, proposals, enc.images.image_sizes, targets)
    finally:
        model.rpn.eval()
        model.roi_heads.eval()
    return float(sum(float(v) for v in {**rpn_losses, **roi_losses}.values()))


def validation_objective(detection_loss: float, redshift_nll: float, redshift_loss_weight: float) -> float:
    """The training objective on the validation tiles: the criterion of the best epoch and early stopping.

    ``detection_loss + redshift_loss_weight * redshift_nll``, the same weighting as the training loss, so the
    kept epoch is one where both detection and redshifts are good (the redshift NLL alone can favour an early
    epoch where detection still lags). A term that is not finite (no labelled or no validation objects) is left
    out; NaN when both are.
    """
    terms = [detection_loss, redshift_loss_weight * redshift_nll]
    finite = [t for t in terms if math.isfinite(t)]
    return float(sum(finite)) if finite else math.nan


def calibrate_widths(
    model: DeepDiscRCNN,
    data: MemberData,
    *,
    batch_size: int,
    device: torch.device,
    dist_ctx: DistContext = DistContext(),
) -> tuple[float, float]:
    """Fit and set the head's width factor (``redshift_head.std_scale``) on the validation objects.

    The factor maximises the validation log-likelihood (`fit_std_scale`); with fewer than
    `MIN_CALIBRATION_OBJECTS` labelled validation objects it stays 1. Rank 0 fits it, every rank sets it.

    Returns
    -------
    scale : float
        The factor now in the model.
    log_likelihood : float
        Mean validation log-likelihood per object with it (NaN without labelled validation objects).
    """
    head = model.redshift_head
    head.std_scale.fill_(1.0)
    scale, ll = 1.0, math.nan
    if dist_ctx.is_main:
        params, z = held_out_mixtures(model, data, batch_size=batch_size, device=device)
        if len(z):
            scale, per_object = fitted_widths(params, z)
            ll = float(per_object.mean())
    scale, ll = dist_ctx.broadcast([scale, ll])
    head.std_scale.fill_(scale)
    return float(scale), float(ll)
