"""From FITS mosaics, a segmentation image and catalogs to train, validation, test and full-catalog TileSets.

`prepare_tilesets` reads the photometric catalog, compiles spec-z labels (:mod:`rail.deepdisc.prep.specz`), looks
up E(B-V) (:mod:`rail.deepdisc.dust`), scans the segmentation image for footprints, plans two tilings
(:mod:`rail.deepdisc.prep.tiling`) and streams tiles into TileSet files
(:class:`rail.deepdisc.tileset.writer.TileSetWriter`):

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
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.dust import sfd_ebv
from rail.deepdisc.exceptions import ConfigError, PrepError, PrepWarning
from rail.deepdisc.options import PROGRESS_BAR, check_fields, nested, option
from rail.deepdisc.prep.catalog import PhotCatalog, read_photometry
from rail.deepdisc.prep.cutouts import write_tiles
from rail.deepdisc.prep.mosaics import find_mosaics, open_mosaics
from rail.deepdisc.prep.plan import CoverageChecker, MosaicObjects, plan_tiling
from rail.deepdisc.prep.segmentation import SegmentationImage, find_segmentation, footprint_boxes, open_segmentation
from rail.deepdisc.prep.specz import CompileSettings, compile_specz
from rail.deepdisc.prep.specz_tables import SpeczFormat, read_specz
from rail.deepdisc.prep.tiling import TILE_SIZE_ARCSEC, split_tiles, tile_shape_px
from rail.deepdisc.presets import BANDS, resolve_bands

__all__ = ["OUTPUTS", "SUMMARY_NAME", "PrepInputs", "PrepSettings", "prepare_tilesets"]

log = logging.getLogger(__name__)

#: Output TileSets of `prepare_tilesets`, written as ``OUTDIR/<name>.h5``.
OUTPUTS = ("train", "val", "test", "full")
#: Name of the JSON summary written beside the outputs.
SUMMARY_NAME = "prep_summary.json"
#: Fewest labelled tiles that give non-empty train, validation and test sets.
MIN_SPLIT_TILES = 3


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

    bands: str | tuple[str, ...] = BANDS.as_field()
    tile_size_arcsec: tuple[float, float] = option(TILE_SIZE_ARCSEC, "tile width and height, arcsec", length=2,
                                                   low=0, low_open=True, flag="tile-size", metavar=("W", "H"))
    overlap_px: int = option(0, "overlap of neighbouring full-catalog tiles, pixels", low=0, flag="overlap")
    recentred: bool = option(True, "add centred cutouts for objects cut by their grid tile")
    max_uncovered_fraction: float = option(0.0, "largest fraction of a tile's pixels without coverage (set to 0)",
                                           low=0, high=1, high_open=True, flag="max-uncovered")
    test_fraction: float = option(0.1, "test share of labelled tiles", low=0, high=1, high_open=True)
    val_fraction: float = option(0.1, "validation share of the remaining training tiles", low=0, high=1,
                                 high_open=True)
    seed: int = option(1234, "seed of the train/val/test split", low=0)
    flux_kind: str = option("KRON", "catalog photometry: KRON or CIRC0..CIRC6")
    specz: CompileSettings = nested(CompileSettings)
    dust_map_dir: str | None = option(None, "folder of SFD_dust_4096_{ngp,sgp}.fits (default: dustmaps' data dir)",
                                      type=str, optional=True, empty="")
    ebv: float | None = option(None, "constant E(B-V) in mag for every object (unset: SFD map)", type=float,
                               optional=True, low=0)
    tiles_per_chunk: int = 16
    compression: str | None = "lzf"
    progress_bar: bool = PROGRESS_BAR.as_field()

    def __post_init__(self):
        check_fields(self)
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
        The summary also written to ``prep_summary.json``: objects and what each spec-z rule removed, tiles
        kept and dropped by each tiling, and per output file its tiles, primary and labelled objects.

    Raises
    ------
    PrepError
        Unreadable or inconsistent inputs (naming the file).
    DustMapError
        The SFD map is missing (with the fetch command) and no constant ``ebv`` was given.
    ConfigError
        Bad settings, or ``paths`` with an unknown key.

    Examples
    --------
    >>> inputs = PrepInputs.from_directory("jades/", bands="JADES9", catalog="jades/phot.fits",
    ...                                    specz=[("jades/nirspec.fits", "jades-dr3")])  # doctest: +SKIP
    >>> summary = prepare_tilesets(inputs, "tiles/", settings=PrepSettings(overlap_px=20))  # doctest: +SKIP
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
    bands = settings.bands
    with (
        open_segmentation(inputs.segmentation) as seg,
        open_mosaics({b: inputs.mosaics[b] for b in bands}, seg) as stack,
    ):
        pixel_scale = seg.pixel_scale_arcsec()
        tile_shape = tile_shape_px(*settings.tile_size_arcsec, pixel_scale)
        if seg.shape[0] < tile_shape[0] or seg.shape[1] < tile_shape[1]:
            raise PrepError(f"{inputs.segmentation}: the image ({seg.shape[0]} x {seg.shape[1]} px) is smaller than "
                            f"one tile ({tile_shape[0]} x {tile_shape[1]} px): check the file or choose smaller tiles")
        objects, object_summary = _load_objects(inputs, seg, settings)
        labelled, full, jobs = _plan_outputs(objects, seg.shape, stack, tile_shape, settings)
        files = {}
        for name, (plan, tiles) in jobs.items():
            files[name] = write_tiles(
                targets[name],
                plan,
                tiles,
                objects,
                seg,
                stack,
                tile_shape=tile_shape,
                pixel_scale=pixel_scale,
                tiles_per_chunk=settings.tiles_per_chunk,
                compression=settings.compression,
                progress_bar=settings.progress_bar,
                label=name,
            )
            log.info(
                "%s: %d tiles, %d primary objects, %d labelled",
                name,
                files[name]["tiles"],
                files[name]["primary_objects"],
                files[name]["labelled_objects"],
            )
    return {
        "inputs": {
            "mosaics": {b: str(inputs.mosaics[b]) for b in bands},
            "segmentation": str(inputs.segmentation),
            "catalog": str(inputs.catalog),
            "specz": [str(p) for p, _ in inputs.specz],
        },
        "settings": asdict(settings),
        "pixel_scale_arcsec": pixel_scale,
        "tile_shape_px": list(tile_shape),
        "objects": object_summary,
        "labelled_tiling": labelled.counts,
        "full_tiling": full.counts,
        "files": files,
    }


def _plan_outputs(objects: MosaicObjects, mosaic_shape, stack, tile_shape, settings: PrepSettings):
    """Plan both tilings and pick the tiles of each output: ``{name: (plan, tile rows)}``."""
    coverage = CoverageChecker(
        stack,
        tile_shape,
        max_uncovered_fraction=settings.max_uncovered_fraction,
        progress_bar=settings.progress_bar,
    )
    labelled = plan_tiling(objects, mosaic_shape, tile_shape, coverage)
    full = plan_tiling(
        objects,
        mosaic_shape,
        tile_shape,
        coverage,
        overlap_px=settings.overlap_px,
        cover_edges=True,
        recentred=settings.recentred,
    )
    with_label = np.unique(labelled.primary[(labelled.primary >= 0) & np.isfinite(objects.redshift)])
    labelled.counts["tiles_with_spec_z"] = int(len(with_label))
    if len(with_label) < MIN_SPLIT_TILES:
        warnings.warn(
            f"only {len(with_label)} tile(s) hold spectroscopic labels: the validation and test sets "
            f"are empty (add spec-z catalogs or cover a larger area)",
            PrepWarning,
            stacklevel=4,
        )
    split = split_tiles(
        len(with_label),
        test_fraction=settings.test_fraction,
        val_fraction=settings.val_fraction,
        seed=settings.seed,
    )
    jobs = {name: (labelled, with_label[rows]) for name, rows in zip(("train", "val", "test"), split)}
    jobs["full"] = (full, np.unique(full.primary[full.primary >= 0]))
    return labelled, full, jobs


def _load_objects(
    inputs: PrepInputs, seg: SegmentationImage, settings: PrepSettings
) -> tuple[MosaicObjects, dict]:
    phot = read_photometry(inputs.catalog, settings.bands, flux_kind=settings.flux_kind)
    ids, counts = np.unique(phot.object_id, return_counts=True)
    if (counts > 1).any():
        raise PrepError(
            f"{inputs.catalog}: ID {int(ids[counts > 1][0])} appears {int(counts.max())} times; "
            f"catalog ids must be unique"
        )
    labels = compile_specz(
        [read_specz(path, fmt) for path, fmt in inputs.specz], phot, settings=settings.specz
    )
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
        flux={b: v[inside] for b, v in phot.flux.items()},
        fluxerr={b: v[inside] for b, v in phot.fluxerr.items()},
        source=phot.source,
    )
    if settings.ebv is not None:
        ebv = np.full(len(sub), float(settings.ebv))
    else:
        ebv = sfd_ebv(sub.ra, sub.dec, map_dir=settings.dust_map_dir)
    log.info("scanning %s for object footprints", seg.path)
    objects = MosaicObjects(
        phot=sub,
        x=np.asarray(x)[inside],
        y=np.asarray(y)[inside],
        box=footprint_boxes(seg, sub.object_id, progress_bar=settings.progress_bar),
        redshift=labels.redshift[inside],
        ebv=ebv,
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


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(json.dumps(data, indent=2, default=_to_builtin), path)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
