"""RAIL stage `DeepDiscPrep`: FITS mosaics and catalogs -> ``train``, ``val``, ``test`` and ``full`` TileSets.

A thin adapter over :func:`rail.deepdisc.prep.prepare.prepare_tilesets`: the inputs are files named in the
configuration (mosaics are folders of FITS images, not RAIL tables), the outputs are four `TileSetHandle`s
written by streaming; options are checked strictly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ceci.config import StageParameter as Param
from rail.core.stage import RailStage

from rail.deepdisc.options import check_stage_options
from rail.deepdisc.prep.prepare import OUTPUTS, PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import CompileSettings, specz_sources
from rail.deepdisc.prep.tiling import TILE_SIZE_ARCSEC
from rail.deepdisc.presets import split_band_list
from rail.deepdisc.tileset.handles import TileSetHandle
from rail.deepdisc.tileset.io import read_tileset

__all__ = ["DeepDiscPrep"]


class DeepDiscPrep(RailStage):
    """Tile per-band FITS mosaics with their segmentation, photometric and spec-z catalogs.

    Outputs ``train``, ``val``, ``test`` (labelled tiles split by tile, seeded) and
    ``full`` (every catalog object primary once, optional re-centred cutouts); a
    ``prep_summary.json`` is written beside ``train``.
    """

    name = "DeepDiscPrep"
    entrypoint_function = "prepare"
    interactive_function = "deepdisc_prep"
    config_options = RailStage.config_options.copy()
    config_options.update(
        mosaic_dir=Param(str, None, required=True, msg="folder of per-band FITS mosaics (JADES names)"),
        catalog=Param(str, None, required=True, msg="JADES-style photometric catalog (FITS)"),
        specz=Param(
            list,
            [],
            msg="spec-z catalogs as '[FORMAT:]PATH', highest priority first; FORMAT: "
            "jades-dr3 (default), muse-hudf, muse-hudf-dr2, astrodeep-gs43, generic",
        ),
        segmentation=Param(str, "", msg="segmentation image (default: *segmentation*.fits in mosaic_dir)"),
        bands=Param(str, "JADES9", msg="filter preset or comma-separated bands, in channel order"),
        tile_size_arcsec=Param(list, list(TILE_SIZE_ARCSEC), msg="tile width and height, arcsec"),
        overlap_px=Param(int, 0, msg="overlap of neighbouring full-catalog tiles, pixels"),
        recentred=Param(bool, True, msg="add centred cutouts for objects cut by their grid tile"),
        max_uncovered_fraction=Param(
            float, 0.0, msg="largest fraction of a tile's pixels without coverage (set to 0)"
        ),
        test_fraction=Param(float, 0.1, msg="test share of labelled tiles"),
        val_fraction=Param(float, 0.1, msg="validation share of the remaining training tiles"),
        seed=Param(int, 1234, msg="seed of the train/val/test split"),
        flux_kind=Param(str, "KRON", msg="catalog photometry: KRON or CIRC0..CIRC6"),
        match_radius_arcsec=Param(float, 0.5, msg="spec-z cross-match radius, arcsec"),
        match_band=Param(str, "F444W", msg="band whose brightest object wins a spec-z match"),
        max_dz=Param(float, 0.1, msg="agreement limit |dz|/(1+z) between spec-z catalogs"),
        jades_flags=Param(list, ["A", "B", "C"], msg="accepted JADES DR3 z_Spec_flag values"),
        muse_min_confidence=Param(float, 2.0, msg="smallest MUSE CONFID kept (1-3)"),
        specz_columns=Param(list, [], msg="RA, DEC, Z[, QUALITY] column names of 'generic' spec-z tables"),
        specz_min_quality=Param(
            float, 0.0, msg="smallest quality kept in 'generic' tables with a quality column"
        ),
        dust_map_dir=Param(
            str, "", msg="folder of SFD_dust_4096_{ngp,sgp}.fits (default: dustmaps' data dir)"
        ),
        ebv=Param(
            float, None, required=False, msg="constant E(B-V) in mag for every object (unset: SFD map)"
        ),
        progress_bar=Param(bool, True, msg="show progress bars"),
    )
    inputs = []
    outputs = [(name, TileSetHandle) for name in OUTPUTS]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def _settings(self) -> PrepSettings:
        cfg = self.config
        bands = split_band_list(cfg.bands)
        return PrepSettings(
            bands=bands,
            tile_size_arcsec=tuple(float(v) for v in cfg.tile_size_arcsec),
            overlap_px=cfg.overlap_px,
            recentred=cfg.recentred,
            max_uncovered_fraction=cfg.max_uncovered_fraction,
            test_fraction=cfg.test_fraction,
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            flux_kind=cfg.flux_kind,
            specz=CompileSettings(
                match_radius_arcsec=cfg.match_radius_arcsec,
                match_band=cfg.match_band.upper(),
                max_dz=cfg.max_dz,
            ),
            dust_map_dir=cfg.dust_map_dir or None,
            ebv=cfg.ebv,
            progress_bar=cfg.progress_bar,
        )

    def prepare(self, **kwargs: Any) -> dict[str, TileSetHandle]:
        """Tile the mosaics of ``mosaic_dir`` with ``catalog`` into four TileSets.

        Parameters
        ----------
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        dict of str to TileSetHandle
            ``train``, ``val``, ``test`` and ``full``. With ``output_mode="return"``
            (``rail.interactive``) they are built in a temporary folder and returned in
            memory; otherwise they are files.
        """
        self.run()
        self.finalize()
        return {tag: self.get_handle(tag) for tag in OUTPUTS}

    def run(self) -> None:
        """Build the four TileSets and register their handles."""
        settings = self._settings()
        cfg = self.config
        sources = specz_sources(
            cfg.specz,
            jades_flags=cfg.jades_flags,
            muse_min_confidence=cfg.muse_min_confidence,
            generic_columns=cfg.specz_columns,
            generic_min_quality=cfg.specz_min_quality,
        )
        inputs = PrepInputs.from_directory(
            cfg.mosaic_dir,
            bands=settings.bands,
            catalog=cfg.catalog,
            specz=sources,
            segmentation=cfg.segmentation or None,
        )
        if self.config.output_mode == "return":  # write nothing: build in a temporary folder, keep in memory
            with tempfile.TemporaryDirectory(prefix="deepdisc_prep_") as tmp:
                paths = {tag: str(Path(tmp) / f"{tag}.h5") for tag in OUTPUTS}
                summary = prepare_tilesets(inputs, Path(tmp), settings=settings, paths=paths)
                for tag in OUTPUTS:
                    self.add_data(tag, read_tileset(paths[tag]))
                    self.log.info(f"{tag}: {summary['files'][tag]['tiles']} tiles")
            return
        paths = {tag: self.get_output(tag) for tag in OUTPUTS}
        summary = prepare_tilesets(inputs, Path(paths["train"]).parent, settings=settings, paths=paths)
        for tag in OUTPUTS:
            handle = self.add_handle(tag, path=paths[tag])
            handle.partial = True  # written by streaming: finalize must not write it again
            self.log.info(f"{tag}: {summary['files'][tag]['tiles']} tiles")
