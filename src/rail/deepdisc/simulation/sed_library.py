"""The simulator's galaxy SED families: COSMOS templates, random FSPS combinations and BPZ's CWW+SB set.

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

* ``cww``: BPZ's ``CWWSB4`` set as desc_bpz ships it (Coleman, Wu & Weedman 1980 El, Sbc, Scd, Im and the
  Kinney et al. 1996 starbursts SB3, SB2, extended by Benitez 2004, plus BC03 5 and 25 Myr simple stellar
  populations), in BPZ's order red to blue and interpolated linearly between adjacent templates as BPZ's
  ``INTERP`` does: for each COSMOS template, in order, the position on that continuous sequence with the same
  rest-frame colour f_nu(2800 A) / f_nu(5500 A), never bluer-to-redder (so the classes keep their meaning; the
  COSMOS ellipticals and Sa/Sb, redder in the UV than CWW's El, all get El). The B2004a galaxy templates stop at
  2.56 micron and their near-infrared is unreliable (El's f_lambda falls tenfold from 1.9 to 2.56 micron); NIRCam
  needs 5 micron at z = 0, so beyond `CWW_NIR_JOIN` (1.6 micron, the H-band peak) they continue as
  f_nu ~ lambda^`CWW_NIR_SLOPE`, a stellar photosphere (the COSMOS and FSPS families fall with slopes -1.1 to
  -1.8 there). Flux below the Lyman limit is zero, as in the COSMOS templates. SB3 and SB2 carry their own
  nebular lines; the simulator's line model adds its lines on top.

A *library* (the ``sed_library`` simulation option) is one family or several joined by ``+``
(``cosmos+cww``): each galaxy draws its family at random, with equal odds. ``mixed`` is ``cosmos+fsps`` (the
name of earlier files and commands). `parse_sed_library` checks a library and spells it in `SED_FAMILIES`
order, so ``cww+cosmos`` and ``cosmos+cww`` give the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "SED_FAMILIES",
    "SED_LIBRARIES",
    "ALL_FAMILIES",
    "COSMOS_TEMPLATE_LIST",
    "REFERENCE_WAVELENGTH",
    "HALPHA",
    "SedFamily",
    "library_families",
    "parse_sed_library",
    "cww_sed_list",
    "sed_family",
    "cosmos_sed_directory",
    "load_cosmos_templates",
]

#: The SED families, in the order in which a library's photometry grid stacks them.
SED_FAMILIES = ("cosmos", "fsps", "cww")
#: Library names that stand for several families (kept for earlier files and commands).
LIBRARY_ALIASES = {"mixed": ("cosmos", "fsps")}
#: Single-word libraries; any ``+``-joined combination of families is a library too.
SED_LIBRARIES = (*SED_FAMILIES, *LIBRARY_ALIASES)
#: The library of every family.
ALL_FAMILIES = "+".join(SED_FAMILIES)
COSMOS_TEMPLATE_LIST = "COSMOS_seds.list"
#: desc_bpz's list of BPZ's CWW + Kinney starbursts + SSP templates (the ``cww`` family).
CWW_TEMPLATE_LIST = "CWWSB4.list"
#: Rest wavelength (Angstrom) beyond which the CWW/B2004a galaxy templates follow `CWW_NIR_SLOPE`.
CWW_NIR_JOIN = 16000.0
#: d ln f_nu / d ln lambda of their near-infrared continuation (a stellar photosphere's, Rayleigh-Jeans -2).
CWW_NIR_SLOPE = -1.5
#: Rest wavelength (Angstrom) up to which every ``cww`` SED is tabulated (5 micron at z = 0, with margin).
CWW_RED_LIMIT = 6.0e4
#: Points of the continuous CWW sequence searched for each COSMOS colour.
CWW_STEPS = 4000
LYMAN_LIMIT = 911.75
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
        Family name (``cosmos``, ``fsps``, ``cww``).
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
    """The families a ``sed_library`` draws from, in `SED_FAMILIES` order (``mixed``: ``cosmos`` and ``fsps``).

    Raises
    ------
    ConfigError
        One message naming the unknown or repeated family and the valid spellings.
    """
    if not isinstance(library, str):
        raise ConfigError(f"sed_library must be a string such as cosmos+cww, got {library!r}")
    names = [part.strip().lower() for part in library.split("+")]
    families = [f for name in names for f in LIBRARY_ALIASES.get(name, (name,))]
    unknown = [name for name in names if name not in SED_LIBRARIES]
    if unknown or len(set(families)) != len(families):
        problem = f"unknown family {unknown[0]!r}" if unknown else "a family named twice"
        raise ConfigError(
            f"sed_library {library!r}: {problem}; give one of {', '.join(SED_FAMILIES)} or several joined by + "
            f"(e.g. cosmos+cww; mixed = cosmos+fsps)"
        )
    return tuple(f for f in SED_FAMILIES if f in families)


def parse_sed_library(library: str) -> str:
    """Check a ``sed_library`` and spell it canonically (``mixed`` kept; families joined in `SED_FAMILIES` order).

    Examples
    --------
    >>> parse_sed_library("CWW + cosmos")
    'cosmos+cww'
    """
    families = library_families(library)
    return library.strip().lower() if library.strip().lower() in LIBRARY_ALIASES else "+".join(families)


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


def cww_sed_list() -> Path:
    """desc_bpz's ``CWWSB4.list`` (the ``cww`` family's templates), found in the installed package."""
    try:
        folder = Path(str(resources.files("desc_bpz"))) / "data_files" / "SED"
    except ModuleNotFoundError:
        raise ConfigError("the cww SED family reads BPZ's CWWSB4 templates from desc_bpz, which is not "
                          "installed: install pz-rail-bpz") from None
    path = folder / CWW_TEMPLATE_LIST
    if not path.is_file():
        raise ConfigError(f"{path}: BPZ's CWWSB4 template list not found; reinstall pz-rail-bpz (desc_bpz)")
    return path


@lru_cache(maxsize=1)
def cww_basis() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """BPZ's CWWSB4 templates in list order (red to blue) on one grid, f_nu normalised at 5500 A.

    The galaxy templates that stop short of `CWW_RED_LIMIT` (the six B2004a ones) continue beyond
    `CWW_NIR_JOIN` as f_nu ~ lambda^`CWW_NIR_SLOPE`; flux below the Lyman limit is set to zero.
    """
    from rail.deepdisc.peers.templates import RED_STEP_DEX, load_template_set

    tset = load_template_set(cww_sed_list(), extend=False)
    tail = CWW_NIR_JOIN * 10.0 ** np.arange(0.0, np.log10(CWW_RED_LIMIT / CWW_NIR_JOIN) + RED_STEP_DEX, RED_STEP_DEX)
    wave = np.unique(np.concatenate([*tset.waves, tail]))
    wave = wave[(wave >= min(w[0] for w in tset.waves)) & (wave <= CWW_RED_LIMIT)]
    rows = []
    for w, flam in zip(tset.waves, tset.fluxes):
        fnu = np.interp(wave, w, flam, left=0.0) * wave**2
        if w[-1] < CWW_RED_LIMIT:
            red = wave > CWW_NIR_JOIN
            fnu[red] = np.interp(CWW_NIR_JOIN, wave, fnu) * (wave[red] / CWW_NIR_JOIN) ** CWW_NIR_SLOPE
        rows.append(np.where(wave < LYMAN_LIMIT, 0.0, fnu))
    fnu = np.asarray(rows)
    return tset.names, wave, fnu / _at(wave, fnu, REFERENCE_WAVELENGTH)[:, None]


def cww_positions() -> np.ndarray:
    """Position of each ``cww`` SED on the continuous CWWSB4 sequence (template i + fraction towards i + 1).

    For each COSMOS template in order: the position whose f_nu(2800 A) / f_nu(5500 A) is nearest the COSMOS
    template's, and never before the previous one (red to blue).
    """
    _, wave, basis = cww_basis()
    _, cwave, cosmos = load_cosmos_templates()
    steps = np.linspace(0.0, len(basis) - 1.0, CWW_STEPS)
    uv = _at(wave, basis, COLOUR_WAVELENGTHS[0])
    i = np.minimum(steps.astype(int), len(basis) - 2)
    colour = np.log((1.0 - (steps - i)) * uv[i] + (steps - i) * uv[i + 1])  # f_nu(5500 A) = 1 all along
    targets = np.log(_at(cwave, cosmos, COLOUR_WAVELENGTHS[0]))
    best = steps[np.argmin(np.abs(colour[None, :] - targets[:, None]), axis=1)]
    return np.maximum.accumulate(best)


def _cww_family() -> SedFamily:
    names, wave, basis = cww_basis()
    pos = cww_positions()
    i = np.minimum(pos.astype(int), len(basis) - 2)
    w = pos - i
    fnu = (1.0 - w)[:, None] * basis[i] + w[:, None] * basis[i + 1]
    labels = tuple(names[a] if f < 1e-3 else names[a + 1] if f > 1 - 1e-3 else
                   f"{names[a]}:{1 - f:.2f}+{names[a + 1]}:{f:.2f}" for a, f in zip(i, w))
    return SedFamily("cww", labels, wave, fnu, _at(wave, fnu, HALPHA_SIDEBANDS).mean(axis=1))


@lru_cache(maxsize=len(SED_FAMILIES))
def sed_family(name: str) -> SedFamily:
    """Load one SED family (cached per process).

    Parameters
    ----------
    name : {"cosmos", "fsps", "cww"}
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
    if name == "cww":
        return _cww_family()
    raise ConfigError(f"SED family {name!r} unknown: choose one of {', '.join(SED_FAMILIES)}")
