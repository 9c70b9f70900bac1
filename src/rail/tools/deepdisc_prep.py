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

from rail.deepdisc.options import OptionSet, build, check_stage_options
from rail.deepdisc.prep.prepare import OUTPUTS, PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import SpeczSourceOptions
from rail.deepdisc.tileset.handles import TileSetHandle
from rail.deepdisc.tileset.io import read_tileset

__all__ = ["DeepDiscPrep", "PREP_OPTIONS"]

#: The `PrepSettings` and `SpeczSourceOptions` options (the same as ``deepdisc prep``'s).
PREP_OPTIONS = OptionSet(PrepSettings, SpeczSourceOptions)


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
    )
    config_options.update(PREP_OPTIONS.params())
    inputs = []
    outputs = [(name, TileSetHandle) for name in OUTPUTS]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def _settings(self) -> PrepSettings:
        return build(PrepSettings, PREP_OPTIONS.from_config(self.config))

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
        sources = build(SpeczSourceOptions, PREP_OPTIONS.from_config(cfg)).sources(cfg.specz)
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
