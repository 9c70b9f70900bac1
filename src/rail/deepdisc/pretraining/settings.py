"""Every pretraining option, declared once (``deepdisc pretrain``, `DeepDiscPretrainer`).

`PRETRAIN_OPTIONS`: the data (`PretrainRunOptions`: simulated or read, chunking, checkpoint), the run
(`PretrainSettings`), the randomised simulator settings (`rail.deepdisc.pretraining.randomise.NuisanceRanges`)
and the training options that pretraining shares with ``deepdisc train`` (`SHARED_TRAINING_OPTIONS`, same
declarations). `BACKBONE_PRETRAIN_OPTIONS`: ``deepdisc pretrain --backbone-only``
(`rail.deepdisc.pretraining.backbone`), whose own options are `BackboneSettings`. No torch is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.backbone_names import is_transformer
from rail.deepdisc.model.config import NetworkConfig
from rail.deepdisc.options import DEVICE, NUM_THREADS, PROGRESS_BAR, OptionSet, check_fields, inherit, option
from rail.deepdisc.presets import BANDS
from rail.deepdisc.pretraining.randomise import NuisanceRanges
from rail.deepdisc.simulation.sed_library import ALL_FAMILIES
from rail.deepdisc.simulation.settings import SimulationSettings
from rail.deepdisc.training.settings import TRAIN_OPTIONS, EnsembleSettings, TrainRunOptions, TrainSettings

__all__ = [
    "PretrainSettings",
    "PretrainRunOptions",
    "BackboneSettings",
    "BackboneRunOptions",
    "SHARED_TRAINING_OPTIONS",
    "PRETRAIN_OPTIONS",
    "BACKBONE_PRETRAIN_OPTIONS",
    "MIN_CUTOUT_SIZE",
]

#: Smallest cutout of backbone-only pretraining, pixels (the ResNet's total stride).
MIN_CUTOUT_SIZE = 32
#: Training options that pretraining takes too (network, optimisation, augmentation, device).
SHARED_TRAINING_OPTIONS = (
    "backbone", "backbone_norm", "n_components", "head_hidden", "pixel_pool_size", "redshift_loss_weight",
    "normalisation", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay", "lr_steps", "lr_gamma",
    "lr_schedule", "augment_dihedral", "augment_noise", "augment_ebv", "augment_box_jitter", "augment_dim",
    "clip_grad_norm", "device", "num_threads", "resume", "progress_bar",
)


@dataclass(frozen=True)
class PretrainSettings:
    """How long and on what pretraining runs (optimisation settings are a `TrainSettings`).

    Parameters
    ----------
    epochs : int
        Epochs; each is ``chunks_per_epoch`` chunks of the source.
    validation_tiles : int
        Tiles of the fixed validation set (normalisation statistics and the per-epoch validation NLL).
    seed : int
        Master seed: chunk data and every random draw of training derive from it.
    """

    epochs: int = option(10, "pretraining epochs", low=1)
    validation_tiles: int = option(16, "tiles of the fixed validation set (normalisation and validation NLL)", low=2)
    seed: int = inherit(EnsembleSettings, "seed", help="random seed (chunk data, initialisation, augmentation)")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class PretrainRunOptions:
    """The pretraining data (simulated with `SimulationSettings`, or read from files) and the checkpoint."""

    bands: str | tuple[str, ...] = BANDS.as_field(flag=None, nargs="+")
    tile_size: int = inherit(SimulationSettings, "tile_size", flag=None, help="simulated tile side, pixels")
    pixel_scale: float = inherit(SimulationSettings, "pixel_scale")
    sed_library: str = inherit(SimulationSettings, "sed_library", default=ALL_FAMILIES,
                               help="galaxy SED families of the simulated chunks, joined by +: each galaxy draws "
                                    "one (domain randomisation over SED libraries; default every family)")
    tile_files: tuple[str, ...] = option((), "label-complete TileSet files to read chunk-wise instead of simulating",
                                         item=str)
    tiles_per_chunk: int = option(32, "tiles per streamed chunk (per process under DDP)", low=2)
    chunks_per_epoch: int = option(8, "chunks per epoch when simulating (files: all their chunks)", low=1)
    randomise: bool = option(True, "draw the nuisance settings of every chunk from their ranges (domain "
                             "randomisation)")
    checkpoint: str = option("", "checkpoint file (default: beside the model), rewritten as pretraining goes")
    init_model: str = option("", "continue an earlier pretraining: start from this pretrained model's weights and "
                             "input normalisation (same network options and bands) with a fresh learning-rate "
                             "schedule over --epochs; its chunks follow the earlier run's (a warm restart)",
                             flag="init")

    def __post_init__(self) -> None:
        check_fields(self)


#: Every option of ``deepdisc pretrain`` and `DeepDiscPretrainer`.
PRETRAIN_OPTIONS = OptionSet(PretrainRunOptions, PretrainSettings, NuisanceRanges,
                             TRAIN_OPTIONS.select(*SHARED_TRAINING_OPTIONS))


@dataclass(frozen=True)
class BackboneSettings:
    """What backbone-only pretraining (`rail.deepdisc.pretraining.backbone.pretrain_backbone`) trains, and how."""

    backbone: str = inherit(NetworkConfig, "backbone")
    backbone_norm: str = inherit(NetworkConfig, "backbone_norm")
    normalisation: str = inherit(NetworkConfig, "normalisation")
    cutout_size: int = option(64, "backbone-only: cutout side, pixels (>= 32, the ResNet's total stride)",
                              low=MIN_CUTOUT_SIZE)
    epochs: int = inherit(PretrainSettings, "epochs")
    batch_size: int = inherit(TrainSettings, "batch_size", default=64, help="cutouts per optimisation step")
    learning_rate: float = inherit(TrainSettings, "learning_rate")
    weight_decay: float = inherit(TrainSettings, "weight_decay")
    validation_fraction: float = option(0.1, "backbone-only: fraction of the objects held out for validation (by "
                                        "object id)", low=0, high=1, high_open=True)
    seed: int = inherit(PretrainSettings, "seed")

    def __post_init__(self) -> None:
        check_fields(self)
        if is_transformer(self.backbone):
            raise ConfigError(f"backbone-only pretraining trains a ResNet, not {self.backbone}: pretrain the whole "
                              f"network instead (deepdisc pretrain without --backbone-only)")


@dataclass(frozen=True)
class BackboneRunOptions:
    """The data and the run of backbone-only pretraining (label-complete TileSet files)."""

    tile_files: tuple[str, ...] = inherit(PretrainRunOptions, "tile_files")
    tiles_per_chunk: int = inherit(PretrainRunOptions, "tiles_per_chunk", default=64)
    device: str = DEVICE.as_field()
    num_threads: int = NUM_THREADS.as_field()
    checkpoint: str = inherit(PretrainRunOptions, "checkpoint")
    resume: bool = inherit(TrainRunOptions, "resume")
    progress_bar: bool = PROGRESS_BAR.as_field()

    def __post_init__(self) -> None:
        check_fields(self)


#: Every option of ``deepdisc pretrain --backbone-only`` (`rail.deepdisc.pretraining.backbone`).
BACKBONE_PRETRAIN_OPTIONS = OptionSet(BackboneRunOptions, BackboneSettings)
