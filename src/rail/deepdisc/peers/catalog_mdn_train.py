"""Training the catalog MDN (`train_catalog_mdn`): DeepDISC's member loop on catalog features.

What each step reuses from DeepDISC's training (`rail.deepdisc.training`), so that only the inputs differ:

- members: seeds `member_seed`, random validation splits `partition_tiles` (of labelled objects here, of
  labelled tiles there), optional calibration objects held out from every member (`calibration_tiles`),
  weights `member_weights` of the validation likelihoods, the ensemble's minimum-CRPS width factor
  (`ensemble_std_scale`);
- one member: the head initialised at the label distribution (`RedshiftMixtureHead.init_from_labels`), AdamW
  with weight decay, the cosine learning-rate schedule (`learning_rate_at`), dropout in the hidden layers,
  gradient clipping, the mixture NLL (`mixture_nll`); after every epoch the validation NLL after that epoch's
  best width factor (`fitted_widths`), and the kept epoch and early stopping of `keep_or_stop` (the latest epoch
  within one standard error of the lowest; ``patience``); finally the widths calibrated on the validation
  objects.

Every random draw of epoch ``e`` of a member (object order, dropout) is seeded from ``(member seed, e)``
(`epoch_seed`), so training is reproducible.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.redshift_head import EBV_SCALE, MixtureParams, mixture_log_prob
from rail.deepdisc.options import values_of
from rail.deepdisc.peers.catalog_mdn import (
    CATALOG_MDN_FORMAT,
    CATALOG_MDN_VERSION,
    CatalogMdnSettings,
    build_head,
    feature_statistics,
)
from rail.deepdisc.training.calibration import calibration_record, calibration_tiles, ensemble_std_scale
from rail.deepdisc.training.checkpoint import MemberState
from rail.deepdisc.training.data import partition_tiles
from rail.deepdisc.training.ensemble import member_seed, member_weights
from rail.deepdisc.training.epoch import epoch_seed
from rail.deepdisc.training.head_finetune import head_pass
from rail.deepdisc.training.optimiser import learning_rate_at
from rail.deepdisc.training.selection import cpu_snapshot, keep_or_stop
from rail.deepdisc.training.validation import fitted_widths, mean_and_se

__all__ = ["MIN_LABELS", "train_catalog_mdn"]

log = logging.getLogger(__name__)

#: Fewest labelled objects the catalog MDN trains on (one to train, one to validate, one more).
MIN_LABELS = 3


def train_catalog_mdn(
    features: np.ndarray,
    ebv: np.ndarray,
    z: np.ndarray,
    settings: CatalogMdnSettings,
    *,
    feature_config: dict,
    name: str = "training catalog",
) -> dict:
    """Train the ensemble on the labelled objects (finite ``z`` >= 0) and return the model (plain data, tensors).

    Parameters
    ----------
    features : ndarray (N, F)
        `rail.deepdisc.peers.catalog_mdn.catalog_features` of the catalog.
    ebv : ndarray (N,)
        Milky-Way E(B-V), mag.
    z : ndarray (N,)
        Spec-z (NaN = none).
    settings : CatalogMdnSettings
    feature_config : dict
        How the features were made (``bands``, ``ref_band``, ``mag_limit``, ``deredden``): stored in the model
        so the estimator makes the same ones.
    name : str
        How messages name the catalog.

    Returns
    -------
    dict
        ``format``, ``version``, ``config``, ``members``, ``provenance`` (see `rail.deepdisc.peers.catalog_mdn`).

    Raises
    ------
    ConfigError
        With fewer than `MIN_LABELS` labelled objects, or inputs of different lengths.
    """
    features, ebv, z = (np.asarray(a, float) for a in (features, ebv, z))
    if not len(features) == len(ebv) == len(z):
        raise ConfigError(f"{name}: features, ebv and redshift have different lengths "
                          f"({len(features)}, {len(ebv)}, {len(z)})")
    labelled = np.isfinite(z) & (z >= 0)
    if labelled.sum() < MIN_LABELS:
        raise ConfigError(f"{name}: {int(labelled.sum())} object(s) with a spec-z; the catalog MDN needs at least "
                          f"{MIN_LABELS} (to train and to validate on)")
    x, e, zl = features[labelled], ebv[labelled], z[labelled]
    center, scale = feature_statistics(x)
    config = {**feature_config, "feature_center": center.tolist(), "feature_scale": scale.tolist(),
              "n_components": settings.n_components, "head_hidden": list(settings.head_hidden),
              "training": values_of(settings)}
    inputs = torch.from_numpy(np.column_stack([(x - center) / scale, e / EBV_SCALE])).float()
    zt = torch.from_numpy(zl).float()
    objects = np.arange(len(zl))
    cal = calibration_tiles(objects, settings.calibration_fraction if settings.calibrate_widths else 0.0,
                            settings.seed)
    pool = np.setdiff1d(objects, cal)
    members = []
    for m in tqdm(range(settings.members), desc="catalog MDN", unit="member", disable=not settings.progress_bar,
                  leave=False):
        seed_m = member_seed(settings.seed, m)
        train, val = partition_tiles(len(zl), pool, val_fraction=settings.val_fraction, seed=seed_m)
        member, head = _train_member(config, inputs, zt, np.setdiff1d(train, cal), val, settings, seed_m)
        if len(cal):
            with torch.no_grad():
                member["calibration"] = calibration_record(head(inputs[cal, :0], inputs[cal]), zt[cal])
        log.info("catalog MDN member %d: kept epoch %d, widths x %.3f, validation log-likelihood %.3f (%d objects)",
                 m, member["best_epoch"], member["std_scale"], member["val_log_likelihood"], len(val))
        members.append(member)
    for member, w in zip(members, member_weights([m["val_log_likelihood"] for m in members])):
        member["weight"] = float(w)
    config["ensemble_std_scale"], n_cal = ensemble_std_scale(members, name="catalog MDN")
    if n_cal:
        log.info("catalog MDN: ensemble widths x %.3f on %d calibration objects", config["ensemble_std_scale"], n_cal)
    provenance = {"n_labelled": int(labelled.sum()), "n_calibration": len(cal),
                  "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return {"format": CATALOG_MDN_FORMAT, "version": CATALOG_MDN_VERSION, "config": config, "members": members,
            "provenance": provenance}


def _train_member(config: dict, inputs: torch.Tensor, z: torch.Tensor, train: np.ndarray, val: np.ndarray,
                  settings: CatalogMdnSettings, seed: int):
    """One member to early stopping or ``settings.epochs``; its record and its (kept, calibrated) head."""
    torch.manual_seed(seed)
    head = build_head(config)
    head.init_from_labels(z[train].double())
    schedule = settings.train_settings()
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    state = MemberState(head, optimizer)
    while not state.done:
        record = _run_epoch(head, optimizer, inputs, z, train, settings, schedule, state.epoch, seed)
        ll, se, factor, ll_cal, se_cal = _validation(head, inputs[val], z[val], settings.calibrate_widths)
        record.update(val_nll=-ll, n_val=len(val))
        if settings.calibrate_widths and math.isfinite(ll_cal):
            record.update(val_nll_calibrated=-ll_cal, val_width_factor=factor)
            ll, se = ll_cal, se_cal
        keep_or_stop(state, head, record, -ll, -ll, se if math.isfinite(se) else 0.0, epochs=settings.epochs,
                     patience=settings.patience)
    head.load_state_dict(state.best_state)
    head.eval()
    val_ll, scale = -state.best_nll, 1.0
    if settings.calibrate_widths and len(val):
        with torch.no_grad():
            scale, per_object = fitted_widths(head(inputs[val, :0], inputs[val]), z[val])
        head.std_scale.fill_(scale)
        val_ll = float(per_object.mean())
    member = {"state_dict": cpu_snapshot(head), "val_log_likelihood": val_ll, "seed": int(seed),
              "best_epoch": int(state.best_epoch), "std_scale": float(scale), "history": state.history}
    return member, head


def _run_epoch(head, optimizer, inputs, z, train, settings: CatalogMdnSettings, schedule, epoch: int,
               seed: int) -> dict:
    """One pass over the member's training objects in a random order; the mean training NLL."""
    seed_e = epoch_seed(seed, epoch)
    torch.manual_seed(seed_e)
    order = np.random.default_rng(seed_e).permutation(train)
    lr = learning_rate_at(epoch, schedule)
    loss = head_pass(head, inputs[:, :0], inputs, z, order, optimizer, lr=lr, dropout=settings.head_dropout,
                     batch_size=settings.batch_size, clip_grad_norm=settings.clip_grad_norm)
    return {"epoch": epoch, "lr": lr, "loss": loss}


@torch.no_grad()
def _validation(head, inputs: torch.Tensor, z: torch.Tensor, fit_widths: bool):
    """Mean validation log-likelihood and its standard error, raw and after the best width factor."""
    params = MixtureParams(*(t.double() for t in head(inputs[:, :0], inputs)))
    mean, se = mean_and_se(mixture_log_prob(params, z.double()).numpy())
    if not fit_widths or not len(z):
        return mean, se, 1.0, math.nan, math.nan
    factor, per_object = fitted_widths(params, z)
    return (mean, se, factor, *mean_and_se(per_object))
