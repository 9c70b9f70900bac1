"""The input files eazy-py reads, written from our filters, templates and trained quantities.

eazy-py 0.8.7 ships no templates, filter file or template-error function (users keep them in an eazy-photoz
checkout). The templates and template error function come from an eazy-photoz folder
(`rail.deepdisc.peers.eazy_paths`: the package ships eazy-py's defaults); the rest is written here, into a
run folder:

- ``FILTER.RES``: astro-sedpy's NIRCam curves (`rail.deepdisc.filters.filter_curve`) in EAZY's format, filter
  number k+1 for band k, one block per band (``NPTS name lambda_c= PIVOT`` then ``i wavelength throughput``);
- ``zphot.translate``: ``flux_<BAND> F<k>`` / ``err_<BAND> E<k>`` (eazy crashes with ``translate_file=None``);
- ``templates.param``: an eazy templates file with absolute paths (eazy then runs from any folder), listing
  the templates of an eazy ``.param`` file as they are, or other template sets written as two-column files;
- ``prior.dat``: an apparent-magnitude prior, ``# z m_1 m_2 ...`` then p(z | m_j) columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.filters import filter_curve, pivot_wavelength
from rail.deepdisc.peers.eazy_paths import is_eazy_param, read_eazy_param, write_eazy_param
from rail.deepdisc.peers.templates import TemplateSet, load_template_set

__all__ = [
    "FILTER_FILE",
    "TRANSLATE_FILE",
    "TEMPLATES_FILE",
    "PRIOR_FILE",
    "flux_column",
    "error_column",
    "write_filter_res",
    "write_translate",
    "write_templates",
    "write_templates_file",
    "write_prior",
]

FILTER_FILE = "FILTER.RES"
TRANSLATE_FILE = "zphot.translate"
TEMPLATES_FILE = "templates.param"
PRIOR_FILE = "prior.dat"


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


def write_templates_file(
    spec: str | os.PathLike, folder: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> Path:
    """Write eazy's ``TEMPLATES_FILE`` for a template set, into ``folder``.

    Parameters
    ----------
    spec : str or path
        An eazy templates ``.param`` file (its templates are listed as they are, paths resolved from the
        template root), or any other set `rail.deepdisc.peers.templates.load_template_set` reads (written as
        two-column files, extended to the red).
    folder : path
        Existing output folder.
    root : path, optional
        Template root (default: the package's eazy-photoz files).

    Returns
    -------
    Path
        The templates list file (`TEMPLATES_FILE` in ``folder``).
    """
    if is_eazy_param(spec):
        return write_eazy_param(read_eazy_param(spec, root), Path(folder) / TEMPLATES_FILE)
    return write_templates(load_template_set(spec), folder)


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
