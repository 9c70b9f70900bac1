"""RAIL stages for EAZY (eazy-py): `EazyInformer` and `EazyEstimator`. No RAIL stage for EAZY existed before.

Thin adapters over :mod:`rail.deepdisc.peers`, running eazy-py as its users do by default (eazy's
``zphot.param.default``: the 12 ``tweak_fsps_QSF_12_v3`` FSPS templates in non-negative combinations,
``template_error_10.def`` at ``TEMP_ERR_A2`` 0.2, ``SYS_ERR`` 0.01, eazy's IGM, no prior, point estimate at the
maximum of p(z)); the templates ship with the package, and ``templates_root`` points at any other eazy-photoz
folder (``.param`` paths are resolved from it, as eazy does). The informer fits zero points (and, when asked, the
template error amplitude and a magnitude prior) on objects with spec-z; the estimator fits every object with
eazy-py and returns a ``qp.interp`` ensemble of grid PDFs with ``zmode`` (eazy's ``zml``), ``zmean``,
``zmedian``. Both read a photometric table, e.g. from `rail.tools.deepdisc_catalog.TileSetToCatalog`: fluxes
``flux_<BAND>``/``fluxerr_<BAND>`` (nJy) when it has them, else ``mag_<BAND>``/``magerr_<BAND>`` (NaN = not
observed, 99 = non-detection with the 1-sigma limit as error). Options carry eazy's parameter names in lower
case.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import numpy as np
import qp
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.constants import ZMAX
from rail.deepdisc.inference.spooled import SpooledOutputMixin
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.peers.eazy_fit import EazyRunner, EazySettings
from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.eazy_paths import DEFAULT_EAZY_TEMPLATES, DEFAULT_TEMPLATE_ERROR
from rail.deepdisc.peers.eazy_train import EazyTrainSettings, train_eazy
from rail.deepdisc.peers.model_io import NpzModelHandle
from rail.deepdisc.peers.pdfs import max_lnp_redshift, normalise_pdfs, point_estimates, resample_pdfs
from rail.deepdisc.peers.photometry import catalog_fluxes
from rail.deepdisc.peers.stage_options import DEREDDEN_OPTIONS, PDF_GRID_OPTIONS, PHOTOMETRY_OPTIONS, TABLE_OPTIONS
from rail.deepdisc.presets import get_preset

__all__ = ["EazyInformer", "EazyEstimator"]

log = logging.getLogger(__name__)

_DEFAULT_BANDS = list(get_preset("JADES9"))
#: With this many bands or fewer, EAZY without a prior is degenerate for bright galaxies (a warning says so).
FEW_BANDS = 4

#: Options shared by informer and estimator (eazy's parameters, lower case, plus the catalog layout).
_EAZY_OPTIONS = dict(
    **TABLE_OPTIONS,
    bands=Param(list, _DEFAULT_BANDS, msg="NIRCam bands to fit (columns flux_<BAND>/fluxerr_<BAND> or mag_<BAND>)"),
    **PHOTOMETRY_OPTIONS,
    templates=Param(
        str,
        DEFAULT_EAZY_TEMPLATES,
        msg="eazy TEMPLATES_FILE: an eazy templates .param (relative to templates_root or absolute; default "
        "eazy-py's 12 FSPS templates), or a BPZ .list, a folder of SEDs or a pz-rail-base list name (CWWSB4)",
    ),
    templates_root=Param(
        str, "", msg="eazy-photoz folder that .param paths are relative to ('' = the package's copy of eazy's)"
    ),
    template_error=Param(
        str, DEFAULT_TEMPLATE_ERROR, msg="eazy TEMP_ERR_FILE, relative to templates_root or absolute"
    ),
    z_min=Param(float, 0.01, msg="eazy Z_MIN: lowest fitted redshift"),
    z_max=Param(float, ZMAX, msg="eazy Z_MAX: highest fitted redshift"),
    z_step=Param(float, 0.01, msg="eazy Z_STEP: fit grid step in dz/(1+z)"),
    temp_err_a2=Param(float, 0.2, msg="eazy TEMP_ERR_A2: template error amplitude (the informer may fit it)"),
    sys_err=Param(float, 0.01, msg="eazy SYS_ERR: fractional flux error added in quadrature"),
    igm_scale_tau=Param(float, 1.0, msg="eazy IGM_SCALE_TAU: factor on the Inoue+14 IGM optical depth"),
    add_cgm=Param(bool, True, msg="eazy ADD_CGM: Asada+24 CGM damping wing at z > 6"),
    fitter=Param(str, "nnls", msg="eazy FITTER: nnls or bounded"),
    template_combos=Param(
        str,
        "a",
        msg="eazy TEMPLATE_COMBOS: 'a' non-negative combinations of all templates (eazy's default, for basis "
        "sets such as FSPS), '1' one template at a time (suits empirical sets such as CWWSB4)",
    ),
    prior_floor=Param(float, 0.01, msg="eazy PRIOR_FLOOR: floor of the normalised magnitude prior"),
    clip_wavelength=Param(
        float,
        1100.0,
        msg="rest wavelength (Angstrom) that must fall blueward of an object's reddest band (0 = off)",
    ),
    **DEREDDEN_OPTIONS,
)


def _settings(config) -> EazySettings:
    return EazySettings(
        bands=tuple(config.bands),
        templates=config.templates,
        templates_root=config.templates_root,
        template_error=config.template_error,
        z_min=config.z_min,
        z_max=config.z_max,
        z_step=config.z_step,
        temp_err_a2=config.temp_err_a2,
        sys_err=config.sys_err,
        igm_scale_tau=config.igm_scale_tau,
        add_cgm=config.add_cgm,
        fitter=config.fitter,
        template_combos=str(config.template_combos),
        prior_floor=config.prior_floor,
        clip_wavelength=config.clip_wavelength,
    )


def _fluxes(config, table: dict) -> tuple[np.ndarray, np.ndarray]:
    return catalog_fluxes(
        table, config.bands, ebv_column=config.ebv_col, deredden_mw=config.deredden, use_fluxes=config.use_fluxes
    )


class EazyInformer(CatInformer):
    """Train EAZY on spec-z objects: zero points, template error, magnitude prior.

    Input ``input``: a photometric table (fluxes or magnitudes per band, ``redshift``);
    output ``model``: an ``.npz`` of plain arrays
    (`rail.deepdisc.peers.eazy_model.EazyModel`).
    """

    name = "EazyInformer"
    entrypoint_function = "inform"
    interactive_function = "eazy_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(_EAZY_OPTIONS)
    config_options.update(
        redshift_col=SharedParams.copy_param("redshift_col"),
        zp_iterations=Param(int, 3, msg="zero-point iterations (0 = no zero-point offsets)"),
        min_snr=Param(float, 5.0, msg="minimum S/N of a flux used for zero points and template error"),
        ref_band=Param(str, "", msg="band whose zero point is fixed to 1 ('' = the reddest band)"),
        fit_template_error=Param(
            bool, False, msg="fit TEMP_ERR_A2 to the residuals at the spec-z (default: keep eazy's temp_err_a2)"
        ),
        fit_prior=Param(
            bool,
            False,
            msg="build an apparent-magnitude prior p(z|m) from the spec-z sample "
            "(spec-z samples are biased: off by default)",
        ),
        prior_band=Param(
            str, "", msg="band of the magnitude prior (eazy PRIOR_FILTER; '' = the reddest band)"
        ),
        prior_mags=Param(
            list,
            [float(m) for m in np.arange(20.0, 31.01, 1.0)],
            msg="magnitude nodes of the prior, AB, increasing",
        ),
        prior_mag_window=Param(float, 1.0, msg="half width (mag) of the objects used at each prior node"),
        prior_min_count=Param(int, 20, msg="fewest objects for a node's own p(z); fewer use all objects"),
        prior_z_smooth=Param(float, 0.05, msg="prior kernel width in ln(1+z)"),
    )
    inputs = [("input", TableHandle)]
    outputs = [("model", NpzModelHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        self._eazy = _settings(self.config)
        self._train = EazyTrainSettings(
            zp_iterations=self.config.zp_iterations,
            min_snr=self.config.min_snr,
            ref_band=self.config.ref_band or self._eazy.bands[-1],
            fit_template_error=self.config.fit_template_error,
            fit_prior=self.config.fit_prior,
            prior_band=self.config.prior_band or self._eazy.bands[-1],
            prior_mags=tuple(float(m) for m in self.config.prior_mags),
            mag_window=self.config.prior_mag_window,
            min_per_node=self.config.prior_min_count,
            z_smooth=self.config.prior_z_smooth,
        )

    def run(self) -> None:
        """Fit the model on the training table and register it as ``model``."""
        data = self.get_data("input")
        if self.config.hdf5_groupname:
            data = data[self.config.hdf5_groupname]
        flux, err = _fluxes(self.config, data)
        zspec = np.asarray(data[self.config.redshift_col], float)
        if len(self._eazy.bands) <= FEW_BANDS and not self._train.fit_prior:
            log.warning("EAZY with %d bands and no prior: bright galaxies have colour-redshift degeneracies "
                        "that only a prior breaks (benchmarks/README.md, COSMOSWEB4); consider fit_prior=True",
                        len(self._eazy.bands))
        with tempfile.TemporaryDirectory(prefix="eazy-") as workdir:
            model = train_eazy(EazyRunner(self._eazy, workdir), flux, err, zspec, self._train)
        self.model = model.to_dict()
        self.add_data("model", self.model)


class EazyEstimator(SpooledOutputMixin, CatEstimator):
    """EAZY photo-z PDFs: eazy-py fits of every object, as ``qp.interp`` on a z grid.

    The fit runs on eazy's log grid (``z_min``, ``z_max``, ``z_step``); PDFs are
    resampled onto ``linspace(zmin, zmax, nzbins)``. Ancil: ``zmode`` (eazy's ``zml``:
    the maximum of p(z) on the fit grid, refined by a parabola), ``zmean``, ``zmedian``
    (of the resampled PDF), ``nbands`` (bands used) and ``object_id`` when the input
    has it (as DeepDISC's output). Chunks and MPI ranks are independent: each rank
    writes eazy's input files into its own temporary folder, and the output is spooled
    per rank and merged in row order (`SpooledOutputMixin`), so an MPI run needs no
    parallel HDF5 and gives the file of a one-process run.
    """

    name = "EazyEstimator"
    entrypoint_function = "estimate"
    interactive_function = "eazy_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(_EAZY_OPTIONS)
    config_options.update(PDF_GRID_OPTIONS)
    config_options.update(
        apply_prior=Param(
            bool, True, msg="apply the model's magnitude prior when it has one (eazy APPLY_PRIOR)"
        ),
    )
    inputs = [("model", NpzModelHandle), ("input", TableHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        self._eazy = _settings(self.config)
        self._runner = None
        self._workdir = None

    def _initialize_run(self) -> None:
        super()._initialize_run()
        model = EazyModel.from_dict(self.model) if self.model is not None else None
        if model is not None and not self.config.apply_prior:
            model = EazyModel(
                bands=model.bands,
                zero_points=model.zero_points,
                temp_err_a2=model.temp_err_a2,
                templates=model.templates,
            )
        if model is not None and model.templates != self._eazy.templates:
            self.log.warning(
                f"model was trained with templates {model.templates!r}, fitting {self._eazy.templates!r}"
            )
        self._workdir = tempfile.TemporaryDirectory(prefix=f"eazy-rank{self.rank}-")
        self._runner = EazyRunner(self._eazy, self._workdir.name, model=model)

    def _finalize_run(self) -> None:
        super()._finalize_run()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        flux, err = _fluxes(self.config, data)
        lnp = self._runner.log_posterior(flux, err)
        zfit = self._runner.zgrid
        zout = np.linspace(self.config.zmin, self.config.zmax, self.config.nzbins)
        pdfs = resample_pdfs(zfit, normalise_pdfs(zfit, np.exp(lnp)), zout)
        ens = qp.Ensemble(qp.interp, data=dict(xvals=zout, yvals=pdfs))
        ancil = point_estimates(zout, pdfs)
        ancil["zmode"] = max_lnp_redshift(zfit, lnp)
        ancil["nbands"] = np.count_nonzero(np.isfinite(flux) & (err > 0), axis=1)
        if "object_id" in data:
            ancil["object_id"] = np.asarray(data["object_id"])
        ens.set_ancil(ancil)
        self._do_chunk_output(ens, start, end, first, data=data)
