"""pz-rail-bpz configured for NIRCam and run as its users run it: `NIRCamBPZInformer` and `NIRCamBPZEstimator`.

Subclasses of pz-rail-bpz's ``BPZliteInformer``/``BPZliteEstimator`` that (1) replace its LSST defaults by
NIRCam ones derived from ``nircam_bands`` (band and error columns ``mag_<BAND>``/``magerr_<BAND>``, filter
names, limiting magnitudes, zero-point errors and offsets, reference band; NaN = not observed, 99 =
non-detection), (2) fit by default the 31 COSMOS SEDs that pz-rail-base ships for BPZ (``COSMOS_seds``, broad
types 10/9/12; ``CWWSB4`` stays an option) and write BPZ's data folder (filters, SEDs, ``.AB`` fluxes) for them
into a cache folder, (3) fit zero-point offsets and best-fit broad types at the spec-z inside the informer with
the corrected algorithm (`rail.deepdisc.peers.bpz_setup.bpz_zero_point_offsets`: pz-rail-bpz's pre-estimator
normalises by the wrong object), (4) fit BPZ's prior to the spec-z sample with pz-rail-bpz's informer and apply
it (``output_hdfn=False``, ``no_prior=False``; the HDF-N prior and no prior stay options), (5) fit the
catalog's fluxes ``flux_<BAND>``/``fluxerr_<BAND>`` (nJy) when it has them, so that a non-detection is a
measured flux near zero (`rail.deepdisc.peers.bpz_inputs.bpz_flux_inputs`), (6) remove Milky-Way extinction
from the ``ebv`` column, and (7) add ``zmedian`` to BPZ's ``zmode`` and ``zmean``. The BPZ fit itself is
pz-rail-bpz's, unchanged.

pz-rail-bpz fits the Benitez (2000) prior without bounds: when the fitted parameters are unphysical (small or
unrepresentative spec-z samples) the informer stores the HDF-N prior instead and warns (`BPZPriorWarning`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tables_io
from ceci.config import StageParameter as Param
from rail.core.data import TableHandle
from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer

from rail.deepdisc.constants import ZMAX
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.inference.spooled import SpooledOutputMixin
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.peers.bpz_inputs import DEFAULT_BPZ_TEMPLATES, bpz_flux_inputs, broad_type_counts
from rail.deepdisc.peers.bpz_setup import (
    BPZPriorWarning,
    bpz_prior_problems,
    bpz_zero_point_offsets,
    broad_types,
    nircam_bpz_options,
    write_bpz_data_dir,
)
from rail.deepdisc.peers.model_io import NpzModelHandle
from rail.deepdisc.peers.pdfs import normalise_pdfs, point_estimates
from rail.deepdisc.peers.photometry import (
    AB_ZEROPOINT_NJY,
    NONDETECTION_MAG,
    band_flux_columns,
    catalog_fluxes,
    deredden,
)
from rail.deepdisc.peers.stage_options import DEREDDEN_OPTIONS, PDF_GRID_OPTIONS, PHOTOMETRY_OPTIONS, TABLE_OPTIONS
from rail.deepdisc.peers.templates import load_template_set
from rail.deepdisc.presets import get_preset, resolve_bands

__all__ = ["NIRCamBPZInformer", "NIRCamBPZEstimator"]

_DEFAULT_BANDS = list(get_preset("JADES9"))
_DEFAULTS = nircam_bpz_options(_DEFAULT_BANDS)
#: Benitez (2000) HDF-N prior parameters, as pz-rail-bpz's informer stores them with ``output_hdfn=True``.
HDFN_PRIOR = dict(
    fo_arr=np.array([0.35, 0.5]),
    kt_arr=np.array([0.45, 0.147]),
    zo_arr=np.array([0.431, 0.39, 0.0626]),
    km_arr=np.array([0.0913, 0.0636, 0.123]),
    a_arr=np.array([2.465, 1.806, 0.906]),
    mo=20.0,
)

_NIRCAM_OPTIONS = dict(
    nircam_bands=Param(
        list,
        _DEFAULT_BANDS,
        msg="NIRCam bands; bands, err_bands, filter_list, mag_limits, "
        "zp_errors, zp_offsets and ref_band follow from them unless given",
    ),
    nircam_ref_band=Param(str, "", msg="band of BPZ's magnitude prior ('' = the reddest, the selection band)"),
    templates=Param(
        str,
        DEFAULT_BPZ_TEMPLATES,
        msg="template set: a pz-rail-base list name (COSMOS_seds, the default, or CWWSB4), a BPZ .list, an "
        "eazy templates .param (relative to templates_root) or a folder of .sed/.dat SEDs",
    ),
    templates_root=Param(str, "", msg="eazy-photoz folder of an eazy .param template set ('' = the package's)"),
    **PHOTOMETRY_OPTIONS,
    data_dir=Param(
        str,
        "",
        msg="parent folder of the generated BPZ data (filters, SEDs, .AB files); '' = the "
        "user cache ($RAIL_DEEPDISC_CACHE or ~/.cache/pz-rail-deepdisc/bpz)",
    ),
    mag_limit=Param(float, 30.0, msg="1-sigma limiting AB magnitude of non-detections, every band"),
    zp_error=Param(float, 0.02, msg="zero-point uncertainty per band, mag"),
    **DEREDDEN_OPTIONS,
)
_BPZ_DEFAULTS = dict(
    **TABLE_OPTIONS,
    bands=Param(list, _DEFAULTS["bands"], msg="magnitude columns"),
    err_bands=Param(list, _DEFAULTS["err_bands"], msg="magnitude error columns"),
    filter_list=Param(list, _DEFAULTS["filter_list"], msg="BPZ filter names (FILTER/<name>.res)"),
    ref_band=Param(str, _DEFAULTS["ref_band"], msg="magnitude column of the prior's reference band"),
    mag_limits=Param(dict, _DEFAULTS["mag_limits"], msg="1-sigma limiting magnitude per magnitude column"),
    zp_errors=Param(list, _DEFAULTS["zp_errors"], msg="zero-point errors per band, mag"),
    zp_offsets=Param(list, _DEFAULTS["zp_offsets"], msg="zero-point offsets per band, mag (subtracted)"),
    nondetect_val=Param(float, NONDETECTION_MAG, msg="magnitude marking a non-detection"),
    spectra_file=Param(str, "", msg="SED list in bpz_ref_data_path/SED ('' = the generated one)"),
    bpz_ref_data_path=Param(
        str, "None", msg="BPZ data folder ('None' = generated from templates and nircam_bands into data_dir)"
    ),
    nt_array=Param(
        list,
        [],
        msg="templates per broad type, in template order (sum = number of templates; [] = the shipped split "
        "of COSMOS_seds [10, 9, 12] or CWWSB4 [1, 2, 5])",
    ),
)


def _configure_nircam(stage) -> None:
    """Derive the NIRCam options left at their defaults, write the BPZ data folder, check consistency.

    Runs after ceci has merged keywords and configuration files, so an option set anywhere is kept; an option
    still equal to its class default is replaced by the value derived from ``nircam_bands``.
    """
    config, defaults = stage.config, stage.config_options
    bands = resolve_bands(list(config.nircam_bands))
    derived = nircam_bpz_options(
        bands, ref_band=config.nircam_ref_band or None, mag_limit=config.mag_limit, zp_error=config.zp_error
    )
    for key, value in derived.items():
        if key in defaults and _is_default(config[key], defaults[key].default):
            config[key] = value
    data_path = config.bpz_ref_data_path
    if data_path in ("", "None"):
        tset = load_template_set(config.templates, root=config.templates_root or None)
        try:
            config["nt_array"] = broad_type_counts(config.templates, config.nt_array, len(tset))
        except ConfigError as exc:
            raise ConfigError(f"{stage.name}: {exc}") from None
        stem = Path(str(config.templates)).stem or "templates"
        madau = str(config.madau_flag).lower() == "yes"
        path = write_bpz_data_dir(
            tset, bands, list_name=stem, madau=madau, zmax=float(config.zmax), root=config.data_dir or None
        )
        data_path = str(path)  # resolved at run time, never written back into the configuration
        if not config.spectra_file:
            config["spectra_file"] = f"{stem}.list"
    _check_columns(stage)
    stage.bpz_ref_data_path = data_path
    os.environ["BPZDATAPATH"] = data_path  # as pz-rail-bpz does, for its own helpers


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, float) and np.isnan(default):
        return isinstance(value, float) and np.isnan(value)
    return value == default


def _check_columns(stage) -> None:
    config = stage.config
    n = len(config.bands)
    lengths = {k: len(config[k]) for k in ("err_bands", "filter_list", "zp_errors", "zp_offsets")}
    if any(v != n for v in lengths.values()):
        raise ConfigError(f"{stage.name}: bands has {n} entries but {lengths}: give them for the same bands")
    if config.ref_band not in config.bands:
        raise ConfigError(
            f"{stage.name}: ref_band {config.ref_band!r} is not one of bands {list(config.bands)}"
        )
    missing = [b for b in config.bands if b not in config.mag_limits]
    if missing:
        raise ConfigError(f"{stage.name}: mag_limits lacks {missing}")


def _nircam_bands(config) -> tuple[str, ...]:
    """NIRCam band of each BPZ filter (``NIRCam_<BAND>``), in column order."""
    return resolve_bands([name.split("_", 1)[-1] for name in config.filter_list])


def _dereddened(config, data: dict) -> dict:
    """Copy of the table with Milky-Way extinction removed from the band columns."""
    if not (config.deredden and config.ebv_col and config.ebv_col in data):
        return data
    mags = np.column_stack([np.asarray(data[b], float) for b in config.bands])
    fixed = deredden(mags, np.asarray(data[config.ebv_col], float), _nircam_bands(config))
    out = dict(data)
    for k, col in enumerate(config.bands):
        out[col] = fixed[:, k]
    return out


def _catalog_fluxes(config, table: dict) -> tuple[np.ndarray, np.ndarray]:
    """Dereddened fluxes (nJy) of the BPZ bands: the flux columns when used, else from the magnitudes."""
    return catalog_fluxes(
        table,
        _nircam_bands(config),
        ebv_column=config.ebv_col,
        deredden_mw=config.deredden,
        use_fluxes=config.use_fluxes,
    )


def _fits_fluxes(config, table: dict) -> bool:
    return bool(config.use_fluxes) and all(c in table for b in _nircam_bands(config) for c in band_flux_columns(b))


class NIRCamBPZInformer(BPZliteInformer):
    """BPZ prior and zero points for NIRCam catalogs (pz-rail-bpz's informer for NIRCam).

    Fits, on objects with spec-z, each object's best template at its spec-z, the
    zero-point offsets (``fit_zero_points``) and the broad types, then fits BPZ's prior
    parameters to the sample (pz-rail-bpz's ``output_hdfn=False``, default here) or
    stores the HDF-N prior (``output_hdfn=True``). With flux columns the prior's
    reference-band magnitudes come from the dereddened fluxes, as in the estimator.
    Output ``model``: pz-rail-bpz's model dict (``priormodel``, ``zp_offsets``) as a
    pickle-free ``.npz`` (`NpzModelHandle`).
    """

    name = "NIRCamBPZInformer"
    interactive_function = "nircam_bpz_informer"
    config_options = BPZliteInformer.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)
    config_options.update(_BPZ_DEFAULTS)
    config_options.update(
        output_hdfn=Param(
            bool,
            False,
            msg="False (default): fit BPZ's prior to the spec-z sample; True: store the HDF-N prior (I band, "
            "z < 2: pz-rail-bpz's default)",
        ),
        mmax=Param(float, 32.0, msg="faintest reference-band magnitude used to fit the prior"),
        madau_flag=Param(str, "yes", msg="'yes': Madau (1995) IGM in the model fluxes"),
        zmax=Param(float, ZMAX, msg="highest redshift"),
        fit_zero_points=Param(bool, True, msg="fit zero-point offsets at the spec-z (corrected algorithm)"),
        min_snr=Param(float, 5.0, msg="minimum S/N of a flux used for the zero points"),
    )
    outputs = [("model", NpzModelHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure_nircam(self)
        self._types = None

    def run(self) -> None:
        """Keep labelled objects, fit types and offsets, then BPZ's prior fit."""
        data = self.get_data("input")
        table = data[self.config.hdf5_groupname] if self.config.hdf5_groupname else data
        if tables_io.types.table_type(table) != 1:
            table = self._convert_table_format(table, out_fmt_str="numpyDict")
        z = np.asarray(table[self.config.redshift_col], float)
        keep = np.isfinite(z) & (z > 0)
        if not keep.any():
            raise ConfigError(f"{self.name}: no object has a spec-z in column {self.config.redshift_col!r}")
        table = {k: np.asarray(v)[keep] for k, v in table.items()}
        flux, err = _catalog_fluxes(self.config, table)
        self._types = self._fit_types(table, flux, err)
        if _fits_fluxes(self.config, table):
            ref = flux[:, list(self.config.bands).index(self.config.ref_band)]
            with np.errstate(divide="ignore", invalid="ignore"):
                table[self.config.ref_band] = np.where(ref > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(ref), 99.0)
        self.set_data("input", {self.config.hdf5_groupname: table} if self.config.hdf5_groupname else table)
        super().run()
        problems = bpz_prior_problems(self.model["priormodel"])
        if problems:
            # the model handle holds this dict: updating it in place replaces what is written
            self.model["priormodel"].update(HDFN_PRIOR)
            warnings.warn(
                f"{self.name}: fitted BPZ prior is unphysical ({'; '.join(problems)}): the HDF-N prior "
                "(pz-rail-bpz's default) is stored instead; give more labels, or estimate with no_prior=True",
                BPZPriorWarning,
                stacklevel=2,
            )

    def _fit_types(self, table: dict, flux: np.ndarray, err: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        from rail.deepdisc.peers.templates import template_fluxes

        bands = _nircam_bands(self.config)
        igm = "madau" if str(self.config.madau_flag).lower() == "yes" else "none"
        tset = load_template_set(self.config.templates, root=self.config.templates_root or None)
        model = template_fluxes(tset, table[self.config.redshift_col], bands, igm=igm)
        ref = list(self.config.bands).index(self.config.ref_band)
        offsets, best = bpz_zero_point_offsets(flux, err, model, ref_index=ref, min_snr=self.config.min_snr)
        if not self.config.fit_zero_points:
            offsets = np.zeros(len(bands))
        self.log.info(f"NIRCam BPZ zero-point offsets: {np.round(offsets, 4).tolist()}")
        return len(self.config.nt_array), broad_types(best, self.config.nt_array), offsets

    def _get_broad_type(self, ngal: int):
        if self.config.type_file or self._types is None:
            return super()._get_broad_type(ngal)
        return self._types


class NIRCamBPZEstimator(SpooledOutputMixin, BPZliteEstimator):
    """BPZ photo-z PDFs for NIRCam catalogs (pz-rail-bpz's estimator, NIRCam-configured).

    Input ``model``: the `NIRCamBPZInformer`'s ``.npz`` (read without pickle). Output:
    pz-rail-bpz's ``qp.interp`` ensemble with ancil ``zmode``, ``zmean``, ``zmedian``,
    ``tb`` (best template at the mode), ``todds`` and ``object_id`` when the input has
    it. Output chunks are spooled per process and merged in row order
    (`SpooledOutputMixin`), so an MPI run needs no parallel HDF5.
    """

    name = "NIRCamBPZEstimator"
    interactive_function = "nircam_bpz_estimator"
    config_options = BPZliteEstimator.config_options.copy()
    config_options.update(_NIRCAM_OPTIONS)
    config_options.update(_BPZ_DEFAULTS)
    config_options.update(PDF_GRID_OPTIONS)
    config_options.update(
        madau_flag=Param(str, "yes", msg="'yes': Madau (1995) IGM in the model fluxes"),
        no_prior=Param(
            bool, False, msg="fit without BPZ's magnitude prior (default False: apply the informer's prior)"
        ),
    )
    inputs = [("model", NpzModelHandle), ("input", TableHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        _configure_nircam(self)

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        if tables_io.types.table_type(data) != 1:
            data = self._convert_table_format(data, "numpyDict")
        data = {k: np.array(v, copy=True) for k, v in _dereddened(self.config, data).items()}
        super()._process_chunk(start, end, data, first)

    def _preprocess_magnitudes(self, data):
        if not _fits_fluxes(self.config, data):
            return super()._preprocess_magnitudes(data)
        offsets = self.config.zp_offsets if self.config.override_file_offsets else self.zp_off_from_file
        # _process_chunk dereddened the magnitude columns only: the fluxes are dereddened here
        flux, err = _catalog_fluxes(self.config, data)
        return bpz_flux_inputs(
            flux,
            err,
            zp_offsets=offsets,
            zp_errors=self.config.zp_errors,
            mag_err_min=self.config.mag_err_min,
            ref_index=list(self.config.bands).index(self.config.ref_band),
        )

    def _do_chunk_output(self, qp_dstn, start, end, first, data=None):
        pdfs = normalise_pdfs(self.zgrid, np.asarray(qp_dstn.objdata["yvals"], float))
        qp_dstn.ancil["zmedian"] = point_estimates(self.zgrid, pdfs)["zmedian"]
        if data is not None and "object_id" in data:
            qp_dstn.ancil["object_id"] = np.asarray(data["object_id"])
        return super()._do_chunk_output(qp_dstn, start, end, first, data=data)
