"""The simulator's galaxy SED families: pz-rail-base's COSMOS templates and random FSPS combinations.

Every family is a red-to-blue sequence of the same number of rest-frame SEDs (the population's class ranges
index it: passive, spirals, starbursts), as f_nu shapes normalised at `REFERENCE_WAVELENGTH`:

* ``cosmos``: the 31 COSMOS templates that pz-rail-base ships (Polletta et al. 2007 and BC03 starbursts, the
  LePhare COSMOS set of Ilbert et al. 2009), the simulator's original family (and BPZ's default set).
* ``fsps``: non-negative random combinations of eazy-py's 12 ``tweak_fsps_QSF_12_v3`` FSPS templates, the
  files this package ships for the EAZY peer (read with `rail.deepdisc.peers.templates.load_template_set`).
  `FSPS_CANDIDATES` Dirichlet-weighted combinations are drawn with the fixed seed `FSPS_SEED` (the family is
  the same in every run); for each COSMOS template, in order, the unused combination nearest in the two
  rest-frame colours f_nu(2800 A) / f_nu(5500 A) and f_nu(2.2 um) / f_nu(5500 A) is taken, so the sequence
  spans about the same UV-optical-near-infrared colours red to blue (the population's classes keep their
  meaning) while its continuum shapes, breaks and lines are FSPS's. Templates 7-12 of that set carry FSPS's own
  nebular lines; the simulator's line model adds its lines on top, as for every family.

A *library* (the ``sed_library`` simulation option) is one family or several: ``mixed`` draws each galaxy's
family at random, with equal odds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "SED_LIBRARIES",
    "COSMOS_TEMPLATE_LIST",
    "REFERENCE_WAVELENGTH",
    "HALPHA",
    "SedFamily",
    "library_families",
    "sed_family",
    "cosmos_sed_directory",
    "load_cosmos_templates",
]

#: Choices of the ``sed_library`` option and the families each one draws from.
LIBRARY_FAMILIES = {"cosmos": ("cosmos",), "fsps": ("fsps",), "mixed": ("cosmos", "fsps")}
SED_LIBRARIES = tuple(LIBRARY_FAMILIES)
COSMOS_TEMPLATE_LIST = "COSMOS_seds.list"
#: Rest-frame wavelength (Angstrom) where template f_nu is normalised (V band of the absolute magnitudes).
REFERENCE_WAVELENGTH = 5500.0
HALPHA = 6563.0
#: Rest-frame wavelengths (Angstrom) of the colours (against 5500 A) that place the FSPS combinations.
COLOUR_WAVELENGTHS = (2800.0, 22000.0)
#: Continuum beside H-alpha (Angstrom), clear of [NII] and [SII], for templates that carry their own lines.
HALPHA_SIDEBANDS = (6450.0, 6700.0)
FSPS_SEED = 18
FSPS_CANDIDATES = 20000
#: Dirichlet concentration of the FSPS weights (< 1: most combinations are dominated by a few templates).
FSPS_DIRICHLET_ALPHA = 0.5


@dataclass(frozen=True)
class SedFamily:
    """A red-to-blue sequence of rest-frame galaxy SEDs.

    Attributes
    ----------
    name : str
        Family name (``cosmos``, ``fsps``).
    names : tuple of str
        One name per SED.
    wave : ndarray (L,)
        Rest-frame wavelength, Angstrom.
    fnu : ndarray (T, L)
        f_nu of each SED divided by its value at `REFERENCE_WAVELENGTH`.
    halpha_continuum : ndarray (T,)
        Continuum f_nu under H-alpha (same units), to which the simulator's line equivalent widths refer.
    """

    name: str
    names: tuple[str, ...]
    wave: np.ndarray
    fnu: np.ndarray
    halpha_continuum: np.ndarray


def library_families(library: str) -> tuple[str, ...]:
    """The families a ``sed_library`` choice draws from (``mixed``: ``cosmos`` and ``fsps``)."""
    if library not in LIBRARY_FAMILIES:
        raise ConfigError(f"sed_library {library!r} unknown: choose one of {', '.join(SED_LIBRARIES)}")
    return LIBRARY_FAMILIES[library]


def cosmos_sed_directory() -> Path:
    """Return the directory of pz-rail-base's COSMOS templates (``rail/examples_data/.../SED``)."""
    from rail.core.utils import RAILDIR

    path = Path(RAILDIR) / "rail" / "examples_data" / "estimation_data" / "data" / "SED"
    if not (path / COSMOS_TEMPLATE_LIST).exists():  # an installed layout without RAILDIR
        path = Path(str(resources.files("rail.examples_data"))) / "estimation_data" / "data" / "SED"
    if not (path / COSMOS_TEMPLATE_LIST).exists():
        raise ConfigError(f"{path / COSMOS_TEMPLATE_LIST}: COSMOS templates not found; install pz-rail-base")
    return path


@lru_cache(maxsize=1)
def load_cosmos_templates() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Read the COSMOS templates, red to blue, as f_nu shapes normalised at `REFERENCE_WAVELENGTH`.

    Returns
    -------
    names : tuple of str
        Template file names in list order (Ell1 ... SB11: red to blue).
    wave : ndarray (L,)
        Rest-frame wavelength, Angstrom (common grid of the files).
    fnu : ndarray (T, L)
        f_nu of each template divided by its value at 5500 Angstrom.
    """
    directory = cosmos_sed_directory()
    names = tuple((directory / COSMOS_TEMPLATE_LIST).read_text().split())
    wave = None
    shapes = []
    for name in names:
        w, flam = np.loadtxt(directory / name, unpack=True)
        if wave is None:
            wave = w
        fnu = np.interp(wave, w, flam) * wave**2
        shapes.append(fnu / np.interp(REFERENCE_WAVELENGTH, wave, fnu))
    return names, wave, np.asarray(shapes)


def _fsps_basis() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """eazy-py's 12 FSPS templates (the package's copy) on their common grid, f_nu normalised at 5500 A."""
    from rail.deepdisc.peers.eazy_paths import DEFAULT_EAZY_TEMPLATES
    from rail.deepdisc.peers.templates import load_template_set

    tset = load_template_set(DEFAULT_EAZY_TEMPLATES, extend=False)
    wave = tset.waves[0]
    fnu = np.array([np.interp(wave, w, f) * wave**2 for w, f in zip(tset.waves, tset.fluxes)])
    return tset.names, wave, fnu / _at(wave, fnu, REFERENCE_WAVELENGTH)[:, None]


def _at(wave: np.ndarray, fnu: np.ndarray, x) -> np.ndarray:
    """Each SED's f_nu at wavelength(s) ``x``: (T,) or (T, len(x))."""
    return np.array([np.interp(x, wave, f) for f in fnu])


def fsps_weights() -> np.ndarray:
    """Weights (T, 12) of the ``fsps`` family's SEDs on the normalised FSPS templates (rows sum to 1)."""
    _, wave, basis = _fsps_basis()
    _, cwave, cosmos = load_cosmos_templates()
    candidates = np.random.default_rng(FSPS_SEED).dirichlet(np.full(len(basis), FSPS_DIRICHLET_ALPHA),
                                                            size=FSPS_CANDIDATES)
    colours = np.log(candidates @ _at(wave, basis, COLOUR_WAVELENGTHS))  # (candidates, 2)
    free = np.ones(len(candidates), bool)
    rows = []
    for target in np.log(_at(cwave, cosmos, COLOUR_WAVELENGTHS)):
        k = int(np.argmin(np.where(free, np.hypot(*(colours - target).T), np.inf)))
        free[k] = False
        rows.append(candidates[k])
    return np.asarray(rows)


@lru_cache(maxsize=2)
def sed_family(name: str) -> SedFamily:
    """Load one SED family (cached per process).

    Parameters
    ----------
    name : {"cosmos", "fsps"}
        The family.

    Returns
    -------
    SedFamily
    """
    if name == "cosmos":
        names, wave, fnu = load_cosmos_templates()
        return SedFamily(name, names, wave, fnu, _at(wave, fnu, HALPHA))
    if name == "fsps":
        _, wave, basis = _fsps_basis()
        fnu = fsps_weights() @ basis
        cont = _at(wave, fnu, HALPHA_SIDEBANDS).mean(axis=1)
        names = tuple(f"fsps_mix_{k:02d}" for k in range(len(fnu)))
        return SedFamily(name, names, wave, fnu, cont)
    raise ConfigError(f"SED family {name!r} unknown: choose cosmos or fsps")
