"""RAIL stage adding the SOM "spectroscopically represented" flag (``spec_rep``) to a photo-z ensemble.

`DeepDiscSOMFlagger` trains a self-organising map on the F444W magnitude and sequential colours of the photo-z
objects and the spectroscopic training objects (:mod:`rail.deepdisc.evaluation.som`) and writes the ensemble again with
an ancil column ``spec_rep`` (1 = the object's cell holds a training spec-z object); metrics split by it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import qp
from ceci.config import StageParameter as Param
from rail.core.data import QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable, match_truth, read_truth, with_ancil
from rail.deepdisc.evaluation.som import SOMSettings, flag_catalogs
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.tileset.handles import TileSetHandle

__all__ = ["DeepDiscSOMFlagger"]

_DEFAULTS = SOMSettings()


def _table(stage: RailStage, tag: str) -> TruthTable:
    handle = stage.get_handle(tag, allow_missing=True)
    if handle.data is None and handle.path:
        return read_truth(handle.path)
    return TruthTable.from_tileset(stage.get_data(tag))


class DeepDiscSOMFlagger(RailStage):
    """Flag photo-z objects whose SOM cell holds a spec-z training object (``spec_rep``).

    Inputs: ``input``, the photo-z ensemble; ``tiles``, the TileSet it was estimated on
    (its primary objects, in order, are the ensemble's rows); ``spec``, the training
    TileSet (its objects with spec-z define the represented cells). Output ``output``:
    the same ensemble with the ancil column ``spec_rep`` added.
    """

    name = "DeepDiscSOMFlagger"
    entrypoint_function = "flag"
    interactive_function = "deepdisc_som_flagger"
    parallel = False  # the map is trained on every object at once: one process
    config_options = RailStage.config_options.copy()
    config_options.update(
        som_rows=Param(int, _DEFAULTS.shape[0], msg="SOM rows (paper: 32)"),
        som_cols=Param(int, _DEFAULTS.shape[1], msg="SOM columns (paper: 32)"),
        sigma=Param(float, _DEFAULTS.sigma, msg="initial Gaussian neighbourhood width, cells (paper: 5)"),
        learning_rate=Param(float, _DEFAULTS.learning_rate, msg="initial learning rate (paper: 0.5)"),
        n_iterations=Param(int, _DEFAULTS.n_iterations, msg="SOM weight updates"),
        reference_band=Param(str, _DEFAULTS.reference_band,
                             msg="band of the magnitude feature (paper: F444W)"),
        seed=Param(int, _DEFAULTS.seed, msg="random seed of the training order"),
    )
    inputs = [("input", QPHandle), ("tiles", TileSetHandle), ("spec", TileSetHandle)]
    outputs = [("output", QPHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def flag(self, data: qp.Ensemble, tiles, spec, **kwargs: Any) -> QPHandle:
        """Add the ``spec_rep`` flag to a photo-z ensemble.

        Parameters
        ----------
        data : qp.Ensemble
            The photo-z ensemble, one row per primary object of ``tiles``.
        tiles : TileSet, TileSetHandle or str
            The TileSet the ensemble was estimated on.
        spec : TileSet, TileSetHandle or str
            The training TileSet; its objects with spec-z define the represented SOM cells.
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        QPHandle
            The ensemble with the ancil column ``spec_rep`` (1 = represented) added
            (``output``).
        """
        self.set_data("input", data)
        for tag, given in (("tiles", tiles), ("spec", spec)):
            if isinstance(given, (str, os.PathLike)):
                given = TileSetHandle(tag, path=str(given))
            self.set_data(tag, given, do_read=False)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        """Train the SOM and add ``spec_rep``."""
        c = self.config
        settings = SOMSettings(shape=(c.som_rows, c.som_cols), sigma=c.sigma, learning_rate=c.learning_rate,
                               n_iterations=c.n_iterations, reference_band=c.reference_band, seed=c.seed)
        photoz = PhotoZTable(self.get_data("input"), "input")
        targets, spec = _table(self, "tiles"), _table(self, "spec")
        match_truth(photoz, targets)
        bands = [b for b in targets.bands if b in spec.bands]
        flags = flag_catalogs(targets.columns, spec.columns, bands, settings=settings)
        self.log.info(f"spec_rep: {int(flags.spec_rep.sum())} of {len(flags.spec_rep)} objects represented")
        self.add_data("output", with_ancil(photoz.ensemble, {"spec_rep": flags.spec_rep.astype(np.int64)}))
