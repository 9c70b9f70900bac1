"""Template SED sets for the template-fitting peers (EAZY, BPZ), and their redshifted photometry.

The peers fit *their own* templates, never the simulator's: the simulator draws galaxies from the 31 COSMOS
(Polletta et al. 2007 + BC03) SEDs of pz-rail-base, while the peers' default set is BPZ's ``CWWSB4`` list from
the same folder (Coleman, Wu & Weedman 1980 extended by Benitez 2004: El, Sbc, Scd, Im, SB3, SB2, and two 5
and 25 Myr simple stellar populations). Real template fitters face template mismatch; so do ours. Any other
set can be chosen: a BPZ ``.list`` file, an EAZY templates ``.param`` file, a folder of ``.sed``/``.dat``
files, or a bare list name in pz-rail-base's SED folder (``"CWWSB4"``, ``"COSMOS_seds"`` for a
matched-template control run).

The CWW/B2004a SEDs stop at 2.56 micron; NIRCam reaches 5 micron, so low-redshift objects need the rest-frame
near-infrared. `extend_red` continues each SED beyond its last point with the power law fitted to its reddest
``RED_FIT_OCTAVE`` (a Rayleigh-Jeans-like stellar tail), instead of BPZ's linear extrapolation of the last
five points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.filters import C_ANGSTROM_PER_S, filter_curve
from rail.deepdisc.peers.eazy_paths import is_eazy_param, read_eazy_param
from rail.deepdisc.presets import resolve_bands

__all__ = [
    "DEFAULT_TEMPLATES",
    "RED_LIMIT_ANGSTROM",
    "TemplateSet",
    "rail_sed_dir",
    "load_template_set",
    "extend_red",
    "IGM_MODELS",
    "igm_transmission",
    "template_fluxes",
]

#: Default template set of both peers: BPZ's CWW + Benitez (2004) + SSP list, not the simulator's COSMOS set.
DEFAULT_TEMPLATES = "CWWSB4"
#: Rest-frame wavelength up to which every template is defined after `extend_red`, Angstrom (5 micron / (1+0)
#: with margin for F480M's red edge).
RED_LIMIT_ANGSTROM = 6.0e4
#: Fraction of the reddest wavelength over which the red power-law slope is fitted (25%: ~1.9-2.56 micron).
RED_FIT_OCTAVE = 0.25
#: Sampling of the red extension, in log10(wavelength) per point.
RED_STEP_DEX = 0.005
#: Shortest wavelength kept from an SED file, Angstrom (rows at 0 break log-spaced operations).
MIN_WAVE_ANGSTROM = 1.0

#: Intergalactic absorption models of `igm_transmission`.
IGM_MODELS = ("eazy", "madau", "none")


@dataclass(frozen=True)
class TemplateSet:
    """Rest-frame template SEDs.

    Parameters
    ----------
    names : tuple of str
        Template names (file stems), in fitting order.
    waves : tuple of ndarray (L_t,)
        Rest-frame wavelength of each template, Angstrom, increasing.
    fluxes : tuple of ndarray (L_t,)
        f_lambda of each template, arbitrary normalisation.
    source : str
        Where the set came from (for messages and model provenance).
    """

    names: tuple[str, ...]
    waves: tuple[np.ndarray, ...]
    fluxes: tuple[np.ndarray, ...]
    source: str = "<memory>"

    def __post_init__(self):
        if not self.names:
            raise ConfigError(f"template set {self.source!r} is empty")
        if not len(self.names) == len(self.waves) == len(self.fluxes):
            raise ConfigError(f"template set {self.source!r}: names, waves and fluxes differ in length")
        for name, w, f in zip(self.names, self.waves, self.fluxes):
            if w.shape != f.shape or w.ndim != 1 or len(w) < 2 or np.any(np.diff(w) <= 0):
                raise ConfigError(
                    f"template {name!r} of {self.source!r}: wavelengths must increase, one flux each"
                )

    def __len__(self) -> int:
        return len(self.names)


def rail_sed_dir() -> Path:
    """pz-rail-base's folder of BPZ template SEDs (``rail/examples_data/estimation_data/data/SED``)."""
    from rail.utils.path_utils import RAILDIR

    return Path(RAILDIR) / "rail" / "examples_data" / "estimation_data" / "data" / "SED"


def load_template_set(
    spec: str | os.PathLike = DEFAULT_TEMPLATES, *, extend: bool = True, root: str | os.PathLike | None = None
) -> TemplateSet:
    """Read a template set.

    Parameters
    ----------
    spec : str or path
        A BPZ list file (``*.list``: one SED file per line, relative to the list's folder), an EAZY templates
        file (``*.param``/``*.spectra.param``: ``N path [to_angstrom]`` per line, paths relative to the
        template root as in eazy-photoz; see `rail.deepdisc.peers.eazy_paths`), a folder (every ``*.sed``
        and ``*.dat`` in it, sorted), or a bare list name in pz-rail-base's SED folder (``"CWWSB4"``).
    extend : bool
        Continue each template to `RED_LIMIT_ANGSTROM` with `extend_red`.
    root : path, optional
        Template root of an EAZY ``.param`` file (an eazy-photoz folder; default: the package's copy of
        eazy-py's default templates).

    Returns
    -------
    TemplateSet

    Raises
    ------
    ConfigError
        If the set cannot be found or a file is unreadable.

    Examples
    --------
    >>> tset = load_template_set("CWWSB4")  # doctest: +SKIP
    >>> tset.names[:2]  # doctest: +SKIP
    ('El_B2004a', 'Sbc_B2004a')
    """
    files, scales = _template_files(str(spec), root)
    names, waves, fluxes = [], [], []
    for path, to_angstrom in zip(files, scales):
        wave, flux = _read_sed(path)
        wave = wave * to_angstrom
        if extend:
            wave, flux = extend_red(wave, flux)
        names.append(path.stem)
        waves.append(wave)
        fluxes.append(flux)
    return TemplateSet(tuple(names), tuple(waves), tuple(fluxes), source=str(spec))


def _template_files(spec: str, root: str | os.PathLike | None) -> tuple[list[Path], list[float]]:
    if is_eazy_param(spec):
        entries = read_eazy_param(spec, root)
        return [e.path for e in entries], [e.to_angstrom for e in entries]
    path = Path(spec).expanduser()
    if not path.exists() and os.sep not in spec and not Path(spec).suffix:
        path = rail_sed_dir() / f"{spec}.list"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".sed", ".dat"))
        if not files:
            raise ConfigError(f"templates folder {path} holds no .sed or .dat file")
        return files, [1.0] * len(files)
    if not path.is_file():
        raise ConfigError(
            f"template set {spec!r} not found: give a .list or .param file, a folder of SEDs, or a "
            f"list name in {rail_sed_dir()}"
        )
    lines = [
        ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    files, scales = [path.parent / ln[0] for ln in lines], [1.0] * len(lines)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"template set {path}: missing SED file(s) {', '.join(missing[:3])}")
    return files, scales


def _read_sed(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.loadtxt(path, usecols=(0, 1), comments="#", ndmin=2)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path}: not a two-column (wavelength, f_lambda) SED file ({exc})") from None
    keep = data[:, 0] >= MIN_WAVE_ANGSTROM
    wave, flux = data[keep, 0], np.clip(data[keep, 1], 0.0, None)
    wave, first = np.unique(wave, return_index=True)
    return wave, flux[first]


def extend_red(
    wave: np.ndarray, flux: np.ndarray, *, max_wave: float = RED_LIMIT_ANGSTROM
) -> tuple[np.ndarray, np.ndarray]:
    """Continue an SED redwards of its last point with a power law fitted to its red end.

    Parameters
    ----------
    wave : ndarray (L,)
        Wavelength, Angstrom, increasing.
    flux : ndarray (L,)
        f_lambda, non-negative.
    max_wave : float
        Wavelength to extend to, Angstrom; an SED already reaching it is returned unchanged.

    Returns
    -------
    wave, flux : ndarray (L + K,)
        The SED with K appended points, f_lambda ∝ lambda**slope, slope fitted in log-log over the reddest
        `RED_FIT_OCTAVE` of the SED (and capped at 0, so the extension never rises).
    """
    if wave[-1] >= max_wave:
        return wave, flux
    fit = (wave >= wave[-1] * (1.0 - RED_FIT_OCTAVE)) & (flux > 0)
    slope = 0.0
    if np.count_nonzero(fit) >= 2:
        slope = min(float(np.polyfit(np.log(wave[fit]), np.log(flux[fit]), 1)[0]), 0.0)
    n_new = max(int(np.ceil(np.log10(max_wave / wave[-1]) / RED_STEP_DEX)), 1)
    new_wave = wave[-1] * 10.0 ** (RED_STEP_DEX * np.arange(1, n_new + 1))
    new_flux = flux[-1] * (new_wave / wave[-1]) ** slope
    return np.concatenate([wave, new_wave]), np.concatenate([flux, new_flux])


def igm_transmission(
    wave_obs: np.ndarray, z: float, *, model: str = "eazy", scale_tau: float = 1.0, add_cgm: bool = False
) -> np.ndarray:
    """Intergalactic transmission exp(-tau) at observed wavelengths for a source at redshift z.

    Parameters
    ----------
    wave_obs : ndarray
        Observed-frame wavelength, Angstrom.
    z : float
        Source redshift.
    model : {"eazy", "madau", "none"}
        eazy-py's IGM (Inoue et al. 2014, plus the Asada et al. 2024 CGM damping wing at z > 6 with
        ``add_cgm``; `eazy.igm.Asada24`), BPZ's Madau (1995) (``desc_bpz``), or none.
    scale_tau : float
        Factor on eazy's IGM optical depth (eazy's ``IGM_SCALE_TAU``).
    add_cgm : bool
        Add the CGM damping wing (eazy's ``ADD_CGM``).

    Returns
    -------
    ndarray
        Transmission in [0, 1], the shape of ``wave_obs``.
    """
    wave_obs = np.asarray(wave_obs, float)
    if model not in IGM_MODELS:
        raise ConfigError(f"igm model {model!r} unknown: choose one of {', '.join(IGM_MODELS)}")
    if model == "none" or z <= 0:
        return np.ones_like(wave_obs)
    if model == "madau":
        from desc_bpz.bpz_tools_py3 import etau_madau

        return np.asarray(etau_madau(wave_obs, z), float)
    igm = _eazy_igm(float(scale_tau), bool(add_cgm))
    out = np.ones_like(wave_obs)
    lyman = wave_obs / (1.0 + z) < igm.max_fuv_wave
    if lyman.any():
        out[lyman] = igm.full_IGM(z, wave_obs[lyman])
    return out


@lru_cache(maxsize=8)
def _eazy_igm(scale_tau: float, add_cgm: bool):
    from rail.deepdisc.peers.capture import captured_output

    with captured_output():
        from eazy.igm import Asada24

        return Asada24(scale_tau=scale_tau, add_cgm=add_cgm)


def template_fluxes(
    templates: TemplateSet,
    zgrid: np.ndarray,
    bands: str | Sequence[str],
    *,
    igm: str = "eazy",
    scale_tau: float = 1.0,
    add_cgm: bool = False,
) -> np.ndarray:
    """Band-averaged f_nu of every template redshifted onto a grid (photon-counting NIRCam bands).

    Parameters
    ----------
    templates : TemplateSet
        Rest-frame SEDs.
    zgrid : ndarray (NZ,)
        Redshifts, >= 0.
    bands : str or sequence of str
        NIRCam band names or a preset (NF bands).
    igm : {"eazy", "madau", "none"}
        Intergalactic absorption (see `igm_transmission`, which also takes ``scale_tau`` and ``add_cgm``).
    scale_tau : float
        Factor on eazy's IGM optical depth.
    add_cgm : bool
        Add eazy's CGM damping wing.

    Returns
    -------
    ndarray (NZ, NT, NF)
        f_nu in arbitrary units common to all bands of a template (ratios between bands are colours). The
        observed f_lambda is the rest-frame one stretched by (1 + z), without cosmological dimming (the
        normalisation is fitted by the peers).
    """
    zgrid = np.atleast_1d(np.asarray(zgrid, float))
    bands = resolve_bands(bands if isinstance(bands, str) else list(bands))
    out = np.zeros((len(zgrid), len(templates), len(bands)))
    for k, band in enumerate(bands):
        fw, ft = filter_curve(band)
        den = np.trapezoid(ft * C_ANGSTROM_PER_S / fw, fw)
        for iz, z in enumerate(zgrid):
            igm_t = igm_transmission(fw, z, model=igm, scale_tau=scale_tau, add_cgm=add_cgm)
            rest = fw / (1.0 + z)
            for t, (w, f) in enumerate(zip(templates.waves, templates.fluxes)):
                flam = np.interp(rest, w, f, left=0.0, right=0.0) * igm_t
                out[iz, t, k] = np.trapezoid(flam * ft * fw, fw) / den
    return out
