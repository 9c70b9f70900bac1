"""The eazy peer's template grid, integrated as eazy-py integrates it but vectorised, and single-template fits.

eazy-py's `TemplateGrid` integrates every template through every filter at every redshift with
``eazy.templates.Template.integrate_filter``, whose flux-conserving rebinning (``eazy.utils.interp_conserve``)
loops in Python over the filter's wavelength samples: about 10 minutes for its 12 default FSPS templates, 256
redshifts and 9 NIRCam bands on one core, and its parallel path leaves the grid all zeros unless ``verbose > 1``
(eazy-py 0.8.7). `build_template_grid` computes the same numbers (`integrate_like_eazy`: the same templates,
filters, IGM and rebinning, to float rounding) in about a second and hands them to `TemplateGrid` as
``tempfilt_data``. `best_single_template` is the ``template_combos="1"`` model of
`rail.deepdisc.peers.eazy_fit.EazyRunner.fit_at_redshift`.
"""

from __future__ import annotations

import logging

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.capture import captured_output

__all__ = ["conserving_rebin", "integrate_like_eazy", "eazy_templates", "build_template_grid", "best_single_template"]

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


def conserving_rebin(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Flux-conserving resampling of (xp, fp) onto x: eazy's ``utils.interp_conserve`` without its Python loop.

    Each output value is the mean of the piecewise-linear function through (xp, fp), zero outside xp, over the
    bin between the midpoints of x (the first and last bins end at x[0] and x[-1]), integrated with the
    trapezoid rule over the function's own samples and the bin edges, as eazy does.

    Parameters
    ----------
    x : ndarray (N,)
        Output positions, increasing.
    xp : ndarray (M,)
        Input positions, increasing.
    fp : ndarray (..., M)
        Input values; leading axes are resampled alike (e.g. templates sharing a wavelength grid).

    Returns
    -------
    ndarray (..., N)
    """
    fp = np.asarray(fp, float)
    edges = np.concatenate([[x[0]], 0.5 * (x[1:] - x[:-1]) + x[:-1], [x[-1]]])
    outside = (edges > xp[-1]) | (edges < xp[0])
    lo, hi = np.searchsorted(xp, [edges[0], edges[-1]], side="left")
    inner = np.arange(lo, max(hi, lo))
    # merge the bin edges and the input samples inside them (an edge before an equal sample)
    edge_at = np.arange(len(edges)) + np.searchsorted(xp[inner], edges, side="left")
    sample_at = np.arange(len(inner)) + np.searchsorted(edges, xp[inner], side="right")
    xs = np.empty(len(edges) + len(inner))
    xs[edge_at], xs[sample_at] = edges, xp[inner]
    ys = np.empty(fp.shape[:-1] + xs.shape)
    at_edges = np.stack([np.interp(edges, xp, row, left=0.0, right=0.0) for row in fp.reshape(-1, len(xp))])
    at_edges[:, outside] = 0.0
    ys[..., edge_at] = at_edges.reshape(fp.shape[:-1] + edges.shape)
    ys[..., sample_at] = fp[..., inner]
    steps = 0.5 * (ys[..., 1:] + ys[..., :-1]) * np.diff(xs)
    cumulative = np.concatenate([np.zeros(fp.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], axis=-1)
    return np.diff(cumulative[..., edge_at], axis=-1) / np.diff(edges)


def integrate_like_eazy(templates, filters, zgrid: np.ndarray, *, add_igm: bool) -> np.ndarray:
    """Band fluxes of eazy templates on a redshift grid, as eazy's ``_integrate_tempfilt`` computes them.

    Without Galactic extinction and 2175 A bump (eazy's ``galactic_ebv=0``, ``Eb=0``): at each redshift the
    template's f_nu (``Template.flux_fnu``, nearest redshift for redshift-dependent templates) times its IGM
    transmission (``Template.igm_absorption``, the template's own IGM model) is rebinned onto the filter's
    wavelengths (`conserving_rebin`) and averaged over the filter per unit ln(nu). Templates that share a
    wavelength grid are rebinned together.

    Parameters
    ----------
    templates : list of eazy.templates.Template
        Templates, as eazy reads them (``eazy.templates.read_templates_file`` with the IGM keywords).
    filters : list of eazy.filters.FilterDefinition
        Filters, in catalog order.
    zgrid : ndarray (NZ,)
        Redshifts.
    add_igm : bool
        Apply the IGM (eazy's ``IGM_SCALE_TAU > 0``).

    Returns
    -------
    ndarray (NZ, NT, NF)
        Template fluxes in eazy's units (no (1 + z) factors, as eazy).
    """
    out = np.zeros((len(zgrid), len(templates), len(filters)))
    waves = [np.asarray(f.wave, float) for f in filters]
    weights = [np.asarray(f.throughput, float) / w for f, w in zip(filters, waves)]
    norms = [float(f.norm) for f in filters]
    groups: dict[tuple, list[int]] = {}
    for t, templ in enumerate(templates):
        groups.setdefault(_grid_key(templ), []).append(t)
    for members in groups.values():
        first = templates[members[0]]
        wave = np.asarray(first.wave, float)
        fixed = [templates[t].flux_fnu(iz=0) if templates[t].NZ == 1 else None for t in members]
        for iz, z in enumerate(zgrid):
            igm = first.igm_absorption(z=z) if add_igm else 1.0
            rows = []
            for t, fnu in zip(members, fixed):
                if fnu is None:
                    fnu = templates[t].flux_fnu(z=z, redshift_type="nearest")
                rows.append(fnu * igm)
            xp = wave * (1 + z)
            for k, (fw, wt) in enumerate(zip(waves, weights)):
                out[iz, members, k] = np.trapezoid(wt * conserving_rebin(fw, xp, np.stack(rows)), fw) / norms[k]
    return out


def _grid_key(templ) -> tuple:
    """Templates with equal keys share a wavelength grid and an IGM model (rebinned and absorbed together)."""
    igm = templ.igm
    settings = tuple(repr(getattr(igm, name, None)) for name in ("scale_tau", "add_cgm", "sigmoid_params"))
    return np.asarray(templ.wave, float).tobytes(), type(igm).__name__, settings


def eazy_templates(params: dict) -> list:
    """Read ``params["TEMPLATES_FILE"]`` as `eazy.photoz.PhotoZ` does (smoothing, resampling, IGM keywords).

    Parameters
    ----------
    params : dict
        eazy parameters (upper case); eazy's defaults fill in the ones not given.

    Returns
    -------
    list of eazy.templates.Template
    """
    with captured_output():
        from eazy import param as eazy_param
        from eazy import templates as eazy_templates_module

        full = eazy_param.read_param_file(None, verbose=False)
        for key, value in params.items():
            full.params[key] = value
        return eazy_templates_module.read_templates_file(
            templates_file=full["TEMPLATES_FILE"],
            velocity_smooth=full["TEMPLATE_SMOOTH"],
            resample_wave=full["RESAMPLE_WAVE"],
            **full.igm_kwargs,
        )


def build_template_grid(params: dict, settings):
    """Build eazy's `TemplateGrid` with `integrate_like_eazy` (eazy's numbers, without its Python loops).

    Parameters
    ----------
    params : dict
        eazy parameters (``Z_MIN``, ``Z_MAX``, ``Z_STEP``, ``TEMPLATES_FILE``, ``FILTERS_RES``,
        ``IGM_SCALE_TAU``, ...).
    settings : EazySettings
        The bands (filter numbers 1..B of ``FILTERS_RES``) and the template set's name (for messages).

    Returns
    -------
    eazy.photoz.TemplateGrid
        Redshifts (eazy's log grid, float32) x templates x filters, no Galactic extinction.

    Raises
    ------
    ConfigError
        If the templates do not reach the bands (the grid is all zeros).
    """
    with captured_output():
        from eazy import filters as eazy_filters
        from eazy import utils as eazy_utils
        from eazy.photoz import TemplateGrid

        zgrid = eazy_utils.log_zgrid(zr=[params["Z_MIN"], params["Z_MAX"]], dz=params["Z_STEP"]).astype(
            np.float32
        )
        res = eazy_filters.FilterFile(params["FILTERS_RES"])
    templates = eazy_templates(params)
    filters = [res[k] for k in range(1, len(settings.bands) + 1)]
    add_igm = bool(params["IGM_SCALE_TAU"])
    data = integrate_like_eazy(templates, filters, zgrid, add_igm=add_igm)
    if not np.any(data > 0):
        raise ConfigError(
            f"eazy template grid for {settings.templates!r} is empty: the templates do not reach "
            f"the bands {' '.join(settings.bands)}"
        )
    with captured_output():
        grid = TemplateGrid(
            zgrid,
            templates,
            RES=res,
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
