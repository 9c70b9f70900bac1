"""RAIL creation stage `DeepDiscSimulator`: write a simulated JWST/NIRCam TileSet (and JADES-format mosaics).

A thin adapter over :mod:`rail.deepdisc.simulation`: its options are those of `SimulationSettings`
(``n_samples`` is the number of tiles ``n_tiles``) and of ``deepdisc simulate``, declared once in
`rail.deepdisc.simulation.settings`; it needs no model input, and it checks options strictly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rail.core.stage import RailStage
from rail.creation.engine import Creator

from rail.deepdisc.options import build, check_stage_options
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics, simulate_tileset
from rail.deepdisc.simulation.settings import SIMULATION_OPTIONS
from rail.deepdisc.tileset.handles import TileSetHandle
from rail.deepdisc.tileset.io import read_tileset

__all__ = ["DeepDiscSimulator"]

class DeepDiscSimulator(Creator):
    """Simulate JWST/NIRCam deep-field tiles with known redshifts (output: a TileSet).

    ``n_samples`` is the number of tiles. Objects carry spectroscopic labels for a
    brightness-biased subset (``redshift``), the true redshift of every object
    (``redshift_true``) and other ``true_*`` columns.
    """

    name = "DeepDiscSimulator"
    entrypoint_function = "sample"
    interactive_function = "deepdisc_simulator"
    config_options = Creator.config_options.copy()
    config_options.update(SIMULATION_OPTIONS.params())
    inputs = []
    outputs = [("output", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        RailStage.__init__(self, args, **kwargs)  # Creator.__init__ would open a model input we do not have
        self.model = None

    def settings(self) -> SimulationSettings:
        """Build the `SimulationSettings` described by this stage's configuration."""
        return build(SimulationSettings, SIMULATION_OPTIONS.from_config(self.config))

    def sample(self, n_samples: int | None = None, seed: int | None = None, **kwargs: Any) -> TileSetHandle:
        """Simulate a TileSet (interactive use; a pipeline calls ``run``).

        Parameters
        ----------
        n_samples : int, optional
            Number of tiles (default: the stage's ``n_samples`` option).
        seed : int, optional
            Random seed (default: the stage's ``seed`` option).
        **kwargs : Any
            Other options of this stage, updating its configuration (checked like
            ``make_stage``'s).

        Returns
        -------
        TileSetHandle
            The simulated TileSet (``output``).
        """
        check_stage_options(self, {}, kwargs)
        if n_samples is not None:
            self.config["n_samples"] = n_samples
        if seed is not None:
            self.config["seed"] = seed
        self.config.update(**{k: v for k, v in kwargs.items() if k in self.config_options})
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        """Simulate and register the TileSet as ``output``."""
        settings = self.settings()
        if self.config["mosaic_dir"]:
            mosaic_dir = Path(self.config["mosaic_dir"])
            out = simulate_mosaics(
                settings,
                mosaic_dir,
                tileset_path=mosaic_dir / "simulated_tiles.h5",
                progress_bar=self.config["progress_bar"],
            )
            tileset = read_tileset(out["tileset"])
        else:
            tileset = simulate_tileset(settings, progress_bar=self.config["progress_bar"])
        self.add_data("output", tileset)
