"""Apply a fitted consensus model to tabulated PDFs (one ``(N, G)`` array per method on the model's grid).

`combined_posterior` is the hierarchical Bayesian combination: each method calibrated (temperature, optional PIT
map), mixed with its bad term, the product softened by ``1 / beta`` and normalised. `combine_pdfs` then applies
the model's output PIT maps (:mod:`rail.deepdisc.consensus.output_maps`), which recalibrate the spread of the
combined PDFs. The consensus's point estimates are taken from the posterior before those maps
(`rail.deepdisc.consensus.io.iter_consensus`): a map's slope changes from one PIT interval to the next, and a
map that widens raises the tails against the core, which can lift a secondary peak of a broad, multimodal PDF
above the main one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rail.deepdisc.consensus.calibration import PitMap, temper
from rail.deepdisc.consensus.grid import normalise_rows
from rail.deepdisc.consensus.hb import add_log, bin_index, combine_log_product, with_bad_term
from rail.deepdisc.consensus.model import ConsensusModel
from rail.deepdisc.consensus.output_maps import apply_output_maps
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["checked_pdfs", "calibrate_rows", "bad_rows", "calibrated_pdfs", "combined_posterior", "apply_model_maps",
           "combine_pdfs"]


def checked_pdfs(pdfs: Sequence[np.ndarray], names: Sequence[str], zgrid: np.ndarray, n: int) -> list[np.ndarray]:
    """The PDF arrays, shape-checked; rows with non-finite or negative values, or no probability, cleaned."""
    g = len(zgrid)
    if len(pdfs) != len(names):
        raise DeepDiscError(f"{len(pdfs)} PDF arrays for {len(names)} method names")
    out = []
    for name, p in zip(names, pdfs):
        p = np.asarray(p, float)
        if p.shape != (n, g):
            raise DeepDiscError(f"method {name}: PDFs have shape {p.shape}, expected ({n}, {g}) on the grid")
        sums = p.sum(axis=1)
        if not (np.all(np.isfinite(sums)) and np.all(sums > 0) and p.min(initial=0.0) >= 0):
            p = normalise_rows(zgrid, p.copy())  # non-finite, negative or empty rows: cleaned, empty ones flat
        out.append(p)
    return out


def calibrate_rows(zgrid, pdfs, temperature, pit_knots) -> np.ndarray:
    """PDFs tempered by ``temperature``, then mapped by the PIT map ``pit_knots`` (None or empty: none)."""
    cal = temper(zgrid, pdfs, temperature)
    if pit_knots is not None and len(pit_knots):
        cal = PitMap(np.asarray(pit_knots, float)).apply(zgrid, cal)
    return cal


def bad_rows(model_row: np.ndarray, overall: float, bins: np.ndarray) -> np.ndarray:
    """Each object's bad fraction: its magnitude bin's, or ``overall`` for an unknown magnitude (bin -1)."""
    return np.where(bins >= 0, model_row[np.clip(bins, 0, None)], overall)


def calibrated_pdfs(model: ConsensusModel, index: int, pdfs: np.ndarray, magnitude=None,
                    *, with_bad: bool = True) -> np.ndarray:
    """One method's PDFs after the model's calibration (and its bad term, unless ``with_bad=False``).

    Parameters
    ----------
    model : ConsensusModel
    index : int
        The method's position in ``model.methods``.
    pdfs : ndarray, shape (N, G)
        Its PDFs on the model's grid.
    magnitude : array_like, shape (N,), optional
        Magnitudes (None: the bad fraction over all labels).
    with_bad : bool
        Mix in the bad term.

    Returns
    -------
    ndarray, shape (N, G)
    """
    zgrid = model.zgrid
    knots = model.pit_knots[index] if model.pit_knots.size else None
    cal = calibrate_rows(zgrid, pdfs, float(model.temperature[index]), knots)
    if not with_bad:
        return cal
    mag = np.full(len(pdfs), np.nan) if magnitude is None else np.asarray(magnitude, float)
    f = bad_rows(model.bad_fraction[index], float(model.bad_fraction_all[index]), bin_index(mag, model.mag_edges))
    return with_bad_term(cal, f, 1.0 / (zgrid[-1] - zgrid[0]), inplace=True)


def combined_posterior(model: ConsensusModel, pdfs: Sequence[np.ndarray], magnitude=None) -> np.ndarray:
    """The consensus posteriors of N objects, before the model's output PIT maps.

    Each method calibrated and mixed with its bad term, the product softened by ``1 / beta`` and normalised.

    Parameters
    ----------
    model : ConsensusModel
    pdfs : sequence of ndarray, shape (N, G) each
        The methods' PDFs on the model's grid, in the model's method order.
    magnitude : array_like, shape (N,), optional
        Magnitudes for the bad-fraction bins and ``beta`` (None or NaN: the bad fraction over all labels and
        the model's ``beta`` at its pivot).

    Returns
    -------
    ndarray, shape (N, G)
        Normalised on the grid.
    """
    zgrid = model.zgrid
    n = len(pdfs[0]) if len(pdfs) else 0
    pdfs = checked_pdfs(pdfs, model.methods, zgrid, n)
    logp = np.zeros((n, len(zgrid)))
    for j, p in enumerate(pdfs):
        if model.used[j]:
            add_log(logp, calibrated_pdfs(model, j, p, magnitude))
    return combine_log_product(zgrid, logp, model.beta_of(magnitude, n))


def apply_model_maps(model: ConsensusModel, posterior: np.ndarray, magnitude=None) -> np.ndarray:
    """The model's output PIT maps applied to `combined_posterior`'s PDFs, in place (unchanged without maps)."""
    n = len(posterior)
    return apply_output_maps(model.zgrid, posterior, model.output_pit_knots, model.output_map_rows(magnitude, n),
                             model.output_pit_positions)


def combine_pdfs(model: ConsensusModel, pdfs: Sequence[np.ndarray], magnitude=None) -> np.ndarray:
    """The consensus PDFs of N objects: `combined_posterior` after the model's output PIT maps, if any.

    Parameters and returns as `combined_posterior`.
    """
    return apply_model_maps(model, combined_posterior(model, pdfs, magnitude), magnitude)
