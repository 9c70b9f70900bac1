"""RAIL stage `DeepDiscPretrainer`: pretrain a DeepDISC network on label-complete simulations.

A thin adapter over `rail.deepdisc.pretraining.run.pretrain_from_options` (the same code as ``deepdisc
pretrain``): no input (tiles are simulated on the fly, or read from ``tile_files``), output ``model``: a
one-member model artifact to fine-tune with `DeepDiscInformer` (``init_model``). Options are checked strictly.
"""

from __future__ import annotations

from typing import Any

from ceci.config import StageParameter as Param
from rail.core.stage import RailStage

from rail.deepdisc.options import check_stage_options
from rail.deepdisc.pretraining.run import PRETRAIN_DEFAULTS, RANGE_OPTIONS
from rail.deepdisc.tileset.handles import DeepDiscModelHandle

__all__ = ["DeepDiscPretrainer"]

_MESSAGES = {
    "bands": "band preset (JADES9, NEXUS6, COSMOSWEB4) or comma-separated band list of the simulation",
    "tile_size": "simulated tile side, pixels",
    "pixel_scale": "arcsec per pixel",
    "tile_files": "label-complete TileSet files to read chunk-wise instead of simulating ([] = simulate)",
    "tiles_per_chunk": "tiles per streamed chunk (per process under DDP)",
    "chunks_per_epoch": "chunks per epoch when simulating (files: all their chunks)",
    "epochs": "pretraining epochs",
    "validation_tiles": "tiles of the fixed validation set (normalisation and validation NLL)",
    "randomise": "draw the nuisance settings of every chunk from their ranges (domain randomisation)",
    "checkpoint": "checkpoint file (default: beside the model), rewritten after every chunk",
}
_TYPES = {list: list, bool: bool, int: int, float: float, str: str}


def _params() -> dict:
    params = {}
    for key, default in PRETRAIN_DEFAULTS.items():
        if key == "bands":
            params[key] = Param(str, default, msg=_MESSAGES[key])
            continue
        msg = _MESSAGES.get(key) or (
            f"[low, high] randomisation range of SimulationSettings.{key}" if key in RANGE_OPTIONS
            else f"as DeepDiscInformer's {key}"
        )
        params[key] = Param(_TYPES[type(default)], default, msg=msg)
    return params


class DeepDiscPretrainer(RailStage):
    """Pretrain the whole network (detector + redshift head) on streamed simulated tiles.

    Output ``model``: the pretrained artifact (`DeepDiscModelHandle`); its
    ``provenance`` records the pretraining data (randomisation ranges included), seed
    and epochs. Resumable (``resume``) and DDP-capable (torchrun), like
    `DeepDiscInformer`.
    """

    name = "DeepDiscPretrainer"
    entrypoint_function = "pretrain"
    interactive_function = "deepdisc_pretrainer"
    config_options = RailStage.config_options.copy()
    config_options.update(_params())
    inputs = []
    outputs = [("model", DeepDiscModelHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def pretrain(self, **kwargs: Any) -> DeepDiscModelHandle:
        """Pretrain on simulated (or ``tile_files``) tiles and return the model.

        Parameters
        ----------
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        DeepDiscModelHandle
            The pretrained one-member artifact (``model``), to fine-tune with
            `DeepDiscInformer`.
        """
        self.run()
        self.finalize()
        return self.get_handle("model")

    def run(self) -> None:
        """Pretrain (`rail.deepdisc.pretraining.run.pretrain_from_options`) and register the artifact as ``model``."""
        from rail.deepdisc.pretraining.run import pretrain_from_options

        options = {key: self.config[key] for key in PRETRAIN_DEFAULTS}
        bands = str(options["bands"])
        options["bands"] = [b.strip() for b in bands.split(",") if b.strip()] if "," in bands else bands
        model_path = (None if self.config.output_mode == "return"  # e.g. rail.interactive: write nothing
                      else self.get_output(self.get_aliased_tag("model"), final_name=True))
        self.add_data("model", pretrain_from_options(options, model_path=model_path))
