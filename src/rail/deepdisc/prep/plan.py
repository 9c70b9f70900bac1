"""Tilings of a mosaic: which windows become tiles, and the primary tile of every catalog object.

A `TilePlan` lists the windows of one tiling that pass the coverage check (`CoverageChecker`; grid tiles,
then re-centred cutouts) and the primary tile of every catalog object (`rail.deepdisc.prep.tiling`).
:mod:`rail.deepdisc.prep.cutouts` then cuts the planned tiles out of the mosaics into TileSet files.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import PrepError, PrepWarning
from rail.deepdisc.prep.catalog import PhotCatalog
from rail.deepdisc.prep.mosaics import MosaicStack
from rail.deepdisc.prep.tiling import assign_primary, box_inside, grid_origins, recentred_origin

__all__ = [
    "RECENTRED_ID_OFFSET",
    "MosaicObjects",
    "TilePlan",
    "CoverageChecker",
    "plan_tiling",
]

#: Offset of re-centred tile ids (plus the object id), so they never collide with grid tile ids.
RECENTRED_ID_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class MosaicObjects:
    """Catalog objects inside the mosaic, with their positions on its grid, footprints and labels.

    Parameters
    ----------
    phot : PhotCatalog
        Ids, sky positions, magnitudes, star flags (M rows).
    x, y : ndarray of float64 (M,)
        Centroids, mosaic pixels (0-based).
    box : ndarray of float64 (M, 4)
        Footprint boxes ``x0, y0, x1, y1`` (x1/y1 exclusive), mosaic pixels; NaN = no footprint.
    redshift : ndarray of float64 (M,)
        Spectroscopic labels (NaN = none).
    ebv : ndarray of float64 (M,)
        Milky-Way E(B-V), mag.
    """

    phot: PhotCatalog
    x: np.ndarray
    y: np.ndarray
    box: np.ndarray
    redshift: np.ndarray
    ebv: np.ndarray
    _sorted_ids: np.ndarray = field(init=False, repr=False)
    _id_order: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        order = np.argsort(self.phot.object_id, kind="stable")
        object.__setattr__(self, "_id_order", order)
        object.__setattr__(self, "_sorted_ids", self.phot.object_id[order])

    def rows_of(self, labels: np.ndarray) -> np.ndarray:
        """Rows of segmentation labels (labels that are not catalog ids are skipped)."""
        if len(self._sorted_ids) == 0:
            return np.empty(0, np.int64)
        pos = np.clip(np.searchsorted(self._sorted_ids, labels), 0, len(self._sorted_ids) - 1)
        return self._id_order[pos[self._sorted_ids[pos] == labels]]


@dataclass
class TilePlan:
    """Tiles of one tiling and the primary tile of every object.

    Attributes
    ----------
    origins : ndarray of int64 (T, 2)
        ``y0, x0`` of each tile on the mosaic grid.
    kinds : ndarray of str (T,)
        ``grid`` or ``recentred``.
    tile_ids : ndarray of int64 (T,)
        Grid tiles: flat index in the full grid; re-centred: `RECENTRED_ID_OFFSET` + object id.
    primary : ndarray of int64 (M,)
        Tile (row of ``origins``) owning each object, -1 = none.
    counts : dict
        What the plan kept and dropped (for the summary).
    """

    origins: np.ndarray
    kinds: np.ndarray
    tile_ids: np.ndarray
    primary: np.ndarray
    counts: dict = field(default_factory=dict)


class CoverageChecker:
    """Decide which windows have enough coverage in every band, reading each window once.

    Parameters
    ----------
    stack : MosaicStack
        The bands.
    tile_shape : (int, int)
        (h, w) of the windows.
    max_uncovered_fraction : float
        Largest fraction of pixels allowed to lack coverage in some band.
    progress_bar : bool
        Show a progress bar.
    """

    def __init__(
        self,
        stack: MosaicStack,
        tile_shape: tuple[int, int],
        *,
        max_uncovered_fraction: float = 0.0,
        progress_bar: bool = True,
    ):
        self._stack, self._shape = stack, tile_shape
        self._max, self._progress = max_uncovered_fraction, progress_bar
        self._known: dict[tuple[int, int], bool] = {}

    def check(self, origins: Sequence[tuple[int, int]], what: str = "tiles") -> np.ndarray:
        """Boolean (T,): whether each window at ``(y0, x0)`` is covered well enough."""
        h, w = self._shape
        out = np.zeros(len(origins), bool)
        bar = tqdm(origins, desc=f"coverage ({what})", unit="tile", disable=not self._progress)
        for k, (y0, x0) in enumerate(bar):
            key = (int(y0), int(x0))
            if key not in self._known:
                self._known[key] = self._stack.uncovered_fraction(key[0], key[1], h, w) <= self._max
            out[k] = self._known[key]
        return out


def plan_tiling(
    objects: MosaicObjects,
    mosaic_shape: tuple[int, int],
    tile_shape: tuple[int, int],
    coverage: CoverageChecker,
    *,
    overlap_px: int = 0,
    cover_edges: bool = False,
    recentred: bool = False,
) -> TilePlan:
    """Plan a tiling: covered grid tiles, the most central one per object, optional re-centred cutouts.

    Parameters
    ----------
    objects : MosaicObjects
        Objects to place.
    mosaic_shape, tile_shape : (int, int)
        (ny, nx) and (h, w).
    coverage : CoverageChecker
        Drops windows without coverage.
    overlap_px : int
        Overlap of neighbouring grid tiles.
    cover_edges : bool
        Add tiles flush with the far edges (every object can then be placed); objects left without a
        tile raise one `PrepWarning`.
    recentred : bool
        Give objects that their grid tile cuts a centred cutout holding their whole footprint, which becomes
        their primary appearance.

    Returns
    -------
    TilePlan
    """
    y_o, x_o = grid_origins(mosaic_shape, tile_shape, overlap_px=overlap_px, cover_edges=cover_edges)
    grid = np.array([(a, b) for a in y_o for b in x_o], dtype=np.int64).reshape(-1, 2)
    if not len(grid):
        raise PrepError(f"the mosaics ({mosaic_shape[0]} x {mosaic_shape[1]} px) are smaller than one tile "
                        f"({tile_shape[0]} x {tile_shape[1]} px): choose a smaller tile size")
    what = "full-catalog grid" if cover_edges else "labelled grid"
    kept = coverage.check(grid, what).reshape(len(y_o), len(x_o))
    flat = assign_primary(objects.x, objects.y, y_o, x_o, tile_shape, kept)
    index = np.full(len(grid), -1, np.int64)
    index[kept.ravel()] = np.arange(int(kept.sum()))
    primary = np.where(flat >= 0, index[np.maximum(flat, 0)], -1)
    plan = TilePlan(
        origins=grid[kept.ravel()],
        kinds=np.array(["grid"] * int(kept.sum()), dtype=object),
        tile_ids=np.flatnonzero(kept.ravel()).astype(np.int64),
        primary=primary,
    )
    plan.counts = {
        "grid_tiles": int(len(grid)),
        "tiles_without_coverage": int((~kept).sum()),
        "objects_without_coverage": int((primary < 0).sum()),
    }
    if recentred:
        _add_recentred(plan, objects, mosaic_shape, tile_shape, coverage)
    if cover_edges and plan.counts["objects_without_coverage"]:
        # without edge tiles the strips beyond the last whole tile are left out on purpose: no warning there
        warnings.warn(
            f"{plan.counts['objects_without_coverage']} catalog object(s) lie in no tile with full "
            f"coverage ({what}); they are left out",
            PrepWarning,
            stacklevel=2,
        )
    return plan


def _add_recentred(plan: TilePlan, objects: MosaicObjects, mosaic_shape, tile_shape, coverage) -> None:
    origin = plan.origins[np.maximum(plan.primary, 0)]
    cut = (plan.primary >= 0) & ~box_inside(objects.box, origin[:, 0], origin[:, 1], tile_shape)
    rows = np.flatnonzero(cut)
    cands = [
        recentred_origin(objects.x[i], objects.y[i], objects.box[i], tile_shape, mosaic_shape) for i in rows
    ]
    possible = np.array([c is not None for c in cands], bool)
    origins = np.array([c for c in cands if c is not None], dtype=np.int64).reshape(-1, 2)
    ok = coverage.check(origins, "recentred")
    chosen = rows[possible][ok]
    n0 = len(plan.origins)
    plan.origins = np.concatenate([plan.origins, origins[ok]])
    plan.kinds = np.concatenate([plan.kinds, np.array(["recentred"] * len(chosen), dtype=object)])
    plan.tile_ids = np.concatenate([plan.tile_ids, RECENTRED_ID_OFFSET + objects.phot.object_id[chosen]])
    plan.primary[chosen] = n0 + np.arange(len(chosen))
    plan.counts.update(
        cut_by_grid_tile=int(len(rows)),
        recentred_tiles=int(len(chosen)),
        too_large_to_recentre=int((~possible).sum()),
        recentred_without_coverage=int((~ok).sum()),
    )
