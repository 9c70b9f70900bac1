"""RAIL stage `DeepDiscPretrainer`: pretrain a DeepDISC network on label-complete simulations.

A thin adapter over `rail.deepdisc.pretraining.run.pretrain_from_options` (the same code as ``deepdisc
pretrain``): no input (tiles are simulated on the fly, or read from ``tile_files``), output ``model``: a
one-member model artifact to fine-tune with `DeepDiscInformer` (``init_model``). The options are those of
``deepdisc pretrain`` (`rail.deepdisc.pretraining.settings.PRETRAIN_OPTIONS`), checked strictly.
"""

from __future__ import annotations

from typing import Any

from rail.core.stage import RailStage

from rail.deepdisc.options import check_stage_options
from rail.deepdisc.pretraining.settings import PRETRAIN_OPTIONS
from rail.deepdisc.tileset.handles import DeepDiscModelHandle

__all__ = ["DeepDiscPretrainer"]

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
    config_options.update(PRETRAIN_OPTIONS.params())
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

        options = PRETRAIN_OPTIONS.from_config(self.config)
        model_path = (None if self.config.output_mode == "return"  # e.g. rail.interactive: write nothing
                      else self.get_output(self.get_aliased_tag("model"), final_name=True))
        self.add_data("model", pretrain_from_options(options, model_path=model_path))
