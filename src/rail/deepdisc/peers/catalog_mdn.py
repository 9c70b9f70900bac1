"""The catalog MDN: DeepDISC's redshift head on catalog photometry instead of pixels.

Issue 18 asks whether the images earn their keep. FlexZBoost and kNN answer it with other learners; the catalog
MDN answers it with the same learner: DeepDISC's mixture-density head (`RedshiftMixtureHead`: the same MLP,
hidden widths, components, softplus means, width floor, dropout, E(B-V) input), trained on the same spec-z with
the same loss (`mixture_nll`), the same ensemble of members on random validation splits weighted by their
validation likelihood, the same kept-epoch rule and early stopping (`rail.deepdisc.training.selection`) and the
same width calibration (`fitted_widths`, optionally the ensemble's minimum-CRPS factor). Its inputs are what
FlexZBoost reads (`catalog_features`: the reference-band magnitude and the colours of neighbouring bands, after
`ml_table` removed Milky-Way extinction and set non-detections and unobserved bands to ``mag_limit``), each
scaled by its median and MAD over the training objects and given to the head as inputs beside E(B-V) (the head
is built with no pooled-feature block, so no LayerNorm mixes the features of one object). So the only difference
from DeepDISC is pixels against catalog photometry.

The model file (`save_catalog_mdn`, `load_catalog_mdn`, `CatalogMdnModelHandle`) holds only tensors and plain
data (``torch.load(weights_only=True)``)::

    format    "deepdisc-catalog-mdn"        version   1
    config    bands, ref_band, mag_limit, deredden, feature_center, feature_scale, n_components, head_hidden,
              training (the options), ensemble_std_scale
    members   list of dict: state_dict, weight, val_log_likelihood, std_scale, best_epoch, seed, history,
              optionally calibration
    provenance  n_labelled, created_utc

Training is in `rail.deepdisc.peers.catalog_mdn_train`; the RAIL stages are
`rail.estimation.algos.deepdisc_ml.CatalogMdnInformer` / `CatalogMdnEstimator`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rail.core.data import ModelHandle

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ConfigError, DeepDiscWarning, ModelError
from rail.deepdisc.model.config import NetworkConfig
from rail.deepdisc.options import PROGRESS_BAR, OptionSet, check_fields, inherit
from rail.deepdisc.peers.catalog_ml import ml_table
from rail.deepdisc.training.settings import EnsembleSettings, TrainSettings

__all__ = [
    "CATALOG_MDN_FORMAT",
    "CATALOG_MDN_VERSION",
    "CatalogMdnSettings",
    "CATALOG_MDN_OPTIONS",
    "catalog_features",
    "catalog_mixtures",
    "feature_statistics",
    "build_head",
    "save_catalog_mdn",
    "load_catalog_mdn",
    "CatalogMdnModelHandle",
]

log = logging.getLogger(__name__)

CATALOG_MDN_FORMAT = "deepdisc-catalog-mdn"
CATALOG_MDN_VERSION = 1
#: Smallest feature scale (mag): a feature constant over the training objects is divided by this instead of 0.
_MIN_SCALE = 1e-3
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class CatalogMdnSettings:
    """Training options of the catalog MDN (`CatalogMdnInformer`): DeepDISC's own, declared once there.

    The ensemble, head and optimisation options are DeepDISC's (`EnsembleSettings`, `NetworkConfig`,
    `TrainSettings`: same names, meaning and defaults) except where one catalog object is not one tile:
    an epoch is one pass over a member's training objects in steps of ``batch_size`` objects, so the defaults
    of ``epochs``, ``batch_size`` and ``patience`` are the catalog's, and ``learning_rate`` defaults to the
    rate DeepDISC's head trains at (``learning_rate x head_lr_factor``).
    """

    members: int = inherit(EnsembleSettings, "members")
    val_fraction: float = inherit(EnsembleSettings, "val_fraction", help="fraction of the labelled objects each "
                                  "member holds out for validation")
    seed: int = inherit(EnsembleSettings, "seed")
    calibration_fraction: float = inherit(EnsembleSettings, "calibration_fraction", help="fraction of the "
                                          "labelled objects held out from every member to calibrate the "
                                          "ensemble's widths (0 = none)")
    n_components: int = inherit(NetworkConfig, "n_components")
    head_hidden: tuple[int, ...] = inherit(NetworkConfig, "head_hidden")
    head_dropout: float = inherit(TrainSettings, "head_dropout")
    epochs: int = inherit(TrainSettings, "epochs", default=300, help="passes over each member's training objects")
    batch_size: int = inherit(TrainSettings, "batch_size", default=32, help="labelled objects per optimisation "
                              "step")
    learning_rate: float = inherit(TrainSettings, "learning_rate", default=5e-4, help="initial learning rate "
                                   "(cosine decay; DeepDISC's head trains at learning_rate x head_lr_factor = "
                                   "5e-4)")
    weight_decay: float = inherit(TrainSettings, "weight_decay")
    patience: int = inherit(TrainSettings, "patience", default=40)
    calibrate_widths: bool = inherit(TrainSettings, "calibrate_widths")
    clip_grad_norm: float = inherit(TrainSettings, "clip_grad_norm")
    progress_bar: bool = PROGRESS_BAR.as_field()

    def __post_init__(self) -> None:
        check_fields(self)

    def train_settings(self) -> TrainSettings:
        """DeepDISC's `TrainSettings` with these values (its learning-rate schedule, selection rule)."""
        return TrainSettings(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                             weight_decay=self.weight_decay, patience=self.patience, head_dropout=self.head_dropout,
                             calibrate_widths=self.calibrate_widths, clip_grad_norm=self.clip_grad_norm)


#: Every training option of the catalog MDN (`CatalogMdnInformer`).
CATALOG_MDN_OPTIONS = OptionSet(CatalogMdnSettings)


def catalog_features(
    table: dict,
    bands: Sequence[str],
    *,
    ref_band: str,
    mag_limit: float,
    ebv_column: str = "ebv",
    deredden_mw: bool = True,
    name: str = "input catalog",
) -> tuple[np.ndarray, np.ndarray]:
    """The catalog MDN's inputs: FlexZBoost's features (reference magnitude, neighbouring colours) and E(B-V).

    Parameters
    ----------
    table : mapping of str -> ndarray (N,)
        Catalog columns ``mag_<BAND>``, ``magerr_<BAND>`` (and ``ebv_column``).
    bands : sequence of str
        Bands in wavelength order.
    ref_band : str
        Band whose magnitude is a feature (one of ``bands``).
    mag_limit : float
        Magnitude of non-detections and unobserved bands (`ml_table` with ``fill_missing``).
    ebv_column : str
        Milky-Way E(B-V) column ("" or absent: 0); NaN is taken as 0, with a warning.
    deredden_mw : bool
        Remove Milky-Way extinction from the magnitudes.
    name : str
        How messages name the table.

    Returns
    -------
    features : ndarray (N, len(bands))
        ``mag_<ref_band>`` then ``mag_<b_i> - mag_<b_i+1>``.
    ebv : ndarray (N,)

    Raises
    ------
    ConfigError
        If a band's columns are missing or ``ref_band`` is not a band.
    """
    from rail.estimation.algos.flexzboost import make_color_data

    bands = list(bands)
    if ref_band not in bands:
        raise ConfigError(f"{name}: ref_band {ref_band!r} is not one of the bands {' '.join(bands)}")
    try:
        t = ml_table(table, bands, mag_limit=mag_limit, ebv_column=ebv_column, deredden_mw=deredden_mw,
                     fill_missing=True)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None
    cols = [f"mag_{b}" for b in bands]
    features = np.asarray(make_color_data(t, cols, [f"magerr_{b}" for b in bands], f"mag_{ref_band}"), float)
    features = features.reshape(len(features), -1)
    n = len(features)
    ebv = np.asarray(table[ebv_column], float) if ebv_column and ebv_column in table else np.zeros(n)
    if np.isnan(ebv).any():
        warnings.warn(f"{name}: {int(np.isnan(ebv).sum())} object(s) without E(B-V) are given 0", DeepDiscWarning,
                      stacklevel=2)
        ebv = np.nan_to_num(ebv)
    return features, ebv


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD-based scale of each feature (a scale below 1e-3 mag becomes 1e-3)."""
    center = np.median(features, axis=0)
    scale = _MAD_TO_SIGMA * np.median(np.abs(features - center), axis=0)
    return center, np.maximum(scale, _MIN_SCALE)


def catalog_mixtures(model: dict, features: np.ndarray, ebv: np.ndarray):
    """The ensemble's Gaussian mixtures of N objects: the members' components side by side (as DeepDISC's).

    Each member's weights are multiplied by its ensemble weight and every width by the ensemble's factor
    (``config["ensemble_std_scale"]``, 1 unless fitted).

    Returns
    -------
    weights, means, stds : ndarray (N, members x n_components)
    """
    import torch

    from rail.deepdisc.model.redshift_head import EBV_SCALE

    cfg = model["config"]
    x = (features - np.asarray(cfg["feature_center"])) / np.asarray(cfg["feature_scale"])
    inputs = torch.from_numpy(np.column_stack([x, ebv / EBV_SCALE])).float()
    scale = float(cfg.get("ensemble_std_scale", 1.0))
    parts = []
    head = build_head(cfg)
    with torch.no_grad():
        for member in model["members"]:
            head.load_state_dict(member["state_dict"])
            p = head(inputs[:, :0], inputs)
            parts.append((p.weights.double().numpy() * float(member["weight"]), p.means.double().numpy(),
                          p.stds.double().numpy() * scale))
    return tuple(np.concatenate(arrays, axis=1) for arrays in zip(*parts))


def build_head(config: dict):
    """An untrained `RedshiftMixtureHead` of the model's architecture in eval mode: catalog features as inputs."""
    from rail.deepdisc.model.redshift_head import RedshiftMixtureHead

    n_inputs = len(config["feature_center"]) + 1  # the features, then E(B-V)
    head = RedshiftMixtureHead((), n_extra=n_inputs, n_components=int(config["n_components"]),
                               hidden=[int(h) for h in config["head_hidden"]])
    return head.eval()


def save_catalog_mdn(model: dict, path: str | os.PathLike) -> Path:
    """Write a catalog MDN model atomically (tensors and plain data; ``format`` and ``version`` filled in)."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": CATALOG_MDN_FORMAT, "version": CATALOG_MDN_VERSION, **model}, tmp)
    return path


def load_catalog_mdn(path: str | os.PathLike) -> dict:
    """Read a catalog MDN model with ``torch.load(weights_only=True)``.

    Raises
    ------
    ModelError
        If the file is missing, not a weights-only torch file, or not a catalog MDN model of a known version.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: not a weights-only catalog MDN model file ({first})") from None
    check_catalog_mdn(data, str(path))
    return data


def check_catalog_mdn(data: Any, name: str) -> None:
    """Raise `ModelError` naming ``name`` unless ``data`` is a catalog MDN model this package reads."""
    if not isinstance(data, dict) or data.get("format") != CATALOG_MDN_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"{name}: not a catalog MDN model (format {found!r}, expected {CATALOG_MDN_FORMAT!r})")
    if data.get("version") != CATALOG_MDN_VERSION:
        raise ModelError(f"{name}: catalog MDN model version {data.get('version')!r}; this package reads version "
                         f"{CATALOG_MDN_VERSION} (upgrade pz-rail-deepdisc or retrain)")
    missing = [k for k in ("bands", "ref_band", "feature_center", "feature_scale", "n_components", "head_hidden")
               if k not in data.get("config", {})]
    if missing or not data.get("members"):
        raise ModelError(f"{name}: incomplete catalog MDN model (missing {', '.join(missing) or 'members'})")


class CatalogMdnModelHandle(ModelHandle):
    """RAIL handle for a catalog MDN model (``.pt``), read with ``torch.load(weights_only=True)``."""

    suffix = "pt"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> dict:
        return load_catalog_mdn(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict:
        return load_catalog_mdn(path)

    @classmethod
    def _write(cls, data: dict, path: str, **kwargs: Any) -> None:
        save_catalog_mdn(data, path)
