"""BPZ (pz-rail-bpz 2.2.0) for NIRCam: its data folder, its configuration, and corrected zero-point offsets.

pz-rail-bpz ships LSST-era defaults (six ``mag_*_lsst`` bands, ``DC2LSST_*`` filters, LSST depths, 0.1 mag
zero- point errors) and reads filters, SEDs and pre-integrated ``.AB`` model fluxes from one folder
(``bpz_ref_data_path``). `write_bpz_data_dir` writes that folder for NIRCam bands and our template set into a
user cache folder (never into site-packages): ``FILTER/NIRCam_<BAND>.res`` (astro-sedpy curves),
``SED/<name>.sed`` and ``SED/<set>.list``, and ``AB/<sed>.NIRCam_<BAND>.<nomadau|withmadau>.AB`` computed by
`rail.deepdisc.peers.templates.template_fluxes` (BPZ's Madau 1995 IGM for ``withmadau``), so BPZ never calls
its own ``ABflux`` (which extrapolates SEDs linearly and prints).

Zero-point offsets: pz-rail-bpz's ``BPZlitePreEstimator`` normalises the model fluxes of every object by *row*
``refcol`` of the array (another object) instead of each object's own reference-band flux, so its offsets are
wrong. `bpz_zero_point_offsets` does what it intends, per object.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rail.deepdisc.constants import ZMAX
from rail.deepdisc.exceptions import ConfigError, DeepDiscWarning
from rail.deepdisc.filters import filter_curve
from rail.deepdisc.peers.templates import TemplateSet, template_fluxes
from rail.deepdisc.presets import resolve_bands

__all__ = [
    "BPZ_Z_STEP",
    "bpz_filter_name",
    "default_cache_dir",
    "write_bpz_data_dir",
    "nircam_bpz_options",
    "broad_types",
    "bpz_zero_point_offsets",
    "BPZPriorWarning",
    "bpz_prior_problems",
]

logger = logging.getLogger(__name__)

#: Redshift step of the written ``.AB`` files (BPZ's own ``dz_ab``).
BPZ_Z_STEP = 0.01
#: Lowest top of the ``.AB`` redshift grid (BPZ's own ``zmax_ab``).
BPZ_MIN_ZMAX = ZMAX
#: Environment variable overriding the cache folder of generated BPZ data.
CACHE_ENV = "RAIL_DEEPDISC_CACHE"


def bpz_filter_name(band: str) -> str:
    """BPZ filter name (``FILTER/<name>.res``) of a NIRCam band.

    Parameters
    ----------
    band : str
        NIRCam band, e.g. ``"F444W"``.

    Returns
    -------
    str
        ``NIRCam_<BAND>``.
    """
    return f"NIRCam_{band}"


def default_cache_dir() -> Path:
    """Return the cache folder: ``$RAIL_DEEPDISC_CACHE``, else ``$XDG_CACHE_HOME/pz-rail-deepdisc``.

    Without either variable: ``~/.cache/pz-rail-deepdisc``.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pz-rail-deepdisc"


def _key(templates: TemplateSet, bands: Sequence[str], madau: bool, zmax: float) -> str:
    h = hashlib.sha256()
    h.update(repr((tuple(bands), bool(madau), round(zmax, 4), BPZ_Z_STEP, templates.names)).encode())
    for w, f in zip(templates.waves, templates.fluxes):
        h.update(np.ascontiguousarray(w).tobytes())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:16]


def write_bpz_data_dir(
    templates: TemplateSet,
    bands: Sequence[str] | str,
    *,
    list_name: str = "templates",
    madau: bool = True,
    zmax: float = BPZ_MIN_ZMAX,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write (or reuse) a BPZ data folder for these templates and NIRCam bands.

    Parameters
    ----------
    templates : TemplateSet
        Rest-frame SEDs (already extended to the red).
    bands : str or sequence of str
        NIRCam bands or a preset.
    list_name : str
        Stem of the SED list file (``SED/<list_name>.list``, BPZ's ``spectra_file``).
    madau : bool
        Write ``withmadau`` files (Madau 1995 IGM, BPZ's ``madau_flag="yes"``), else ``nomadau``.
    zmax : float
        Highest redshift needed (the files reach ``max(zmax, 12)``).
    root : path, optional
        Parent folder (default `default_cache_dir`/``bpz``); the data goes into a sub-folder named by a hash
        of the inputs, built in a temporary folder and renamed into place (safe under MPI).

    Returns
    -------
    Path
        The folder to pass as ``bpz_ref_data_path``.
    """
    bands = resolve_bands(bands if isinstance(bands, str) else list(bands))
    root = Path(root) if root is not None else default_cache_dir() / "bpz"
    target = root / f"{list_name}-{_key(templates, bands, madau, zmax)}"
    if (target / "SED" / f"{list_name}.list").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        _write_bpz_files(staging, templates, bands, list_name, madau, max(zmax, BPZ_MIN_ZMAX))
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("BPZ data for %d templates x %d bands in %s", len(templates), len(bands), target)
    return target


def _write_bpz_files(
    folder: Path, templates: TemplateSet, bands: tuple[str, ...], list_name: str, madau: bool, zmax: float
) -> None:
    for sub in ("SED", "FILTER", "AB"):
        (folder / sub).mkdir()
    for name, wave, flux in zip(templates.names, templates.waves, templates.fluxes):
        np.savetxt(folder / "SED" / f"{name}.sed", np.column_stack([wave, flux]), fmt="%.6e")
    (folder / "SED" / f"{list_name}.list").write_text("".join(f"{n}.sed\n" for n in templates.names))
    for band in bands:
        wave, trans = filter_curve(band)
        np.savetxt(
            folder / "FILTER" / f"{bpz_filter_name(band)}.res", np.column_stack([wave, trans]), fmt="%.6e"
        )
    z_ab = np.arange(0.0, zmax + BPZ_Z_STEP / 2, BPZ_Z_STEP)
    fluxes = template_fluxes(templates, z_ab, bands, igm="madau" if madau else "none")
    flag = "withmadau" if madau else "nomadau"
    for t, name in enumerate(templates.names):
        for k, band in enumerate(bands):
            np.savetxt(
                folder / "AB" / f"{name}.{bpz_filter_name(band)}.{flag}.AB",
                np.column_stack([z_ab, fluxes[:, t, k]]),
                fmt="%.5e",
            )


def nircam_bpz_options(
    bands: Sequence[str] | str,
    *,
    ref_band: str | None = None,
    mag_limit: float = 30.0,
    zp_error: float = 0.02,
) -> dict:
    """pz-rail-bpz options for NIRCam catalogs with ``mag_<BAND>``/``magerr_<BAND>`` columns.

    Parameters
    ----------
    bands : str or sequence of str
        NIRCam bands or a preset.
    ref_band : str, optional
        Band of BPZ's magnitude prior (default: the reddest band, where NIRCam catalogs are selected; in the
        bluest bands high-redshift galaxies drop out, and BPZ's prior fitted to them came out unphysical on
        every benchmark field).
    mag_limit : float
        1-sigma limiting AB magnitude used as the error of non-detections (``mag_limits``), every band.
    zp_error : float
        Zero-point uncertainty per band, mag (``zp_errors``).

    Returns
    -------
    dict
        ``bands``, ``err_bands``, ``filter_list``, ``ref_band``, ``mag_limits``, ``zp_errors``,
        ``zp_offsets``, ``nondetect_val`` (99) and ``unobserved_val`` (NaN: missing values).

    Raises
    ------
    ConfigError
        If ``ref_band`` is not one of ``bands`` or a number is out of range.
    """
    bands = resolve_bands(bands if isinstance(bands, str) else list(bands))
    ref = bands[-1] if ref_band is None else str(ref_band).upper()
    if ref not in bands:
        raise ConfigError(f"ref_band {ref_band!r} is not one of the bands {' '.join(bands)}")
    if not zp_error >= 0 or not np.isfinite(mag_limit):
        raise ConfigError(f"need zp_error >= 0 and a finite mag_limit, got {zp_error!r}, {mag_limit!r}")
    return {
        "bands": [f"mag_{b}" for b in bands],
        "err_bands": [f"magerr_{b}" for b in bands],
        "filter_list": [bpz_filter_name(b) for b in bands],
        "ref_band": f"mag_{ref}",
        "mag_limits": {f"mag_{b}": float(mag_limit) for b in bands},
        "zp_errors": [float(zp_error)] * len(bands),
        "zp_offsets": [0.0] * len(bands),
        "nondetect_val": 99.0,
        "unobserved_val": float("nan"),
    }


def broad_types(best_template: np.ndarray, nt_array: Sequence[int]) -> np.ndarray:
    """BPZ broad type (0-based) of each best-fit template index.

    Parameters
    ----------
    best_template : ndarray of int (N,)
        Template indices, in template-list order.
    nt_array : sequence of int
        Templates per broad type, in template order (e.g. CWWSB4: ``[1, 2, 5]``).

    Returns
    -------
    ndarray of int (N,)
        Broad type of each object.

    Raises
    ------
    ConfigError
        If an index lies beyond the ``sum(nt_array)`` templates.
    """
    edges = np.cumsum(nt_array)
    if np.any(np.asarray(best_template) >= edges[-1]):
        raise ConfigError(f"template index beyond the {edges[-1]} templates of nt_array {list(nt_array)}")
    return np.searchsorted(edges, np.asarray(best_template), side="right")


def bpz_zero_point_offsets(
    flux: np.ndarray, flux_err: np.ndarray, model: np.ndarray, *, ref_index: int, min_snr: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """BPZ zero-point offsets from objects fitted at their spec-z (the corrected pre-estimator).

    Parameters
    ----------
    flux, flux_err : ndarray (N, B)
        Observed fluxes (any linear unit, e.g. BPZ's 10**(-0.4 m)); non-finite or non-positive error = unused.
    model : ndarray (N, T, B)
        Template fluxes of each object at its spec-z.
    ref_index : int
        Reference band: its offset is 0.
    min_snr : float
        Fluxes used for the ratios need S/N above this.

    Returns
    -------
    offsets : ndarray (B,)
        Magnitudes to subtract from the catalog (BPZ's ``zp_offsets``): -2.5 log10 of the median, over
        objects, of observed / model flux, with each object's best template (min chi^2, free amplitude) scaled
        to its *own* reference-band flux.
    best : ndarray (N,)
        Best template index per object.

    Examples
    --------
    >>> model = np.array([[[1.0, 2.0]]])
    >>> flux = np.array([[10.0, 20.0 * 10 ** (-0.4 * 0.1)]])  # band 2 is 0.1 mag too faint
    >>> off, best = bpz_zero_point_offsets(flux, flux / 10, model, ref_index=0)
    >>> np.round(off, 3).tolist(), best.tolist()
    ([0.0, 0.1], [0])
    """
    ok = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    w = np.where(ok, 1.0 / np.where(ok, flux_err, 1.0) ** 2, 0.0)
    f = np.where(ok, flux, 0.0)
    num = np.einsum("nb,ntb,nb->nt", f, model, w)
    den = np.einsum("ntb,ntb,nb->nt", model, model, w)
    amp = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    chi2 = np.einsum("nb,nb->n", f * f, w)[:, None] - amp * num
    chi2[den <= 0] = np.inf
    best = np.argmin(chi2, axis=1)
    fitted = model[np.arange(len(best)), best]  # (N, B)
    ref_model = fitted[:, ref_index]
    scaled = fitted * (flux[:, ref_index] / np.where(ref_model > 0, ref_model, np.nan))[:, None]
    good = ok & (flux > min_snr * flux_err) & (scaled > 0) & ok[:, [ref_index]]
    offsets = np.zeros(flux.shape[1])
    for k in range(flux.shape[1]):
        if good[:, k].any():
            offsets[k] = -2.5 * np.log10(np.median(flux[good[:, k], k] / scaled[good[:, k], k]))
    return offsets - offsets[ref_index], best


class BPZPriorWarning(DeepDiscWarning):
    """BPZ's fitted prior parameters are unphysical: keep ``no_prior=True`` or use the HDF-N prior."""


def bpz_prior_problems(priormodel: dict) -> list[str]:
    """Why a pz-rail-bpz prior model is unphysical (empty if it is fine).

    pz-rail-bpz fits the Benitez (2000) prior without bounds, so small or unrepresentative spec-z samples give
    negative type fractions or redshift scales.

    Parameters
    ----------
    priormodel : dict
        ``fo_arr``, ``kt_arr``, ``zo_arr``, ``km_arr``, ``a_arr`` as written by ``BPZliteInformer``.

    Returns
    -------
    list of str
        One line per problem.
    """
    problems = []
    fo = np.asarray(priormodel["fo_arr"], float)
    if np.any(fo < 0) or fo.sum() > 1:
        problems.append(f"type fractions fo={np.round(fo, 3).tolist()} outside [0, 1] or summing above 1")
    for key in ("zo_arr", "a_arr"):
        values = np.asarray(priormodel[key], float)
        if np.any(~(values > 0)):
            problems.append(f"{key}={np.round(values, 3).tolist()} not all positive")
    return problems
