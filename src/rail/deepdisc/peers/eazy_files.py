"""The input files eazy-py reads, written from our filters, templates and trained quantities.

eazy-py 0.8.7 ships no templates, filter file or template-error function (users keep them in an eazy-photoz
checkout), so everything it reads is written here, into a run folder:

- ``FILTER.RES``: astro-sedpy's NIRCam curves (`rail.deepdisc.filters.filter_curve`) in EAZY's format, filter
  number k+1 for band k, one block per band (``NPTS name lambda_c= PIVOT`` then ``i wavelength throughput``);
- ``zphot.translate``: ``flux_<BAND> F<k>`` / ``err_<BAND> E<k>`` (eazy crashes with ``translate_file=None``);
- ``templates.param`` + one two-column file per template (``N path 1.0`` lines);
- ``template_error.def``: the template error function, rest wavelength (Angstrom) and relative error;
- ``prior.dat``: an apparent-magnitude prior, ``# z m_1 m_2 ...`` then p(z | m_j) columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.filters import filter_curve, pivot_wavelength
from rail.deepdisc.peers.templates import TemplateSet

__all__ = [
    "FILTER_FILE",
    "TRANSLATE_FILE",
    "TEMPLATES_FILE",
    "TEF_FILE",
    "PRIOR_FILE",
    "flux_column",
    "error_column",
    "write_filter_res",
    "write_translate",
    "write_templates",
    "default_template_error",
    "write_template_error",
    "write_prior",
]

FILTER_FILE = "FILTER.RES"
TRANSLATE_FILE = "zphot.translate"
TEMPLATES_FILE = "templates.param"
TEF_FILE = "template_error.def"
PRIOR_FILE = "prior.dat"

#: Template error function: floor, and the extra relative error reached in the far UV and the mid infrared
#: (rest frame), where empirical templates are least certain (shape after EAZY's TEMPLATE_ERROR.eazy_v1.0).
TEF_FLOOR = 0.02
TEF_UV_EXTRA = 0.25
TEF_IR_EXTRA = 0.15
#: Rest wavelengths (Angstrom) where the UV and IR ramps of the template error start and reach full height.
TEF_UV_START, TEF_UV_FULL = 2500.0, 912.0
TEF_IR_START, TEF_IR_FULL = 1.6e4, 5.0e4
#: Wavelength samples of the written template error function, Angstrom.
TEF_WAVE = np.geomspace(100.0, 1.0e5, 300)


def flux_column(band: str) -> str:
    """Catalog column holding the flux density of a band in eazy's input table.

    Parameters
    ----------
    band : str
        NIRCam band.

    Returns
    -------
    str
        ``flux_<BAND>``.
    """
    return f"flux_{band}"


def error_column(band: str) -> str:
    """Catalog column holding the flux density uncertainty of a band in eazy's input table.

    Parameters
    ----------
    band : str
        NIRCam band.

    Returns
    -------
    str
        ``err_<BAND>``.
    """
    return f"err_{band}"


def write_filter_res(bands: Sequence[str], path: str | os.PathLike) -> Path:
    """Write NIRCam filter curves in EAZY's ``FILTER.RES`` format.

    Parameters
    ----------
    bands : sequence of str
        NIRCam bands; band ``bands[k]`` becomes filter number ``k + 1``.
    path : path
        Output file.

    Returns
    -------
    Path
        The written file.
    """
    lines = []
    for band in bands:
        wave, trans = filter_curve(band)
        lines.append(
            f"{len(wave):6d} NIRCam_{band} sedpy:jwst_{band.lower()} lambda_c= {pivot_wavelength(band):.2f}"
        )
        lines.extend(f"{i + 1:6d} {w:.5e} {t:.5e}" for i, (w, t) in enumerate(zip(wave, trans)))
    return write_text_atomic("\n".join(lines) + "\n", path)


def write_translate(bands: Sequence[str], path: str | os.PathLike) -> Path:
    """Write eazy's translate file: ``flux_<BAND>``/``err_<BAND>`` -> filter numbers ``F<k+1>``/``E<k+1>``.

    Parameters
    ----------
    bands : sequence of str
        NIRCam bands, in the order of `write_filter_res`.
    path : path
        Output file.

    Returns
    -------
    Path
        The written file.
    """
    lines = []
    for k, band in enumerate(bands):
        lines.append(f"{flux_column(band)} F{k + 1}")
        lines.append(f"{error_column(band)} E{k + 1}")
    return write_text_atomic("\n".join(lines) + "\n", path)


def write_templates(templates: TemplateSet, folder: str | os.PathLike) -> Path:
    """Write a template set in EAZY's format: one ``<name>.dat`` per template and a ``templates.param`` list.

    Parameters
    ----------
    templates : TemplateSet
        Rest-frame SEDs (wavelength in Angstrom, f_lambda).
    folder : path
        Existing output folder.

    Returns
    -------
    Path
        The templates list file (EAZY's ``TEMPLATES_FILE``).
    """
    folder = Path(folder)
    rows = []
    for k, (name, wave, flux) in enumerate(zip(templates.names, templates.waves, templates.fluxes)):
        body = "# wavelength_angstrom f_lambda\n" + "\n".join(f"{w:.6e} {f:.6e}" for w, f in zip(wave, flux))
        target = write_text_atomic(body + "\n", folder / f"{name}.dat")
        rows.append(f"{k + 1} {target} 1.0")
    return write_text_atomic("\n".join(rows) + "\n", folder / TEMPLATES_FILE)


def default_template_error(wave_rest: np.ndarray) -> np.ndarray:
    """Evaluate the package's template error function (relative flux error vs rest wavelength, amplitude 1).

    Parameters
    ----------
    wave_rest : ndarray
        Rest-frame wavelength, Angstrom.

    Returns
    -------
    ndarray
        `TEF_FLOOR` in the optical, rising linearly in log wavelength by `TEF_UV_EXTRA` towards the Lyman
        limit and by `TEF_IR_EXTRA` towards 5 micron.
    """
    logw = np.log(np.asarray(wave_rest, float))
    uv = np.clip((np.log(TEF_UV_START) - logw) / np.log(TEF_UV_START / TEF_UV_FULL), 0.0, 1.0)
    ir = np.clip((logw - np.log(TEF_IR_START)) / np.log(TEF_IR_FULL / TEF_IR_START), 0.0, 1.0)
    return TEF_FLOOR + TEF_UV_EXTRA * uv + TEF_IR_EXTRA * ir


def write_template_error(path: str | os.PathLike) -> Path:
    """Write `default_template_error` sampled on `TEF_WAVE` as eazy's ``TEMP_ERR_FILE``.

    Parameters
    ----------
    path : path
        Output file.

    Returns
    -------
    Path
        The written file.
    """
    tef = default_template_error(TEF_WAVE)
    return write_text_atomic("\n".join(f"{w:.4f} {t:.5f}" for w, t in zip(TEF_WAVE, tef)) + "\n", path)


def write_prior(zgrid: np.ndarray, mags: np.ndarray, density: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an apparent-magnitude prior in eazy's ``PRIOR_FILE`` format.

    Parameters
    ----------
    zgrid : ndarray (NZ,)
        Redshifts.
    mags : ndarray (M,)
        Apparent AB magnitudes of the prior columns, increasing.
    density : ndarray (NZ, M)
        p(z | m_j), each column normalised over ``zgrid``.
    path : path
        Output file.

    Returns
    -------
    Path
        The written file.
    """
    head = "# z " + " ".join(f"{m:.3f}" for m in mags)
    rows = [f"{z:.5f} " + " ".join(f"{v:.6e}" for v in row) for z, row in zip(zgrid, density)]
    return write_text_atomic(head + "\n" + "\n".join(rows) + "\n", path)
