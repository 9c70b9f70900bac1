"""PIT maps of the combined PDFs (Bordoloi, Lilly & Amara 2010), fitted on the labels' held-out PIT values.

The consensus of `rail.deepdisc.consensus.fit.fit_consensus` is calibrated per method and softened by ``beta``;
what it still gets wrong in shape shows in the PIT values of labels it was not fitted on. `fit_output_maps` takes
them from `rail.deepdisc.consensus.fit.CrossValidation.held_out` (each label's consensus fitted without its
fold), fits one monotone map of PIT values, or one per magnitude group, and decides by the labels'
cross-validated likelihood whether to use them (``ConsensusSettings.output_pit``); `apply_output_maps` applies
them to any objects' combined PDFs. The maps are made symmetric about the median (`symmetric`), so that they only
widen or narrow the PDFs, unless ``ConsensusSettings.output_pit_shift``: at a given magnitude the spec-z are a
selection of the objects estimated, and where the labels' truths fall off the PDFs' medians is that selection.
"""

from __future__ import annotations

import logging

import numpy as np

from rail.deepdisc.consensus.calibration import PitMap, fit_pit_map, pit_of
from rail.deepdisc.consensus.grid import values_at
from rail.deepdisc.consensus.model import (
    MIN_GROUP_LABELS,
    OUTPUT_PIT_POSITIONS,
    SELECTION_MIN_GAIN,
    ConsensusSettings,
    map_rows,
)

__all__ = ["MAX_OUTPUT_GROUPS", "symmetric", "output_maps", "apply_output_maps", "fit_output_maps"]

log = logging.getLogger(__name__)

#: Most magnitude groups of the output PIT maps.
MAX_OUTPUT_GROUPS = 3
_TINY = 1e-300


def _group_edges(mag: np.ndarray) -> np.ndarray | None:
    """Inner edges of the output maps' magnitude groups: the labels' quantiles, `MIN_GROUP_LABELS` per group."""
    known = mag[np.isfinite(mag)]
    groups = min(MAX_OUTPUT_GROUPS, len(known) // MIN_GROUP_LABELS)
    if groups < 2:
        return None
    edges = np.unique(np.quantile(known, np.arange(1, groups) / groups))
    return edges if len(edges) == groups - 1 else None


def symmetric(knots: np.ndarray, positions) -> np.ndarray:
    """A PIT map's knots made symmetric about the median: ``(G(u) + 1 - G(1 - u)) / 2``.

    The map then only widens or narrows the PDFs (``G(1/2) = 1/2``, the median kept) and no longer moves them.
    """
    positions = np.asarray(positions, float)
    knots = np.asarray(knots, float)
    return 0.5 * (knots + 1.0 - np.interp(1.0 - positions, positions, knots))


def output_maps(pit: np.ndarray, mag: np.ndarray, edges: np.ndarray | None,
                positions=OUTPUT_PIT_POSITIONS, shift: bool = False) -> np.ndarray:
    """PIT maps (knots, one row each) from PIT values: all of them, then one per magnitude group of ``edges``.

    Parameters
    ----------
    pit, mag : ndarray, shape (N,)
        Held-out PIT values of the labelled objects and their magnitudes.
    edges : ndarray or None
        Inner edges of the magnitude groups (None: one map).
    positions : sequence of float
        Knot positions of each map.
    shift : bool
        Keep the maps as fitted, so that they also move the PDFs; else (default) `symmetric`.

    Returns
    -------
    ndarray, shape (R, len(positions))
        ``R = 1`` without groups, else 1 + groups (row 0: every label, for objects of unknown magnitude).
    """
    positions = np.asarray(positions, float)
    k = len(positions) - 1
    maps = [fit_pit_map(pit, k, positions=positions).knots]
    if edges is not None:
        rows = map_rows(len(edges) + 2, edges, mag)  # 0 for an unknown magnitude, 1 + group otherwise
        maps += [fit_pit_map(pit[rows == r], k, positions=positions).knots for r in range(1, len(edges) + 2)]
    return np.asarray(maps if shift else [symmetric(m, positions) for m in maps])


def apply_output_maps(zgrid: np.ndarray, pdfs: np.ndarray, knots: np.ndarray, rows: np.ndarray,
                      positions=OUTPUT_PIT_POSITIONS) -> np.ndarray:
    """``g_r(F(z)) P(z)`` per object, ``r = rows[i]`` its map (``-1``: unchanged), normalised; in place."""
    for r in np.unique(rows):
        if r < 0:
            continue
        sel = rows == r
        pdfs[sel] = PitMap(knots[r], np.asarray(positions, float)).apply(zgrid, pdfs[sel])
    return pdfs


def _maps_score(cv, held: np.ndarray, pit: np.ndarray, edges) -> float:
    """Held-out log-likelihood of the labels with output maps fitted on the other folds' held-out PITs."""
    total = 0.0
    for train, test in cv.splits():
        knots = output_maps(pit[train], cv.mag[train], edges, shift=cv.settings.output_pit_shift)
        rows = map_rows(knots.shape[0], np.zeros(0) if edges is None else edges, cv.mag[test])
        out = apply_output_maps(cv.zgrid, held[test].copy(), knots, rows)
        total += float(np.sum(np.log(np.maximum(values_at(cv.zgrid, out, cv.z[test]), _TINY))))
    return total


def fit_output_maps(cv, subset, grow: bool, settings: ConsensusSettings
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The PIT maps of the combined PDFs, fitted on held-out PIT values.

    ``cv`` is the labels' `rail.deepdisc.consensus.fit.CrossValidation`, ``subset`` and ``grow`` the methods and
    the ``beta`` growth the consensus uses.

    The PIT values are those of each label's consensus fitted without its fold (`CrossValidation.held_out`),
    so the maps correct what the fitted consensus leaves on objects it was not fitted on (in-sample PITs look
    better calibrated than new objects' are). ``settings.output_pit``: ``"one"`` map, one per magnitude group
    (``"magnitude"``; groups at the labels' magnitude quantiles, at least `MIN_GROUP_LABELS` labels each, at most
    `MAX_OUTPUT_GROUPS`; one map where the labels are too few), or ``"auto"``: the maps by magnitude (one map
    where there are no groups) where they raise the labels' cross-validated log-likelihood (maps fitted on the
    other folds' held-out PITs) by more than `SELECTION_MIN_GAIN` nats, else none.

    ``"auto"`` never takes one map for all objects when the groups exist. Spec-z are far brighter than the
    objects estimated: one map, fitted mostly on bright labels, carries their correction to the faint objects.
    The cross-validation cannot see it (its folds share the labels' selection). On the realistic benchmark's
    development sample, the one map that the earlier rule took (where it beat no map, and maps by magnitude did
    not beat it by another `SELECTION_MIN_GAIN`) put the faint bins outside the coverage tolerance
    (`benchmarks/README.md`, "Choosing the output maps on a development sample").

    Returns
    -------
    knots : ndarray, shape (R, K + 1)
        No rows (no map), one, or the map of all labels followed by one per group.
    edges : ndarray
        Inner magnitude edges of the groups (empty without groups).
    """
    held = cv.held_out(subset, grow=grow)
    pit = pit_of(cv.zgrid, held, cv.z)
    edges = _group_edges(cv.mag)
    choice = settings.output_pit
    if choice == "magnitude" and edges is None:
        log.warning("consensus: too few labels of known magnitude for output maps by magnitude (%d needed per "
                    "group): one map", MIN_GROUP_LABELS)
        choice = "one"
    if choice == "auto":
        # with magnitude groups, the maps are conditioned on magnitude: spec-z are far brighter than the objects
        # estimated, and one map of all labels would carry the bright labels' correction to faint objects (a
        # bias that the labels' cross-validation, whose folds share the selection, cannot see)
        candidate = "one" if edges is None else "magnitude"
        scores = {"none": cv.score(subset, grow=grow), candidate: _maps_score(cv, held, pit, edges)}
        choice = candidate if scores[candidate] - scores["none"] > SELECTION_MIN_GAIN else "none"
        log.info("consensus output PIT map: %s (cross-validated log-likelihood %s)", choice,
                 ", ".join(f"{name} {v:.1f}" for name, v in scores.items()))
    if choice == "none":
        return np.zeros((0, 0)), np.zeros(0)
    shift = settings.output_pit_shift
    if choice == "one":
        return output_maps(pit, cv.mag, None, shift=shift), np.zeros(0)
    return output_maps(pit, cv.mag, edges, shift=shift), edges
