"""The eazy peer's template grid, integrated by us, and single-template fits on it.

eazy's own per-template integration takes minutes for finely sampled SEDs and its parallel path leaves the
grid all zeros unless ``verbose > 1`` (eazy-py 0.8.7), so `build_template_grid` integrates the templates with
`rail.deepdisc.peers.templates.template_fluxes` (vectorised, eazy's IGM) and hands the result to
``eazy.photoz.TemplateGrid`` as ``tempfilt_data``. `best_single_template` is the ``template_combos="1"``
model of `rail.deepdisc.peers.eazy_fit.EazyRunner.fit_at_redshift`.
"""

from __future__ import annotations

import logging

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.capture import captured_output
from rail.deepdisc.peers.templates import load_template_set, template_fluxes

__all__ = ["build_template_grid", "best_single_template"]

logger = logging.getLogger(__name__)


def best_single_template(
    fnu: np.ndarray, efnu: np.ndarray, templates: np.ndarray, tef: np.ndarray
) -> np.ndarray:
    """Model fluxes of the single template of lowest chi^2 (free amplitude, eazy's template error).

    Parameters
    ----------
    fnu, efnu : ndarray (B,)
        Fluxes and errors of one object; bands with ``efnu <= 0`` are left out.
    templates : ndarray (T, B)
        Template fluxes at the object's redshift (a slice of the template grid).
    tef : ndarray (B,)
        Template error (fraction of the flux) per band at that redshift.

    Returns
    -------
    ndarray (B,)
        The best template scaled to the data; zeros when no band is usable.
    """
    ok = efnu > 0
    if not ok.any():
        return np.zeros_like(fnu)
    w = 1.0 / (efnu[ok] ** 2 + (tef[ok] * np.maximum(fnu[ok], 0.0)) ** 2)
    a = templates[:, ok]
    num = a @ (w * fnu[ok])
    den = (a * a) @ w
    amp = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    chi2 = np.sum(w * fnu[ok] ** 2) - amp * num
    best = int(np.argmin(np.where(den > 0, chi2, np.inf)))
    return amp[best] * templates[best]


def build_template_grid(params: dict, settings):
    """Build eazy's `TemplateGrid` from our integration of the templates through the filters.

    Parameters
    ----------
    params : dict
        eazy parameters (``Z_MIN``, ``Z_MAX``, ``Z_STEP``, ``TEMPLATES_FILE``, ``FILTERS_RES``,
        ``IGM_SCALE_TAU``).
    settings : EazySettings
        Bands, templates and IGM options.

    Returns
    -------
    eazy.photoz.TemplateGrid
        Redshifts x templates x filters, with ``tempfilt_data`` from
        `rail.deepdisc.peers.templates.template_fluxes` and no Galactic extinction.

    Raises
    ------
    ConfigError
        If the templates do not reach the bands (the grid is all zeros).
    """
    with captured_output():
        from eazy import templates as eazy_templates
        from eazy import utils as eazy_utils
        from eazy.photoz import TemplateGrid

        zgrid = eazy_utils.log_zgrid(zr=[params["Z_MIN"], params["Z_MAX"]], dz=params["Z_STEP"]).astype(
            np.float32
        )
        templates = eazy_templates.read_templates_file(
            templates_file=params["TEMPLATES_FILE"], velocity_smooth=0, resample_wave=None
        )
    data = template_fluxes(
        load_template_set(settings.templates),
        zgrid,
        settings.bands,
        igm="eazy",
        scale_tau=settings.igm_scale_tau,
        add_cgm=settings.add_cgm,
    )
    if not np.any(data > 0):
        raise ConfigError(
            f"eazy template grid for {settings.templates!r} is empty: the templates do not reach "
            f"the bands {' '.join(settings.bands)}"
        )
    with captured_output():
        grid = TemplateGrid(
            zgrid,
            templates,
            RES=params["FILTERS_RES"],
            f_numbers=list(range(1, len(settings.bands) + 1)),
            add_igm=params["IGM_SCALE_TAU"],
            galactic_ebv=0,
            Eb=0,
            n_proc=-1,
            verbose=0,
            array_dtype=np.float32,
            tempfilt_data=data.astype(np.float32),
        )
    logger.debug("eazy template grid: %d z x %d templates x %d filters", *grid.tempfilt.shape)
    return grid
