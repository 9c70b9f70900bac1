"""BPZ's inputs for NIRCam catalogs: the default template set and its broad types, and fluxes in BPZ's units.

pz-rail-bpz reads magnitudes; `bpz_flux_inputs` builds the arrays its fit uses (``flux``, ``flux_err``,
``mag0``) from flux columns instead, so that a non-detection is a measured flux near zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY

__all__ = ["DEFAULT_BPZ_TEMPLATES", "BROAD_TYPES", "broad_type_counts", "bpz_flux_inputs"]

#: BPZ's default template set here: the 31 COSMOS SEDs (Polletta et al. 2007 + BC03 starbursts, Ilbert et al.
#: 2009) that pz-rail-base ships beside CWWSB4, as DESC's pz-rail-bpz runs use them.
DEFAULT_BPZ_TEMPLATES = "COSMOS_seds"
#: Templates per broad type (elliptical | spiral | irregular/starburst), in list order, of the shipped sets:
#: CWWSB4 El | Sbc Scd | Im SB3 SB2 ssp25 ssp5; COSMOS Ell1-7 S0 Sa(2) | Sb(2) Sc(3) Sd(3) Sdm | SB0-SB11.
BROAD_TYPES = {"CWWSB4": (1, 2, 5), "COSMOS_seds": (10, 9, 12)}
#: Pseudo-flux of 1 nJy in BPZ's units (10**(-0.4 m)).
_NJY_TO_BPZ = 10.0 ** (-0.4 * AB_ZEROPOINT_NJY)
#: Flux error BPZ gives an unobserved band (flat likelihood), as pz-rail-bpz does.
_UNOBSERVED_ERROR = 1.0e28


def broad_type_counts(templates: str, nt_array: Sequence[int], n_templates: int) -> list[int]:
    """BPZ's ``nt_array`` for a template set: as given, or the shipped set's split (`BROAD_TYPES`).

    Parameters
    ----------
    templates : str
        Template set name or path (its stem names a shipped set).
    nt_array : sequence of int
        Templates per broad type; empty = look the set up in `BROAD_TYPES`.
    n_templates : int
        Templates in the set.

    Returns
    -------
    list of int

    Raises
    ------
    ConfigError
        If the set is unknown and no ``nt_array`` is given, or the counts do not sum to ``n_templates``.
    """
    counts = list(nt_array) or list(BROAD_TYPES.get(Path(str(templates)).stem, ()))
    if not counts:
        raise ConfigError(
            f"nt_array: give the templates per broad type of {templates!r} (known sets: "
            f"{', '.join(f'{k} {list(v)}' for k, v in BROAD_TYPES.items())})"
        )
    if sum(counts) != n_templates:
        raise ConfigError(
            f"nt_array {counts} sums to {sum(counts)}, the template set {templates!r} has {n_templates} templates"
        )
    return counts


def bpz_flux_inputs(
    flux_njy: np.ndarray,
    err_njy: np.ndarray,
    *,
    zp_offsets: Sequence[float],
    zp_errors: Sequence[float],
    mag_err_min: float,
    ref_index: int,
) -> dict[str, np.ndarray]:
    """BPZ's fitting inputs from fluxes (pz-rail-bpz's ``_preprocess_magnitudes``, for flux catalogs).

    A measured flux stays what it is, negative or not (BPZ's magnitude path turns non-detections into zero flux
    with the 1-sigma limit as error). As in pz-rail-bpz: the zero-point offsets (mag, subtracted from
    magnitudes) multiply the fluxes by 10**(0.4 offset); the zero-point errors are added in quadrature, as a
    fraction of the flux where it is positive and of half the error elsewhere; relative errors are at least
    ``mag_err_min`` (in magnitudes); unobserved bands get zero flux and an error of 1e28 (flat likelihood).

    Parameters
    ----------
    flux_njy, err_njy : ndarray (N, B)
        nJy, dereddened; NaN = not observed.
    zp_offsets, zp_errors : sequence of float (B,)
        Zero-point offsets and errors, mag.
    mag_err_min : float
        Smallest magnitude error.
    ref_index : int
        Band of the prior's magnitude ``mag0``.

    Returns
    -------
    dict
        ``flux``, ``flux_err`` (N, B) in BPZ's units (10**(-0.4 m)) and ``mag0`` (N,): the reference band's AB
        magnitude, 99 where its flux is not positive (BPZ's prior takes it as its faintest, 32).
    """
    from desc_bpz.bpz_tools_py3 import e_mag2frac

    observed = np.isfinite(flux_njy) & (err_njy > 0)
    scale = _NJY_TO_BPZ * 10.0 ** (0.4 * np.asarray(zp_offsets, float))[None, :]
    flux = np.where(observed, flux_njy, 0.0) * scale
    err = np.where(observed, err_njy, 1.0) * scale
    err = np.maximum(err, np.abs(flux) * (10.0 ** (0.4 * mag_err_min) - 1.0))
    zp_frac = e_mag2frac(np.asarray(zp_errors, float))[None, :]
    extra = np.where(flux > 0, zp_frac * flux, zp_frac * 0.5 * err)
    err = np.sqrt(err**2 + extra**2)
    err = np.where(observed, err, _UNOBSERVED_ERROR)
    ref = flux[:, ref_index]
    with np.errstate(divide="ignore", invalid="ignore"):
        mag0 = np.where(ref > 0, -2.5 * np.log10(ref), 99.0)
    return {"flux": flux, "flux_err": err, "mag0": mag0}
