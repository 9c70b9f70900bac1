"""Template mismatch: galaxy SEDs that depart smoothly from every template library (``sed_mismatch``).

Real galaxies are not any library's templates. Template fitters budget for it with a *template error function*
(EAZY: Brammer, van Dokkum & Coppi 2008): the fractional scatter of real galaxies about the templates as a
function of rest wavelength. With ``SimulationSettings.sed_mismatch = a > 0`` the simulator draws its galaxies'
SEDs from that scatter: every SED of a family (`rail.deepdisc.simulation.sed_library`) is multiplied by

    exp(a * sigma(lambda) * g(log10 lambda)),

where ``sigma`` is eazy-py's default template error function (``templates/uvista_nmf/template_error_10.def``,
the package's copy: 2-4% in the rest-frame optical, 9% in the far-UV, 10% at 2.4 micron, 30% beyond 9 micron)
and ``g`` a smooth Gaussian random field of unit variance, correlated as ``exp(-d^2 / 2 l^2)`` over ``d`` dex of
wavelength with ``l`` = `MISMATCH_LENGTH_DEX` (about a medium band's width: the mismatch changes colours, not
just narrow features that bands average away). ``g`` is drawn once per SED with a fixed seed (`MISMATCH_SEED`
and the family), so a family's mismatched SEDs are the same in every run, and ``a`` scales one fixed pattern
(an amplitude sweep compares like with like). Galaxies still mix neighbouring SEDs of the sequence, so the
mismatch varies smoothly along it. Nebular lines are added by the simulator afterwards, as for every family.

``a = 1`` is the template error function at face value (eazy-py multiplies it by ``TEMP_ERR_A2 = 0.2`` in its
fits by default, i.e. it expects about a fifth of this mismatch); ``a = 0`` (the default) leaves the templates
exact, which is the fsps family's matched case for EAZY.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from rail.deepdisc.simulation.sed_library import HALPHA, REFERENCE_WAVELENGTH, SED_FAMILIES, SedFamily

__all__ = ["MISMATCH_LENGTH_DEX", "MISMATCH_SEED", "template_error_function", "mismatch_field", "mismatched"]

#: Correlation length of the mismatch, dex of rest wavelength.
MISMATCH_LENGTH_DEX = 0.1
#: Seed of the mismatch patterns (with the family's index in `SED_FAMILIES`).
MISMATCH_SEED = 31
#: Sampling of the random field, dex.
_STEP_DEX = 0.005


@lru_cache(maxsize=1)
def template_error_function() -> tuple[np.ndarray, np.ndarray]:
    """eazy-py's default template error function: rest wavelength (Angstrom) and fractional error, ascending."""
    from rail.deepdisc.peers.eazy_paths import DEFAULT_TEMPLATE_ERROR, eazy_root

    wave, sigma = np.loadtxt(eazy_root("") / DEFAULT_TEMPLATE_ERROR, unpack=True)
    order = np.argsort(wave)
    return wave[order], sigma[order]


def mismatch_field(n: int, wave: np.ndarray, seed) -> np.ndarray:
    """``n`` unit-variance smooth random fields ``g`` (rows) at rest wavelengths ``wave`` (Angstrom).

    White noise on a grid in log10 wavelength, smoothed by a Gaussian of ``l / sqrt(2)`` (so the field's
    correlation is ``exp(-d^2 / 2 l^2)``) and divided by the smoothing's own standard deviation.
    """
    lo, hi = np.log10(np.min(wave)), np.log10(np.max(wave))
    x = np.arange(lo - 3 * MISMATCH_LENGTH_DEX, hi + 3 * MISMATCH_LENGTH_DEX + _STEP_DEX, _STEP_DEX)
    width = MISMATCH_LENGTH_DEX / np.sqrt(2.0) / _STEP_DEX
    white = np.random.default_rng(seed).standard_normal((n, len(x)))
    smooth = gaussian_filter1d(white, width, axis=1, mode="reflect")
    impulse = np.zeros(len(x))
    impulse[len(x) // 2] = 1.0
    smooth /= np.sqrt(np.sum(gaussian_filter1d(impulse, width) ** 2))
    return np.array([np.interp(np.log10(wave), x, row) for row in smooth])


def mismatched(family: SedFamily, amplitude: float) -> SedFamily:
    """The family's SEDs departing from its templates by ``amplitude`` times the template error (module docstring).

    Parameters
    ----------
    family : SedFamily
    amplitude : float
        ``a`` >= 0 (0: the family unchanged).

    Returns
    -------
    SedFamily
        Same name, SED names, wavelengths and length; ``fnu`` and ``halpha_continuum`` multiplied by the factor
        divided by its value at `REFERENCE_WAVELENGTH` (the SEDs stay normalised there, so the population's
        luminosities, and with them sizes and magnitudes at 5500 A, are those of the exact templates).
    """
    if amplitude < 0 or not np.isfinite(amplitude):
        raise ValueError(f"sed_mismatch must be a finite number >= 0, got {amplitude}")
    if amplitude == 0:
        return family
    tef_wave, tef = template_error_function()
    seed = (MISMATCH_SEED, SED_FAMILIES.index(family.name))
    at = np.append(family.wave, [HALPHA, REFERENCE_WAVELENGTH])
    log_factor = amplitude * np.interp(at, tef_wave, tef)[None, :] * mismatch_field(len(family.fnu), at, seed)
    factor = np.exp(log_factor - log_factor[:, -1:])  # still normalised at the reference wavelength
    return replace(family, fnu=family.fnu * factor[:, :-2], halpha_continuum=family.halpha_continuum * factor[:, -2])
