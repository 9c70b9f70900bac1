"""Run eazy-py on catalog photometry: settings, the run folder, the template grid and the per-chunk fits.

`EazyRunner` writes eazy's input files once (`rail.deepdisc.peers.eazy_files`), builds the template grid once
(`rail.deepdisc.peers.eazy_grid`), then fits any number of catalog chunks with `eazy.photoz.PhotoZ` and returns
normalised log-posteriors on eazy's redshift grid (log-spaced, ``z_step * (1 + z)``) and the redshift of their
maximum.

The defaults are eazy-py's own (``zphot.param.default``): the 12 ``tweak_fsps_QSF_12_v3`` templates fitted in
non-negative combinations (``TEMPLATE_COMBOS a``), ``template_error_10.def`` with ``TEMP_ERR_A2 0.2``,
``SYS_ERR 0.01``, eazy's IGM (Asada et al. 2024 with the CGM damping wing), ``Z_MIN 0.01``, ``Z_MAX 12``,
``Z_STEP 0.01``, no prior, and the maximum of p(z) as point estimate (eazy's ``zml``, refined by a parabola
through the peak). The fit equals eazy-py driven directly (`tests/peers/test_eazy_upstream.py`). Departures,
none of which changes the numbers:

- the template grid is eazy's integration computed without its Python loops (`eazy_grid.integrate_like_eazy`,
  equal to float rounding) and handed to `TemplateGrid` as ``tempfilt_data``; the fit is serial
  (``n_proc=0``): MPI ranks are our parallelism;
- Milky-Way extinction is removed from the photometry per object before the fit (``MW_EBV = 0`` in eazy),
  since eazy takes one E(B-V) for a whole catalog;
- fluxes are in nJy, so ``PRIOR_ABZP = 31.4``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rail.deepdisc.constants import ZMAX
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.capture import captured_output
from rail.deepdisc.peers.eazy_files import (
    FILTER_FILE,
    PRIOR_FILE,
    TRANSLATE_FILE,
    error_column,
    flux_column,
    write_filter_res,
    write_prior,
    write_templates_file,
    write_translate,
)
from rail.deepdisc.peers.eazy_grid import best_single_template, build_template_grid
from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.eazy_paths import (
    DEFAULT_EAZY_TEMPLATES,
    DEFAULT_TEMPLATE_ERROR,
    eazy_root,
    resolve_eazy_path,
)
from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY
from rail.deepdisc.presets import resolve_bands

__all__ = ["EAZY_FITTERS", "TEMPLATE_COMBOS", "EazySettings", "EazyRunner"]

logger = logging.getLogger(__name__)

#: Template-fitting methods of eazy's ``template_lsq`` that we expose.
EAZY_FITTERS = ("nnls", "bounded")
#: eazy's TEMPLATE_COMBOS modes that eazy-py implements: all templates at once, or one at a time.
TEMPLATE_COMBOS = ("a", "1")
#: Value eazy uses to flag unobserved fluxes (anything below its NOT_OBS_THRESHOLD of -90).
_NOT_OBSERVED = -99.0


@dataclass(frozen=True)
class EazySettings:
    """eazy-py options (names follow eazy's parameters, lower case).

    Parameters
    ----------
    bands : tuple of str
        NIRCam bands of the catalog, in column order.
    templates : str
        Template set (eazy's ``TEMPLATES_FILE``): an eazy templates ``.param`` file, relative to the template
        root or absolute (default eazy-py's ``templates/fsps_full/tweak_fsps_QSF_12_v3.param``), or any set
        `rail.deepdisc.peers.templates.load_template_set` reads (``"CWWSB4"``, a BPZ ``.list``, a folder).
    templates_root : str
        eazy-photoz folder that ``.param`` paths and ``template_error`` are relative to ("" = the package's
        copy of eazy-py's default templates).
    template_error : str
        Template error function (eazy's ``TEMP_ERR_FILE``), relative to the template root or absolute.
    z_min, z_max : float
        Redshift range of the fit (eazy's ``Z_MIN``, ``Z_MAX``).
    z_step : float
        Grid step in ``dz / (1 + z)`` (eazy's ``Z_STEP``, log spacing).
    temp_err_a2 : float
        Amplitude of the template error function (``TEMP_ERR_A2``); the informer may replace it.
    sys_err : float
        Extra fractional flux error added in quadrature (``SYS_ERR``).
    igm_scale_tau : float
        Scale of eazy's IGM optical depth (``IGM_SCALE_TAU``, 0 = no IGM).
    add_cgm : bool
        Add the Asada et al. (2024) CGM damping wing at z > 6 (``ADD_CGM``).
    fitter : str
        Template fit method (``FITTER``): ``nnls`` or ``bounded``.
    template_combos : str
        ``"a"``: non-negative combinations of all templates (eazy's default, ``TEMPLATE_COMBOS a``, meant for
        basis sets such as FSPS); ``"1"``: one template at a time, marginalised over templates (``TEMPLATE_COMBOS
        1``, eazy's ``fit_single_templates``), better suited to empirical sets such as CWWSB4, where
        combinations like elliptical + 5 Myr burst mimic other redshifts.
    prior_floor : float
        Floor added to the normalised magnitude prior (``PRIOR_FLOOR``).
    clip_wavelength : float
        Rest wavelength, Angstrom, that must lie blueward of an object's reddest band (eazy's
        ``compute_lnp``).
    """

    bands: tuple[str, ...]
    templates: str = DEFAULT_EAZY_TEMPLATES
    templates_root: str = ""
    template_error: str = DEFAULT_TEMPLATE_ERROR
    z_min: float = 0.01
    z_max: float = ZMAX
    z_step: float = 0.01
    temp_err_a2: float = 0.2
    sys_err: float = 0.01
    igm_scale_tau: float = 1.0
    add_cgm: bool = True
    fitter: str = "nnls"
    template_combos: str = "a"
    prior_floor: float = 0.01
    clip_wavelength: float = 1100.0

    def __post_init__(self):
        object.__setattr__(self, "bands", resolve_bands(list(self.bands)))
        if not 0 < self.z_min < self.z_max:
            raise ConfigError(f"need 0 < z_min < z_max, got z_min={self.z_min!r}, z_max={self.z_max!r}")
        if not 0 < self.z_step < 1:
            raise ConfigError(f"z_step must be in (0, 1) (dz / (1 + z)), got {self.z_step!r}")
        for name in ("temp_err_a2", "sys_err", "igm_scale_tau", "prior_floor", "clip_wavelength"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.template_combos not in TEMPLATE_COMBOS:
            raise ConfigError(
                f"template_combos {self.template_combos!r} unknown: choose one of "
                f"{', '.join(TEMPLATE_COMBOS)}"
            )
        if self.fitter not in EAZY_FITTERS:
            raise ConfigError(f"fitter {self.fitter!r} unknown: choose one of {', '.join(EAZY_FITTERS)}")

    def params(self) -> dict:
        """Eazy parameter dictionary (upper-case names) for these settings."""
        return {
            "Z_MIN": self.z_min,
            "Z_MAX": self.z_max,
            "Z_STEP": self.z_step,
            "Z_STEP_TYPE": 1,
            "TEMP_ERR_A2": self.temp_err_a2,
            "SYS_ERR": self.sys_err,
            "IGM_SCALE_TAU": self.igm_scale_tau,
            "ADD_CGM": "y" if self.add_cgm else "n",
            "FITTER": self.fitter,
            "PRIOR_FLOOR": self.prior_floor,
            "PRIOR_ABZP": AB_ZEROPOINT_NJY,
            "MW_EBV": 0.0,
            "CAT_HAS_EXTCORR": "n",
            "MAGNITUDES": "n",
            "VERBOSITY": 0,
            "TEMPLATE_SMOOTH": 0.0,
            "RESAMPLE_WAVE": None,
        }


class EazyRunner:
    """eazy-py, set up once for a band list and template set, fitting catalog chunks.

    Parameters
    ----------
    settings : EazySettings
        eazy options.
    workdir : path
        Existing folder for eazy's input files (a temporary folder is fine).
    model : EazyModel, optional
        Trained zero points, template error amplitude and prior.

    Examples
    --------
    >>> runner = EazyRunner(EazySettings(bands=("F150W", "F444W")), tmp_path)  # doctest: +SKIP
    >>> log_post = runner.log_posterior(flux_njy, err_njy)  # doctest: +SKIP
    """

    def __init__(self, settings: EazySettings, workdir: str | os.PathLike, *, model: EazyModel | None = None):
        if model is not None and tuple(model.bands) != settings.bands:
            raise ConfigError(
                f"EAZY model bands {' '.join(model.bands)} differ from the estimator's "
                f"{' '.join(settings.bands)}"
            )
        self.settings = settings
        self.model = model
        self.workdir = Path(workdir)
        self._grid = None
        self._files = self._write_files()

    def _write_files(self) -> dict:
        d, s = self.workdir, self.settings
        root = eazy_root(s.templates_root)
        files = {
            "FILTERS_RES": str(write_filter_res(s.bands, d / FILTER_FILE)),
            "translate": str(write_translate(s.bands, d / TRANSLATE_FILE)),
            "TEMPLATES_FILE": str(write_templates_file(s.templates, d, root=s.templates_root)),
            "TEMP_ERR_FILE": str(resolve_eazy_path(s.template_error, root, what="template error file")),
        }
        if self.model is not None and self.model.has_prior:
            files["PRIOR_FILE"] = str(
                write_prior(
                    self.model.prior_z, self.model.prior_mags, self.model.prior_density, d / PRIOR_FILE
                )
            )
            files["PRIOR_FILTER"] = flux_column(self.model.prior_band)
        return files

    @property
    def zero_points(self) -> np.ndarray:
        """Multiplicative flux corrections applied in the fit (ones without a model)."""
        if self.model is None:
            return np.ones(len(self.settings.bands))
        return np.asarray(self.model.zero_points, float)

    @property
    def temp_err_a2(self) -> float:
        """Template error amplitude in use (the model's when it has one)."""
        if self.model is not None and np.isfinite(self.model.temp_err_a2):
            return float(self.model.temp_err_a2)
        return self.settings.temp_err_a2

    def params(self) -> dict:
        """Full eazy parameter dictionary of this runner."""
        params = self.settings.params()
        params.update({k: v for k, v in self._files.items() if k.isupper()})
        params["TEMP_ERR_A2"] = self.temp_err_a2
        params["APPLY_PRIOR"] = "y" if "PRIOR_FILE" in self._files else "n"
        return params

    @property
    def zgrid(self) -> np.ndarray:
        """Eazy's redshift grid (NZ,), log-spaced."""
        return np.asarray(self.template_grid().zgrid, float)

    def template_grid(self):
        """Return the `eazy.photoz.TemplateGrid` (redshifts x templates x filters), built on first use."""
        if self._grid is None:
            self._grid = build_template_grid(self.params(), self.settings)
        return self._grid

    def photoz(self, flux_njy: np.ndarray, err_njy: np.ndarray):
        """Make an `eazy.photoz.PhotoZ` for this catalog chunk, sharing the template grid.

        Parameters
        ----------
        flux_njy, err_njy : ndarray (N, B)
            Flux densities and errors in nJy; NaN = not observed.
        """
        from astropy.table import Table

        n = len(flux_njy)
        # z_spec/ra/dec are unused here but eazy warns without them
        table = Table({"id": np.arange(n), "z_spec": np.full(n, -1.0), "ra": np.zeros(n), "dec": np.zeros(n)})
        for k, band in enumerate(self.settings.bands):
            missing = ~np.isfinite(flux_njy[:, k]) | ~(err_njy[:, k] > 0)
            table[flux_column(band)] = np.where(missing, _NOT_OBSERVED, flux_njy[:, k])
            table[error_column(band)] = np.where(missing, _NOT_OBSERVED, err_njy[:, k])
        params = self.params()
        params["CATALOG_FILE"] = table
        grid = self.template_grid()
        with captured_output():
            from eazy.photoz import PhotoZ

            pz = PhotoZ(
                param_file=None,
                translate_file=self._files["translate"],
                params=params,
                load_prior=params["APPLY_PRIOR"] == "y",
                tempfilt=grid,
                n_proc=0,
            )
        pz.zp = self.zero_points.astype(pz.ARRAY_DTYPE)
        return pz

    def log_posterior(self, flux_njy: np.ndarray, err_njy: np.ndarray) -> np.ndarray:
        """Ln p(z | photometry) on `zgrid`, normalised, with the prior when the model has one.

        Parameters
        ----------
        flux_njy, err_njy : ndarray (N, B)
            nJy (negative fluxes are measurements); NaN flux or non-positive error = not observed.

        Returns
        -------
        ndarray (N, NZ)
            Log densities, eazy's ``lnp``; objects with no usable band get a flat posterior.
        """
        if len(flux_njy) == 0:
            return np.zeros((0, len(self.zgrid)))
        pz = self.photoz(flux_njy, err_njy)
        prior = pz.param["APPLY_PRIOR"] == "y"
        with captured_output():
            if self.settings.template_combos == "a":
                pz.fit_catalog(n_proc=0, get_best_fit=False, prior=prior, verbose=False)
                has_fit, lnp, _ = pz.compute_lnp(
                    prior=prior, clip_wavelength=self.settings.clip_wavelength or None, in_place=False
                )
                out = np.zeros((len(flux_njy), pz.NZ))
                out[has_fit] = lnp
                return out
            with np.errstate(divide="ignore", invalid="ignore"):  # objects without data: 0/0, made flat below
                _, _, _, logpz = pz.fit_single_templates(verbose=False)
        return self._single_template_posterior(pz, np.asarray(logpz, float), prior)

    def template_error(self, scale: float | None = None):
        """Eazy's `TemplateError` for the runner's bands and ``TEMP_ERR_FILE``.

        Parameters
        ----------
        scale : float, optional
            Amplitude (default: `temp_err_a2`; 1 gives the function itself).

        Returns
        -------
        eazy.templates.TemplateError
            Callable: relative error per band at a redshift.
        """
        from eazy.templates import TemplateError

        a2 = self.temp_err_a2 if scale is None else float(scale)
        return TemplateError(self._files["TEMP_ERR_FILE"], filter_wavelengths=self.template_grid().pivot, scale=a2)

    def _single_template_posterior(self, pz, logpz: np.ndarray, prior: bool) -> np.ndarray:
        """Marginalise one-template fits over templates (flat template prior); add prior, wavelength clip."""
        from scipy.special import logsumexp

        loglike = logsumexp(logpz, axis=0)
        if prior:
            loglike = loglike + pz.full_logprior
        if self.settings.clip_wavelength:
            red = self.settings.clip_wavelength * (1.0 + pz.zgrid)[None, :] > pz.lc_reddest[:, None]
            loglike = np.where(red, -np.inf, loglike)
        loglike[pz.nusefilt == 0] = 0.0
        peak = np.max(loglike, axis=1, keepdims=True)
        peak[~np.isfinite(peak)] = 0.0
        density = np.exp(loglike - peak)
        norm = np.trapezoid(density, pz.zgrid, axis=1)[:, None]
        with np.errstate(divide="ignore"):
            return np.log(density / norm)

    def fit_at_redshift(
        self,
        flux_njy: np.ndarray,
        err_njy: np.ndarray,
        z: np.ndarray,
        *,
        zero_points: np.ndarray | None = None,
        temp_err_a2: float | None = None,
    ) -> np.ndarray:
        """Best-fit model fluxes of each object with its redshift fixed.

        With ``template_combos="a"`` eazy's ``template_lsq`` (non-negative combination), with ``"1"`` the
        single template of lowest chi^2, as in the redshift fit.

        Parameters
        ----------
        flux_njy, err_njy : ndarray (N, B)
            nJy; NaN = not observed.
        z : ndarray (N,)
            Redshifts, inside ``[z_min, z_max]``.
        zero_points : ndarray (B,), optional
            Multiplicative corrections applied to the fluxes (default: the runner's).
        temp_err_a2 : float, optional
            Template error amplitude (default: the runner's).

        Returns
        -------
        ndarray (N, B)
            Model flux densities in the units of the corrected fluxes (``flux * zero_points``).
        """
        from eazy.photoz import template_lsq

        zp = self.zero_points if zero_points is None else np.asarray(zero_points, float)
        grid = self.template_grid()
        tef = self.template_error(temp_err_a2)
        ok = np.isfinite(flux_njy) & (err_njy > 0)
        fnu = np.where(ok, flux_njy * zp, _NOT_OBSERVED)
        efnu = np.where(ok, err_njy * zp, _NOT_OBSERVED)
        model = np.zeros_like(fnu)
        for i in range(len(fnu)):
            templates_z, tef_z = grid(z[i]), tef(z[i])
            if self.settings.template_combos == "1":
                model[i] = best_single_template(fnu[i], efnu[i], templates_z, tef_z)
            else:
                _, _, model[i], _ = template_lsq(
                    fnu[i], efnu[i], templates_z, tef_z, zp, False, self.settings.fitter, True, 1
                )
        return model
