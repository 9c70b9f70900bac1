"""From FITS mosaics, a segmentation image and catalogs to train, validation, test and full-catalog TileSets.

`prepare_tilesets` reads the photometric catalog, compiles spec-z labels (:mod:`rail.deepdisc.specz`), looks
up E(B-V) (:mod:`rail.deepdisc.dust`), scans the segmentation image for footprints, plans two tilings
(:mod:`rail.deepdisc.tiling`) and streams tiles into TileSet files
(:class:`rail.deepdisc.tileio.TileSetWriter`):

- labelled tiling: a grid without overlap; tiles lacking coverage in any band are dropped; tiles with at least
  one labelled primary object are split by tile into ``train`` / ``val`` / ``test`` (seeded);
- full-catalog tiling: a grid with ``overlap_px`` whose last row and column are flush with the mosaic
  edge; every catalog object inside a kept tile gets exactly one primary appearance (its most central
  tile) and, with ``recentred``, objects that their grid tile cuts get a centred cutout holding their
  whole footprint.

In each file an object has rows only if its primary tile is in that file; segmentation pixels of objects
without a row are set to 0, so every non-zero label of a file's segmaps is one of its objects. Memory stays
bounded: windows are read through memory maps and tiles are written in chunks.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .catalog import PhotCatalog, read_photometry
from .dust import sfd_ebv
from .exceptions import ConfigError, PrepError, PrepWarning
from .mosaics import (
    MosaicStack,
    SegmentationImage,
    find_mosaics,
    find_segmentation,
    footprint_boxes,
    open_mosaics,
    open_segmentation,
)
from .presets import resolve_bands
from .specz import CompileSettings, SpeczFormat, compile_specz, read_specz
from .tileio import TileSetWriter
from .tiles import TileSet, empty_objects
from .tiling import (
    TILE_SIZE_ARCSEC,
    assign_primary,
    box_inside,
    grid_origins,
    recentred_origin,
    split_tiles,
    tile_shape_px,
)

__all__ = ["OUTPUTS", "PrepInputs", "PrepSettings", "prepare_tilesets"]

log = logging.getLogger(__name__)

#: Output TileSets of `prepare_tilesets`, written as ``OUTDIR/<name>.h5``.
OUTPUTS = ("train", "val", "test", "full")
SUMMARY_NAME = "prep_summary.json"
#: Half-width of the box given to a catalog object without segmentation pixels, pixels.
MIN_BOX_HALF_PX = 2.0
#: Offset of re-centred tile ids, so they never collide with grid tile ids.
RECENTRED_ID_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class PrepSettings:
    """Options of `prepare_tilesets`.

    Parameters
    ----------
    bands : str or tuple of str
        Preset name or bands (channel order).
    tile_size_arcsec : (float, float)
        Tile (width, height), arcsec.
    overlap_px : int
        Overlap of neighbouring tiles in the full-catalog tiling, pixels.
    recentred : bool
        Add centred cutouts for objects cut by their grid tile (full-catalog tiling).
    max_uncovered_fraction : float
        Largest fraction of a tile's pixels allowed to lack coverage in some band (those pixels are set to 0).
    test_fraction, val_fraction : float
        Test share of labelled tiles; validation share of the remaining training tiles.
    seed : int
        Seed of the train/val/test split.
    flux_kind : str
        Catalog photometry: ``KRON`` or ``CIRC0`` .. ``CIRC6``.
    specz : CompileSettings
        Spec-z matching and combination options.
    dust_map_dir : str, optional
        Folder of the SFD map (default: dustmaps' data folder).
    ebv : float, optional
        Use this E(B-V) for every object instead of the map (mag).
    tiles_per_chunk : int
        Tiles held in memory before they are written.
    compression : str or None
        Image compression of the output files (``"lzf"``, ``"gzip"``, None).
    progress_bar : bool
        Show progress bars.
    """

    bands: str | tuple[str, ...] = "JADES9"
    tile_size_arcsec: tuple[float, float] = TILE_SIZE_ARCSEC
    overlap_px: int = 0
    recentred: bool = True
    max_uncovered_fraction: float = 0.0
    test_fraction: float = 0.1
    val_fraction: float = 0.1
    seed: int = 1234
    flux_kind: str = "KRON"
    specz: CompileSettings = field(default_factory=CompileSettings)
    dust_map_dir: str | None = None
    ebv: float | None = None
    tiles_per_chunk: int = 16
    compression: str | None = "lzf"
    progress_bar: bool = True

    def __post_init__(self):
        object.__setattr__(self, "bands", resolve_bands(self.bands))
        if self.overlap_px < 0:
            raise ConfigError(f"overlap_px must be >= 0, got {self.overlap_px!r}")
        if not 0.0 <= self.max_uncovered_fraction < 1.0:
            raise ConfigError(
                f"max_uncovered_fraction must be in [0, 1), got {self.max_uncovered_fraction!r}"
            )
        if self.ebv is not None and not (np.isfinite(self.ebv) and self.ebv >= 0):
            raise ConfigError(f"ebv must be a non-negative number of magnitudes, got {self.ebv!r}")
        if self.tiles_per_chunk < 1:
            raise ConfigError(f"tiles_per_chunk must be >= 1, got {self.tiles_per_chunk!r}")
        if self.specz.match_band not in self.bands:
            raise ConfigError(
                f"specz.match_band {self.specz.match_band!r} is not one of the bands {' '.join(self.bands)}"
            )


@dataclass(frozen=True)
class PrepInputs:
    """Input files of `prepare_tilesets`.

    Parameters
    ----------
    mosaics : mapping of str -> Path
        Band -> FITS mosaic.
    segmentation : Path
        Segmentation image (labels = catalog ``ID``), the reference grid.
    catalog : Path
        JADES-style photometric catalog.
    specz : tuple of (Path, SpeczFormat or str)
        Spec-z catalogs and their formats, highest priority first.
    """

    mosaics: Mapping[str, Path]
    segmentation: Path
    catalog: Path
    specz: tuple[tuple[Path, SpeczFormat | str], ...] = ()

    @classmethod
    def from_directory(
        cls,
        mosaic_dir: str | os.PathLike,
        *,
        bands: str | Sequence[str],
        catalog: str | os.PathLike,
        specz: Sequence[tuple[str | os.PathLike, SpeczFormat | str]],
        segmentation: str | os.PathLike | None = None,
    ) -> PrepInputs:
        """Find one mosaic per band (and the segmentation image, unless given) in ``mosaic_dir``."""
        bands = resolve_bands(bands)
        seg = Path(segmentation) if segmentation is not None else find_segmentation(mosaic_dir)
        return cls(
            mosaics=find_mosaics(mosaic_dir, bands),
            segmentation=seg,
            catalog=Path(catalog),
            specz=tuple((Path(p), f) for p, f in specz),
        )


@dataclass(frozen=True)
class _Objects:
    """Catalog objects inside the mosaic, with mosaic-pixel centroids, footprint boxes and labels."""

    phot: PhotCatalog
    x: np.ndarray
    y: np.ndarray
    box: np.ndarray  # (M, 4) x0, y0, x1, y1; NaN = no footprint
    redshift: np.ndarray
    ebv: np.ndarray
    sorted_ids: np.ndarray
    id_order: np.ndarray

    def rows_of(self, labels: np.ndarray) -> np.ndarray:
        """Catalog rows of segmentation labels (labels that are not catalog ids are skipped)."""
        if len(self.sorted_ids) == 0:
            return np.empty(0, np.int64)
        pos = np.clip(np.searchsorted(self.sorted_ids, labels), 0, len(self.sorted_ids) - 1)
        return self.id_order[pos[self.sorted_ids[pos] == labels]]


@dataclass
class _Plan:
    """Tiles of one tiling and the primary tile of every object (index into the tiles, -1 = none)."""

    origins: np.ndarray  # (T, 2) y0, x0
    kinds: np.ndarray
    tile_ids: np.ndarray
    primary: np.ndarray
    counts: dict = field(default_factory=dict)


def prepare_tilesets(
    inputs: PrepInputs,
    outdir: str | os.PathLike,
    *,
    settings: PrepSettings = PrepSettings(),
    paths: Mapping[str, str | os.PathLike] | None = None,
) -> dict:
    """Build ``train``, ``val``, ``test`` and ``full`` TileSets from mosaics and catalogs.

    Parameters
    ----------
    inputs : PrepInputs
        Mosaics, segmentation image, photometric and spec-z catalogs.
    outdir : str or Path
        Output folder (created); holds ``<name>.h5`` and ``prep_summary.json``.
    settings : PrepSettings
        Tiling, split, labels, dust.
    paths : mapping, optional
        Other locations for some outputs (keys from `OUTPUTS`).

    Returns
    -------
    dict
        The summary also written to ``prep_summary.json``: counts per rule and per output file.

    Raises
    ------
    PrepError
        Unreadable or inconsistent inputs (naming the file).
    DustMapError
        The SFD map is missing (with the fetch command) and no constant ``ebv`` was given.
    ConfigError
        Bad settings, or ``paths`` with an unknown key.
    """
    unknown = set(paths or {}) - set(OUTPUTS)
    if unknown:
        raise ConfigError(f"unknown output(s) {sorted(unknown)}: choose from {', '.join(OUTPUTS)}")
    missing = [b for b in settings.bands if b not in inputs.mosaics]
    if missing:
        raise PrepError(f"no mosaic given for band(s) {' '.join(missing)}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    targets = {name: Path((paths or {}).get(name, outdir / f"{name}.h5")) for name in OUTPUTS}
    summary = _prepare(inputs, targets, settings)
    _write_json(outdir / SUMMARY_NAME, summary)
    return summary


def _prepare(inputs: PrepInputs, targets: dict[str, Path], settings: PrepSettings) -> dict:
    with (
        open_segmentation(inputs.segmentation) as seg,
        open_mosaics({b: inputs.mosaics[b] for b in settings.bands}, seg) as stack,
    ):
        pixel_scale = seg.pixel_scale_arcsec()
        tile_shape = tile_shape_px(*settings.tile_size_arcsec, pixel_scale)
        objects, label_summary = _load_objects(inputs, seg, settings)
        coverage = _CoverageCache(stack, tile_shape, settings)
        labelled = _plan(
            objects, seg.shape, tile_shape, coverage, overlap_px=0, cover_edges=False, recentred=False
        )
        full = _plan(
            objects,
            seg.shape,
            tile_shape,
            coverage,
            overlap_px=settings.overlap_px,
            cover_edges=True,
            recentred=settings.recentred,
        )
        has_label = np.zeros(len(labelled.origins), bool)
        lab = (labelled.primary >= 0) & np.isfinite(objects.redshift)
        has_label[labelled.primary[lab]] = True
        candidates = np.flatnonzero(has_label)
        train, val, test = (
            candidates[s]
            for s in split_tiles(
                len(candidates),
                test_fraction=settings.test_fraction,
                val_fraction=settings.val_fraction,
                seed=settings.seed,
            )
        )
        owned = np.zeros(len(full.origins), bool)
        owned[full.primary[full.primary >= 0]] = True
        jobs = {
            "train": (labelled, train),
            "val": (labelled, val),
            "test": (labelled, test),
            "full": (full, np.flatnonzero(owned)),
        }
        files = {}
        for name, (plan, tiles) in jobs.items():
            files[name] = _write_file(
                targets[name], name, plan, tiles, objects, seg, stack, tile_shape, pixel_scale, settings
            )
    return {
        "inputs": {
            "mosaics": {b: str(p) for b, p in inputs.mosaics.items() if b in settings.bands},
            "segmentation": str(inputs.segmentation),
            "catalog": str(inputs.catalog),
            "specz": [str(p) for p, _ in inputs.specz],
        },
        "settings": _jsonable(asdict(settings)),
        "pixel_scale_arcsec": pixel_scale,
        "tile_shape_px": list(tile_shape),
        "objects": label_summary,
        "labelled_tiling": {**labelled.counts, "tiles_with_spec_z": int(len(candidates))},
        "full_tiling": full.counts,
        "files": files,
    }


def _load_objects(
    inputs: PrepInputs, seg: SegmentationImage, settings: PrepSettings
) -> tuple[_Objects, dict]:
    phot = read_photometry(inputs.catalog, settings.bands, flux_kind=settings.flux_kind)
    ids, counts = np.unique(phot.object_id, return_counts=True)
    if (counts > 1).any():
        raise PrepError(
            f"{inputs.catalog}: ID {int(ids[counts > 1][0])} appears {int(counts.max())} times; "
            f"catalog ids must be unique"
        )
    tables = [read_specz(path, fmt) for path, fmt in inputs.specz]
    labels = compile_specz(tables, phot, settings=settings.specz)
    x, y = seg.wcs.world_to_pixel_values(phot.ra, phot.dec)
    ny, nx = seg.shape
    inside = np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    sub = PhotCatalog(
        object_id=phot.object_id[inside],
        ra=phot.ra[inside],
        dec=phot.dec[inside],
        mag={b: v[inside] for b, v in phot.mag.items()},
        magerr={b: v[inside] for b, v in phot.magerr.items()},
        star=phot.star[inside],
        source=phot.source,
    )
    if settings.ebv is not None:
        ebv = np.full(len(sub), float(settings.ebv))
    else:
        ebv = sfd_ebv(sub.ra, sub.dec, map_dir=settings.dust_map_dir)
    log.info("scanning %s for object footprints", seg.path)
    order = np.argsort(sub.object_id, kind="stable")
    objects = _Objects(
        phot=sub,
        x=np.asarray(x)[inside],
        y=np.asarray(y)[inside],
        box=footprint_boxes(seg, sub.object_id),
        redshift=labels.redshift[inside],
        ebv=ebv,
        sorted_ids=sub.object_id[order],
        id_order=order,
    )
    summary = {
        "catalog": len(phot),
        "outside_mosaic": int((~inside).sum()),
        "stars": int(sub.star.sum()),
        "without_footprint": int(np.isnan(objects.box[:, 0]).sum()),
        "labelled": int(np.isfinite(objects.redshift).sum()),
        "specz_removed": labels.removed,
    }
    return objects, summary


class _CoverageCache:
    """Which tile windows have enough coverage in every band (each window read once)."""

    def __init__(self, stack: MosaicStack, tile_shape: tuple[int, int], settings: PrepSettings):
        self._stack, self._shape, self._settings = stack, tile_shape, settings
        self._known: dict[tuple[int, int], bool] = {}

    def check(self, origins: Sequence[tuple[int, int]], what: str) -> np.ndarray:
        h, w = self._shape
        out = np.zeros(len(origins), bool)
        for k, (y0, x0) in enumerate(
            tqdm(origins, desc=f"coverage ({what})", unit="tile", disable=not self._settings.progress_bar)
        ):
            key = (int(y0), int(x0))
            if key not in self._known:
                frac = self._stack.uncovered_fraction(key[0], key[1], h, w)
                self._known[key] = frac <= self._settings.max_uncovered_fraction
            out[k] = self._known[key]
        return out


def _plan(
    objects: _Objects,
    mosaic_shape,
    tile_shape,
    coverage: _CoverageCache,
    *,
    overlap_px: int,
    cover_edges: bool,
    recentred: bool,
) -> _Plan:
    y_o, x_o = grid_origins(mosaic_shape, tile_shape, overlap_px=overlap_px, cover_edges=cover_edges)
    grid = np.array([(a, b) for a in y_o for b in x_o], dtype=np.int64).reshape(-1, 2)
    what = "full-catalog grid" if cover_edges else "labelled grid"
    kept = coverage.check(grid, what).reshape(len(y_o), len(x_o))
    flat = assign_primary(objects.x, objects.y, y_o, x_o, tile_shape, kept)
    index = np.full(len(grid), -1, np.int64)
    index[kept.ravel()] = np.arange(int(kept.sum()))
    primary = np.where(flat >= 0, index[np.maximum(flat, 0)], -1)
    plan = _Plan(
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
        # the labelled grid leaves the strips beyond its last whole tile out on purpose: no warning there
        warnings.warn(
            f"{plan.counts['objects_without_coverage']} catalog object(s) lie in no tile with full "
            f"coverage ({what}); they are left out",
            PrepWarning,
            stacklevel=3,
        )
    return plan


def _add_recentred(
    plan: _Plan, objects: _Objects, mosaic_shape, tile_shape, coverage: _CoverageCache
) -> None:
    has = plan.primary >= 0
    origin = plan.origins[np.maximum(plan.primary, 0)]
    cut = has & ~box_inside(objects.box, origin[:, 0], origin[:, 1], tile_shape)
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


def _write_file(
    path: Path,
    name: str,
    plan: _Plan,
    tiles: np.ndarray,
    objects: _Objects,
    seg,
    stack,
    tile_shape,
    pixel_scale,
    settings: PrepSettings,
) -> dict:
    bands = settings.bands
    in_file = np.zeros(len(plan.origins), bool)
    in_file[tiles] = True
    owners = _owners_by_tile(plan.primary, len(plan.origins))
    writer = TileSetWriter(
        path,
        bands,
        pixel_scale,
        tile_shape,
        extra_object_columns={"star": np.bool_},
        compression=settings.compression,
    )
    n_objects = n_labelled = 0
    try:
        bar = tqdm(total=len(tiles), desc=f"writing {name}", unit="tile", disable=not settings.progress_bar)
        for start in range(0, len(tiles), settings.tiles_per_chunk):
            chunk = tiles[start : start + settings.tiles_per_chunk]
            parts = [_build_tile(t, plan, owners, in_file, objects, seg, stack, tile_shape) for t in chunk]
            tileset = _assemble(parts, bands, pixel_scale)
            writer.append(tileset)
            n_objects += tileset.n_primary
            n_labelled += int(np.count_nonzero(tileset.objects["primary"] & tileset.labelled()))
            bar.update(len(chunk))
        bar.close()
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {
        "path": str(path),
        "tiles": int(len(tiles)),
        "primary_objects": int(n_objects),
        "labelled_objects": int(n_labelled),
    }


def _owners_by_tile(primary: np.ndarray, n_tiles: int) -> list[np.ndarray]:
    rows = np.flatnonzero(primary >= 0)
    order = rows[np.argsort(primary[rows], kind="stable")]
    bounds = np.searchsorted(primary[order], np.arange(n_tiles + 1))
    return [order[bounds[t] : bounds[t + 1]] for t in range(n_tiles)]


def _build_tile(t: int, plan: _Plan, owners, in_file, objects: _Objects, seg, stack, tile_shape) -> dict:
    h, w = tile_shape
    y0, x0 = (int(v) for v in plan.origins[t])
    images, covered = stack.read(y0, x0, h, w)
    images[~covered] = 0.0
    segmap = seg.read(y0, x0, h, w)
    present = objects.rows_of(np.unique(segmap[segmap > 0]))
    rows = np.union1d(present, owners[t])
    prim_tile = plan.primary[rows]
    rows = rows[(prim_tile >= 0) & in_file[np.maximum(prim_tile, 0)]]
    kept_ids = objects.phot.object_id[rows]
    segmap[~np.isin(segmap, kept_ids)] = 0
    centre = seg.wcs.pixel_to_world_values(x0 + (w - 1) / 2.0, y0 + (h - 1) / 2.0)
    tile = {
        "tile_id": plan.tile_ids[t],
        "kind": plan.kinds[t],
        "x0": x0,
        "y0": y0,
        "ra": float(centre[0]),
        "dec": float(centre[1]),
        "wcs": seg.wcs.slice((slice(y0, y0 + h), slice(x0, x0 + w))).to_header().tostring(),
    }
    return {
        "image": images,
        "segmap": segmap.astype(np.int32),
        "tile": tile,
        "objects": _object_rows(rows, plan.primary[rows] == t, objects, y0, x0, tile_shape),
    }


def _object_rows(
    rows: np.ndarray, primary: np.ndarray, objects: _Objects, y0: int, x0: int, tile_shape
) -> dict[str, np.ndarray]:
    h, w = tile_shape
    phot = objects.phot
    out = empty_objects(phot.bands, len(rows))
    x, y = objects.x[rows] - x0, objects.y[rows] - y0
    box = objects.box[rows] - np.array([x0, y0, x0, y0], dtype=np.float64)
    none = np.isnan(box[:, 0])
    box[none] = np.stack(
        [x - MIN_BOX_HALF_PX, y - MIN_BOX_HALF_PX, x + MIN_BOX_HALF_PX + 1, y + MIN_BOX_HALF_PX + 1], axis=1
    )[none]
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h)
    out.update(
        object_id=phot.object_id[rows],
        primary=primary,
        x=x,
        y=y,
        bbox_x0=box[:, 0],
        bbox_y0=box[:, 1],
        bbox_x1=box[:, 2],
        bbox_y1=box[:, 3],
        ra=phot.ra[rows],
        dec=phot.dec[rows],
        redshift=objects.redshift[rows],
        ebv=objects.ebv[rows],
    )
    for band in phot.bands:
        out[f"mag_{band}"], out[f"magerr_{band}"] = phot.mag[band][rows], phot.magerr[band][rows]
    out["star"] = phot.star[rows]
    return out


def _assemble(parts: list[dict], bands, pixel_scale) -> TileSet:
    objects = {k: np.concatenate([p["objects"][k] for p in parts]) for k in parts[0]["objects"]}
    objects["tile"] = np.concatenate(
        [np.full(len(p["objects"]["object_id"]), k, np.int64) for k, p in enumerate(parts)]
    )
    tiles = {k: np.array([p["tile"][k] for p in parts]) for k in parts[0]["tile"]}
    return TileSet(
        images=np.stack([p["image"] for p in parts]),
        segmaps=np.stack([p["segmap"] for p in parts]),
        tiles=tiles,
        objects=objects,
        bands=tuple(bands),
        pixel_scale=pixel_scale,
        flux_unit="nJy",
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(data), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
