"""`TileSetToCatalog`: the primary objects of a TileSet as a photometric table for catalog photo-z codes.

The template-fitting peers (`EazyInformer`/`EazyEstimator`, `NIRCamBPZInformer`/`NIRCamBPZEstimator`) and any
other RAIL catalog estimator read tables; this stage turns a TileSet into one, row for row with DeepDISC's
output (one row per primary object, in file order). Missing magnitudes can be measured on the tiles with
circular apertures (``measure_missing``), so image-only TileSets work too.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ceci.config import StageParameter as Param
from rail.core.data import Hdf5Handle, TableHandle
from rail.core.stage import RailStage

from rail.deepdisc.options import check_stage_options
from rail.deepdisc.peers.photometry import ApertureSettings, tileset_to_catalog
from rail.deepdisc.tileset.handles import TileSetHandle

__all__ = ["TileSetToCatalog"]


class TileSetToCatalog(RailStage):
    """Convert a TileSet into a photometric table, one row per primary object.

    Columns ``object_id ra dec redshift ebv mag_<BAND> magerr_<BAND>``, and
    ``flux_<BAND> fluxerr_<BAND>`` (nJy, negative allowed) when the TileSet has them.
    Magnitudes are AB; NaN = not measured, 99 = non-detection (``magerr`` = 1-sigma
    limiting magnitude).
    """

    name = "TileSetToCatalog"
    entrypoint_function = "__call__"
    interactive_function = "tileset_to_catalog"
    config_options = RailStage.config_options.copy()
    config_options.update(
        bands=Param(list, [], msg="bands to keep (empty = all of the TileSet's bands)"),
        measure_missing=Param(
            bool,
            False,
            msg="measure NaN magnitudes with circular-aperture photometry on the tiles (photutils)",
        ),
        aperture_radius=Param(float, 0.15, msg="aperture radius, arcsec"),
        sky_sigma_clip=Param(float, 3.0, msg="sigma clipping of the sky-noise estimate"),
        chunk_size=Param(int, 10000, msg="primary objects read at a time from a TileSet file (whole tiles)"),
    )
    inputs = [("input", TileSetHandle)]
    outputs = [("output", Hdf5Handle)]  # a fixed suffix: ceci names the file before it is written

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        self._aperture = ApertureSettings(
            radius_arcsec=self.config.aperture_radius, sky_sigma_clip=self.config.sky_sigma_clip
        )

    def run(self) -> None:
        """Convert the TileSet chunk by chunk (a file is never loaded whole) into one table."""
        parts = [
            tileset_to_catalog(
                chunk,
                bands=self.config.bands or None,
                measure_missing=self.config.measure_missing,
                aperture=self._aperture,
            )
            # every chunk on this process: the table is small and written whole (not an MPI-split stage)
            for _, _, chunk in self.input_iterator(
                "input", chunk_size=self.config.chunk_size, rank=0, parallel_size=1
            )
        ]
        table = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        self.add_data("output", table)

    def __call__(self, data, **kwargs: Any) -> TableHandle:
        """Convert a TileSet into a photometric table, one row per primary object.

        Parameters
        ----------
        data : TileSet, TileSetHandle or str
            The TileSet: in memory, a handle or a file (read chunk by chunk).
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        TableHandle
            The table (``output``): ``object_id ra dec redshift ebv mag_<BAND>
            magerr_<BAND>``.
        """
        if isinstance(data, (str, os.PathLike)):
            self.set_data("input", None, path=str(data), do_read=False)
        else:
            self.set_data("input", data)
        self.run()
        self.finalize()
        return self.get_handle("output")
