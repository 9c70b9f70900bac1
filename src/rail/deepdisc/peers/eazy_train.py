"""What the EAZY informer learns from objects with spectroscopic redshifts.

- Zero points (multiplicative flux corrections, eazy's ``zp``): fit each labelled object at its spec-z, take
  per band the median of model / observed flux over detections with S/N > ``min_snr``, normalise to the
  reference band, iterate (as eazy's ``iterate_zp_templates``, without its template corrections).
- Template error amplitude (eazy's ``TEMP_ERR_A2``), optional (off by default: eazy's 0.2 stays): the smallest
  amplitude, on a grid, for which the normalised residuals at the spec-z have a robust standard deviation
  (1.4826 MAD) of at most 1.
- Apparent-magnitude prior p(z | m): a Gaussian kernel density in ln(1 + z) of the labelled redshifts, per
  magnitude node, from the objects within ``mag_window`` of the node (all objects when fewer than
  ``min_per_node``), written in eazy's prior-file format. Spec-z samples are biased (bright, line emitters):
  the prior is off unless ``fit_prior`` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.eazy_fit import EazyRunner
from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY

__all__ = ["EazyTrainSettings", "fit_zero_points", "fit_template_error", "fit_magnitude_prior", "train_eazy"]

logger = logging.getLogger(__name__)

#: Robust standard deviation of a Gaussian per unit median absolute deviation.
MAD_TO_SIGMA = 1.4826
#: Template error amplitudes tried by `fit_template_error`.
TEF_SCALES = np.round(np.arange(0.0, 2.0001, 0.05), 3)


@dataclass(frozen=True)
class EazyTrainSettings:
    """Options of the EAZY informer.

    Parameters
    ----------
    zp_iterations : int
        Zero-point iterations (0 = no zero points).
    min_snr : float
        Minimum S/N of a flux used for zero points and template error.
    ref_band : str
        Band whose zero point is fixed to 1.
    fit_template_error : bool
        Fit the template error amplitude (default False: eazy's ``TEMP_ERR_A2``).
    fit_prior : bool
        Build the magnitude prior from the labels.
    prior_band : str
        Band of the magnitude prior.
    prior_mags : tuple of float
        Magnitude nodes of the prior, increasing.
    mag_window : float
        Half width in magnitudes of the objects used at each node.
    min_per_node : int
        Fewest objects for a node's own density.
    z_smooth : float
        Kernel width in ln(1 + z).
    """

    zp_iterations: int = 3
    min_snr: float = 5.0
    ref_band: str = "F444W"
    fit_template_error: bool = False
    fit_prior: bool = False
    prior_band: str = "F444W"
    prior_mags: tuple[float, ...] = tuple(np.arange(20.0, 31.01, 1.0))
    mag_window: float = 1.0
    min_per_node: int = 20
    z_smooth: float = 0.05

    def __post_init__(self):
        if self.zp_iterations < 0:
            raise ConfigError(f"zp_iterations must be >= 0, got {self.zp_iterations!r}")
        if not self.min_snr > 0 or not self.mag_window > 0 or not self.z_smooth > 0:
            raise ConfigError("min_snr, mag_window and z_smooth must be > 0")
        if self.min_per_node < 1:
            raise ConfigError(f"min_per_node must be >= 1, got {self.min_per_node!r}")
        if len(self.prior_mags) < 2 or np.any(np.diff(self.prior_mags) <= 0):
            raise ConfigError(f"prior_mags must increase and hold at least 2 values, got {self.prior_mags!r}")


def fit_zero_points(
    flux: np.ndarray, model: np.ndarray, err: np.ndarray, *, ref_index: int, min_snr: float
) -> np.ndarray:
    """Multiplicative zero points from observed and model fluxes of the same objects.

    Parameters
    ----------
    flux, model, err : ndarray (N, B)
        Observed flux (already multiplied by the current zero points), best-fit model flux at spec-z, and
        error.
    ref_index : int
        Band whose correction is fixed to 1.
    min_snr : float
        Only fluxes with ``flux / err > min_snr`` and a positive model count.

    Returns
    -------
    ndarray (B,)
        Factors to multiply the current zero points by: median(model / flux) per band over the ref band's; 1
        where a band has no usable flux.
    """
    good = np.isfinite(flux) & np.isfinite(err) & (err > 0) & (flux > min_snr * err) & (model > 0)
    ratio = np.ones(flux.shape[1])
    for k in range(flux.shape[1]):
        if good[:, k].any():
            ratio[k] = np.median(model[good[:, k], k] / flux[good[:, k], k])
    return ratio / ratio[ref_index]


def fit_template_error(
    flux: np.ndarray,
    model: np.ndarray,
    err: np.ndarray,
    tef: np.ndarray,
    *,
    min_snr: float,
    scales: np.ndarray = TEF_SCALES,
) -> float:
    """Smallest template error amplitude whose normalised residuals have robust sigma <= 1.

    Parameters
    ----------
    flux, model, err : ndarray (N, B)
        Observed flux, model flux at spec-z, flux error.
    tef : ndarray (N, B)
        Template error function at each object's rest-frame band wavelengths (amplitude 1).
    min_snr : float
        Only fluxes with S/N above this count.
    scales : ndarray
        Amplitudes tried, increasing.

    Returns
    -------
    float
        The amplitude (the largest tried when none reaches sigma <= 1; the smallest when no flux qualifies).
    """
    good = np.isfinite(flux) & np.isfinite(model) & (err > 0) & (flux > min_snr * err)
    if not good.any():
        return float(scales[0])
    resid, e, t, f = (flux - model)[good], err[good], tef[good], np.maximum(flux[good], 0.0)
    for a2 in scales:
        norm = resid / np.sqrt(e**2 + (a2 * t * f) ** 2)
        if MAD_TO_SIGMA * np.median(np.abs(norm - np.median(norm))) <= 1.0:
            return float(a2)
    return float(scales[-1])


def fit_magnitude_prior(
    z: np.ndarray, mag: np.ndarray, zgrid: np.ndarray, settings: EazyTrainSettings
) -> tuple[np.ndarray, np.ndarray]:
    """p(z | m) on ``zgrid`` at ``settings.prior_mags`` from labelled redshifts and magnitudes.

    Parameters
    ----------
    z, mag : ndarray (N,)
        Spectroscopic redshifts and prior-band AB magnitudes (non-finite rows are skipped).
    zgrid : ndarray (NZ,)
        Redshift grid.
    settings : EazyTrainSettings
        Nodes, window and kernel width.

    Returns
    -------
    mags : ndarray (M,)
        The magnitude nodes.
    density : ndarray (NZ, M)
        Densities normalised over ``zgrid``.
    """
    ok = np.isfinite(z) & np.isfinite(mag)
    lz, mag = np.log1p(z[ok]), mag[ok]
    if not ok.any():
        raise ConfigError("no labelled object with a finite prior-band magnitude: cannot build the prior")
    grid = np.log1p(zgrid)
    mags = np.asarray(settings.prior_mags, float)
    density = np.empty((len(zgrid), len(mags)))
    for j, m in enumerate(mags):
        near = np.abs(mag - m) <= settings.mag_window
        use = lz[near] if np.count_nonzero(near) >= settings.min_per_node else lz
        kern = np.exp(-0.5 * ((grid[:, None] - use[None, :]) / settings.z_smooth) ** 2).sum(axis=1)
        kern /= 1.0 + zgrid  # density in ln(1+z) -> density in z
        density[:, j] = kern / np.trapezoid(kern, zgrid)
    return mags, density


def train_eazy(
    runner: EazyRunner,
    flux_njy: np.ndarray,
    err_njy: np.ndarray,
    zspec: np.ndarray,
    settings: EazyTrainSettings,
) -> EazyModel:
    """Fit zero points, template error amplitude and (optionally) the magnitude prior.

    Parameters
    ----------
    runner : EazyRunner
        eazy set up for the bands and templates (its own model, if any, is ignored).
    flux_njy, err_njy : ndarray (N, B)
        Training photometry, nJy (NaN = not observed).
    zspec : ndarray (N,)
        Spectroscopic redshifts (NaN = none).
    settings : EazyTrainSettings
        Training options.

    Returns
    -------
    EazyModel

    Raises
    ------
    ConfigError
        If a band option names a band the runner does not fit, or no object is labelled inside the z range.
    """
    bands = runner.settings.bands
    for name in ("ref_band", "prior_band"):
        if getattr(settings, name) not in bands:
            raise ConfigError(f"{name} {getattr(settings, name)!r} is not one of the bands {' '.join(bands)}")
    s = runner.settings
    lab = np.isfinite(zspec) & (zspec > s.z_min) & (zspec < s.z_max)
    if not lab.any():
        raise ConfigError(f"no training object has a spec-z inside ({s.z_min}, {s.z_max})")
    flux, err, z = flux_njy[lab], err_njy[lab], zspec[lab]
    zp = np.ones(len(bands))
    ref = bands.index(settings.ref_band)
    a2 = s.temp_err_a2
    for it in range(settings.zp_iterations):
        model = runner.fit_at_redshift(flux, err, z, zero_points=zp, temp_err_a2=a2)
        zp = zp * fit_zero_points(flux * zp, model, err * zp, ref_index=ref, min_snr=settings.min_snr)
        logger.info("EAZY zero points, iteration %d: %s", it + 1, np.round(zp, 4).tolist())
    if settings.fit_template_error:
        model = runner.fit_at_redshift(flux, err, z, zero_points=zp, temp_err_a2=a2)
        tef = _tef_at(runner, z)
        a2 = fit_template_error(flux * zp, model, err * zp, tef, min_snr=settings.min_snr)
        logger.info("EAZY template error amplitude: %.3f", a2)
    prior = {}
    if settings.fit_prior:
        k = bands.index(settings.prior_band)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = AB_ZEROPOINT_NJY - 2.5 * np.log10(flux_njy[:, k])
        mags, density = fit_magnitude_prior(zspec, mag, runner.zgrid, settings)
        prior = dict(
            prior_band=settings.prior_band, prior_mags=mags, prior_z=runner.zgrid, prior_density=density
        )
    return EazyModel(bands=bands, zero_points=zp, temp_err_a2=a2, templates=s.templates, **prior)


def _tef_at(runner: EazyRunner, z: np.ndarray) -> np.ndarray:
    """Amplitude-1 template error (the runner's ``TEMP_ERR_FILE``) at each object's redshift, (N, B)."""
    tef = runner.template_error(1.0)
    return np.array([tef(zi) for zi in z], float)
