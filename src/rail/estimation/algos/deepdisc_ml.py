"""Catalog machine-learning peers on NIRCam catalogs: FlexZBoost, kNN and DeepDISC's own head on the catalog.

`NIRCamFlexZBoostInformer`/`NIRCamFlexZBoostEstimator` and `NIRCamKNNInformer`/`NIRCamKNNEstimator` subclass the
upstream stages, unchanged in what they learn, and only (1) replace their LSST defaults by NIRCam ones derived
from ``nircam_bands`` (``mag_<BAND>``/``magerr_<BAND>`` columns, reference band, limits; the redshift grid
``linspace(0, 12, 1201)`` of the other peers), (2) train on the labelled objects of the table they are given
(finite ``redshift``), (3) read every chunk through `rail.deepdisc.peers.catalog_ml.ml_table` (Milky-Way
extinction removed; non-detections at ``mag_limit``; for kNN, whose k-d tree cannot take missing values,
unobserved bands too), and (4) write a ``qp`` ensemble row for row with the input table, with ``zmode``,
``zmean``, ``zmedian`` (computed on the grid, `grid_point_estimates`) and ``object_id``, spooled per process like
the other peers. Models are the upstream ones (pickled by RAIL's ``ModelHandle``).

`CatalogMdnInformer`/`CatalogMdnEstimator` (the "catalog MDN") train DeepDISC's redshift head, with DeepDISC's
loss, ensemble, validation and width calibration, on the features FlexZBoost reads
(`rail.deepdisc.peers.catalog_mdn`): DeepDISC with catalog photometry in place of pixels. Its model is a
weights-only torch file (`CatalogMdnModelHandle`) and its output a ``qp.mixmod`` ensemble like DeepDISC's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qp
import tables_io
from ceci.config import StageParameter as Param
from rail.core.data import TableHandle
from rail.estimation.algos.flexzboost import FlexZBoostEstimator, FlexZBoostInformer
from rail.estimation.algos.k_nearneigh import KNearNeighEstimator, KNearNeighInformer
from rail.estimation.estimator import CatEstimator, CatInformer

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.inference.spooled import SpooledOutputMixin
from rail.deepdisc.options import build, check_stage_options
from rail.deepdisc.peers.catalog_mdn import (
    CATALOG_MDN_OPTIONS,
    CatalogMdnModelHandle,
    CatalogMdnSettings,
    catalog_features,
    catalog_mixtures,
    check_catalog_mdn,
)
from rail.deepdisc.peers.catalog_ml import DEFAULT_ML_MAG_LIMIT, grid_point_estimates, ml_table, nircam_ml_options
from rail.deepdisc.peers.stage_options import DEREDDEN_OPTIONS, PDF_GRID_OPTIONS, TABLE_OPTIONS
from rail.deepdisc.presets import get_preset, resolve_bands

__all__ = ["NIRCamFlexZBoostInformer", "NIRCamFlexZBoostEstimator", "NIRCamKNNInformer", "NIRCamKNNEstimator",
           "CatalogMdnInformer", "CatalogMdnEstimator"]

_DEFAULT_BANDS = list(get_preset("JADES9"))
_DEFAULTS = nircam_ml_options(_DEFAULT_BANDS)

_NIRCAM_OPTIONS = dict(
    **TABLE_OPTIONS,
    nircam_bands=Param(
        list, _DEFAULT_BANDS, msg="NIRCam bands, in wavelength order; bands, err_bands, ref_band and "
        "mag_limits follow from them unless given"
    ),
    nircam_ref_band=Param(str, "", msg="band whose magnitude is a feature besides the colours ('' = reddest)"),
    mag_limit=Param(float, DEFAULT_ML_MAG_LIMIT, msg="magnitude of non-detections (and of unobserved bands "
                    "for kNN), every band"),
    **DEREDDEN_OPTIONS,
    **PDF_GRID_OPTIONS,
    bands=Param(list, _DEFAULTS["bands"], msg="magnitude columns"),
    err_bands=Param(list, _DEFAULTS["err_bands"], msg="magnitude error columns"),
    ref_band=Param(str, _DEFAULTS["ref_band"], msg="magnitude column used besides the colours"),
    mag_limits=Param(dict, _DEFAULTS["mag_limits"], msg="magnitude of non-detections per column"),
    nondetect_val=Param(float, _DEFAULTS["nondetect_val"], msg="magnitude marking a non-detection"),
)


def _configure(stage) -> None:
    """Derive the column options left at their defaults from ``nircam_bands`` (as the BPZ stages do)."""
    config, defaults = stage.config, stage.config_options
    derived = nircam_ml_options(
        list(config.nircam_bands), ref_band=config.nircam_ref_band or None, mag_limit=config.mag_limit
    )
    for key, value in derived.items():
        if config[key] == defaults[key].default:
            config[key] = value
    n = len(config.bands)
    if len(config.err_bands) != n or config.ref_band not in config.bands:
        raise ConfigError(f"{stage.name}: err_bands must match bands {list(config.bands)} and hold ref_band")


#: Fewest labelled objects the kNN informer validates its sigma and neighbour count on.
MIN_KNN_VALIDATION = 2


def _bands(config) -> list[str]:
    return list(resolve_bands([col.split("_", 1)[-1] for col in config.bands]))


def _table(stage, data, *, fill_missing: bool) -> dict:
    if tables_io.types.table_type(data) != 1:
        data = stage._convert_table_format(data, "numpyDict")
    c = stage.config
    return ml_table(data, _bands(c), mag_limit=c.mag_limit, ebv_column=c.ebv_col, deredden_mw=c.deredden,
                    fill_missing=fill_missing)


class _LabelledInputMixin:
    """Train on the labelled objects of the input table, prepared by `ml_table`."""

    _fill_missing = False

    def run(self) -> None:
        """Prepare and subset the training table, then run the upstream informer."""
        data = self.get_data("input")
        table = data[self.config.hdf5_groupname] if self.config.hdf5_groupname else data
        table = _table(self, table, fill_missing=self._fill_missing)
        z = np.asarray(table[self.config.redshift_col], float)
        keep = np.isfinite(z) & (z >= 0)
        if keep.sum() < 2:
            raise ConfigError(f"{self.name}: fewer than 2 objects with a spec-z in column "
                              f"{self.config.redshift_col!r}")
        table = {k: v[keep] for k, v in table.items()}
        self._fit_sample_size(int(keep.sum()))
        self.set_data("input", {self.config.hdf5_groupname: table} if self.config.hdf5_groupname else table)
        super().run()

    def _fit_sample_size(self, n_labelled: int) -> None:
        """Adapt options that cannot exceed the number of labelled objects (nothing by default)."""


class _CatalogOutputMixin(SpooledOutputMixin):
    """Prepare every chunk with `ml_table`; add grid point estimates and ``object_id`` to the output."""

    _fill_missing = False

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        super()._process_chunk(start, end, _table(self, data, fill_missing=self._fill_missing), first)

    def _do_chunk_output(self, qp_dstn, start, end, first, data=None):
        zgrid = np.linspace(self.config.zmin, self.config.zmax, self.config.nzbins)
        ancil = dict(qp_dstn.ancil or {})
        ancil.update(grid_point_estimates(qp_dstn, zgrid))
        if data is not None and "object_id" in data:
            ancil["object_id"] = np.asarray(data["object_id"])
        qp_dstn.set_ancil(ancil)
        return super()._do_chunk_output(qp_dstn, start, end, first, data=data)


class NIRCamFlexZBoostInformer(_LabelledInputMixin, FlexZBoostInformer):
    """FlexZBoost (pz-rail-flexzboost) on a NIRCam catalog's labelled objects.

    Trained on their magnitudes and colours. Unobserved bands stay missing (XGBoost
    handles them). Output ``model``: the flexcode model (pickled, as upstream).
    """

    name = "NIRCamFlexZBoostInformer"
    interactive_function = "nircam_flexzboost_informer"
    config_options = FlexZBoostInformer.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure(self)
        # flexcode adds keys to the dict it is given: never let it touch the option's shared default
        self.config["regression_params"] = dict(self.config.regression_params)


class NIRCamFlexZBoostEstimator(_CatalogOutputMixin, FlexZBoostEstimator):
    """FlexZBoost photo-z PDFs for a NIRCam catalog.

    Output: ``qp.interp`` on ``nzbins`` points over the model's redshift range.
    """

    name = "NIRCamFlexZBoostEstimator"
    interactive_function = "nircam_flexzboost_estimator"
    config_options = FlexZBoostEstimator.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure(self)


_KNN_SIGMA = dict(
    sigma_grid_min=Param(float, 0.01, msg="smallest Gaussian width (dz) tried for each neighbour"),
    sigma_grid_max=Param(float, 0.3, msg="largest width tried (0.3: redshifts reach 12 here, not 3)"),
    ngrid_sigma=Param(int, 30, msg="widths tried between the two"),
)


class NIRCamKNNInformer(_LabelledInputMixin, KNearNeighInformer):
    """k-nearest neighbours (pz-rail-sklearn) in a NIRCam catalog's colours.

    Trained on the labelled objects. Unobserved bands are set to the limit (a k-d tree
    takes no missing value). The neighbour count and the width of each neighbour's
    Gaussian are chosen on a held-out quarter by CDE loss (upstream), over widths up
    to 0.3 in z. Output ``model``: the k-d tree and its settings (pickled, as upstream).
    """

    name = "NIRCamKNNInformer"
    interactive_function = "nircam_knn_informer"
    _fill_missing = True
    config_options = KNearNeighInformer.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)
    config_options.update(_KNN_SIGMA)

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure(self)

    def _fit_sample_size(self, n_labelled: int) -> None:
        """Fit ``train_frac`` and the neighbour range to the number of labelled objects.

        The k-d tree holds ``train_frac`` of the labels: ask it for at most that many neighbours; leave at least
        `MIN_KNN_VALIDATION` objects to validate on (upstream's CDE loss fails on one).
        """
        if n_labelled < MIN_KNN_VALIDATION + 1:
            raise ConfigError(f"{self.name}: {n_labelled} objects with a spec-z; kNN needs at least "
                              f"{MIN_KNN_VALIDATION + 1} (one to train on, {MIN_KNN_VALIDATION} to validate)")
        if n_labelled - round(n_labelled * self.config.train_frac) < MIN_KNN_VALIDATION:
            frac = (n_labelled - MIN_KNN_VALIDATION) / n_labelled
            self.log.warning(f"{self.name}: {n_labelled} labelled objects: train_frac lowered to {frac:.3f} to "
                             f"keep {MIN_KNN_VALIDATION} for validation")
            self.config["train_frac"] = frac
        n_tree = max(1, round(n_labelled * self.config.train_frac))
        if self.config.nneigh_max > n_tree:
            self.log.warning(f"{self.name}: {n_labelled} labelled objects: neighbours capped at {n_tree}")
            self.config["nneigh_max"] = n_tree
            self.config["nneigh_min"] = min(self.config.nneigh_min, n_tree)


class NIRCamKNNEstimator(_CatalogOutputMixin, KNearNeighEstimator):
    """kNN photo-z PDFs for a NIRCam catalog.

    Output: Gaussian mixtures of the neighbours' redshifts (``qp.mixmod``).
    """

    name = "NIRCamKNNEstimator"
    interactive_function = "nircam_knn_estimator"
    _fill_missing = True
    config_options = KNearNeighEstimator.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure(self)


_MDN_INPUT_OPTIONS = dict(
    redshift_col=Param(str, "redshift", msg="column of the spec-z (NaN = none: not trained on)"),
    nircam_bands=_NIRCAM_OPTIONS["nircam_bands"],
    nircam_ref_band=_NIRCAM_OPTIONS["nircam_ref_band"],
    mag_limit=Param(float, DEFAULT_ML_MAG_LIMIT, msg="magnitude of non-detections and unobserved bands, every band"),
    **DEREDDEN_OPTIONS,
)


def _numpy_table(stage, data) -> dict:
    if stage.config.hdf5_groupname and stage.config.hdf5_groupname in data:
        data = data[stage.config.hdf5_groupname]
    return data if tables_io.types.table_type(data) == 1 else stage._convert_table_format(data, "numpyDict")


class CatalogMdnInformer(CatInformer):
    """DeepDISC's redshift head trained on catalog photometry (the catalog MDN).

    Trained on the labelled objects (finite ``redshift_col``) of a NIRCam catalog,
    reading FlexZBoost's features (reference magnitude and colours, Milky-Way
    extinction removed, non-detections and unobserved bands at ``mag_limit``),
    with DeepDISC's head, loss, ensemble, validation and width calibration
    (`rail.deepdisc.peers.catalog_mdn`); options `CATALOG_MDN_OPTIONS`. Output
    ``model``: a weights-only torch file.
    """

    name = "CatalogMdnInformer"
    entrypoint_function = "inform"
    interactive_function = "catalog_mdn_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(_MDN_INPUT_OPTIONS)
    config_options.update(CATALOG_MDN_OPTIONS.params())
    inputs = [("input", TableHandle)]
    outputs = [("model", CatalogMdnModelHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        self._settings = build(CatalogMdnSettings, CATALOG_MDN_OPTIONS.coerce(CATALOG_MDN_OPTIONS.from_config(
            self.config)))

    def run(self) -> None:
        """Train the ensemble on the labelled objects and register it as ``model``."""
        from rail.deepdisc.peers.catalog_mdn_train import train_catalog_mdn

        c = self.config
        table = _numpy_table(self, self.get_data("input"))
        if c.redshift_col not in table:
            raise ConfigError(f"{self.instance_name}: the input table has no spec-z column {c.redshift_col!r}")
        z = np.asarray(table[c.redshift_col], float)
        keep = np.isfinite(z) & (z >= 0)
        labelled = {k: np.asarray(v)[keep] for k, v in table.items()}
        bands = list(resolve_bands(list(c.nircam_bands)))
        ref = str(c.nircam_ref_band).upper() or bands[-1]
        features, ebv = catalog_features(labelled, bands, ref_band=ref, mag_limit=c.mag_limit, ebv_column=c.ebv_col,
                                         deredden_mw=c.deredden, name=self.instance_name)
        feature_config = dict(bands=bands, ref_band=ref, mag_limit=float(c.mag_limit), deredden=bool(c.deredden))
        self.model = train_catalog_mdn(features, ebv, z[keep], self._settings, feature_config=feature_config,
                                       name=self.instance_name)
        self.add_data("model", self.model)


class CatalogMdnEstimator(SpooledOutputMixin, CatEstimator):
    """Catalog MDN photo-z PDFs: the ensemble's Gaussian mixtures (``qp.mixmod``).

    Features are made as the model was trained (its bands, reference band, limit and
    dereddening); ancil ``zmode``, ``zmean``, ``zmedian`` on ``linspace(zmin, zmax,
    nzbins)`` and ``object_id`` when the input has it, row for row with the input.
    """

    name = "CatalogMdnEstimator"
    entrypoint_function = "estimate"
    interactive_function = "catalog_mdn_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(**TABLE_OPTIONS, ebv_col=DEREDDEN_OPTIONS["ebv_col"], **PDF_GRID_OPTIONS)
    inputs = [("model", CatalogMdnModelHandle), ("input", TableHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def _initialize_run(self) -> None:
        super()._initialize_run()
        model = self.config["model"] if "model" in self.config else None
        check_catalog_mdn(self.model, model if isinstance(model, str) else f"{self.instance_name} model")

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        cfg = self.model["config"]
        table = _numpy_table(self, data)
        features, ebv = catalog_features(table, cfg["bands"], ref_band=cfg["ref_band"], mag_limit=cfg["mag_limit"],
                                         ebv_column=self.config.ebv_col, deredden_mw=cfg["deredden"],
                                         name=self.instance_name)
        weights, means, stds = catalog_mixtures(self.model, features, ebv)
        ens = qp.Ensemble(qp.mixmod, data=dict(weights=weights, means=means, stds=stds))
        ancil = grid_point_estimates(ens, np.linspace(self.config.zmin, self.config.zmax, self.config.nzbins))
        if "object_id" in table:
            ancil["object_id"] = np.asarray(table["object_id"])
        ens.set_ancil(ancil)
        self._do_chunk_output(ens, start, end, first, data=table)
