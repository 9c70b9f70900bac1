"""One pretraining run from flat options (``deepdisc pretrain`` flags or `DeepDiscPretrainer` config).

`PRETRAIN_DEFAULTS` lists every option with its default: the simulated data (bands, tile size, chunking, the
nuisance ranges of the domain randomisation), or TileSet files instead, plus the network and optimisation
options shared with ``deepdisc train`` (`rail.deepdisc.trainrun.TRAIN_DEFAULTS`). `pretrain_from_options`
checks them, sets threads and device, joins a torchrun process group when there is one, and runs
`rail.deepdisc.pretrain.pretrain_model` with a checkpoint beside the model.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Mapping
from pathlib import Path

from .ddp import DistContext
from .devices import resolve_device, set_threads
from .exceptions import ConfigError
from .losscurves import write_loss_curves
from .presets import resolve_bands
from .pretrain import PretrainSettings, pretrain_model
from .randomise import FileChunks, NuisanceRanges, SimulatedChunks
from .simulation import SimulationSettings
from .trainrun import TRAIN_DEFAULTS, loss_curve_paths, settings_from_options

__all__ = ["PRETRAIN_DEFAULTS", "RANGE_OPTIONS", "check_pretrain_options", "pretrain_from_options",
           "pretrain_checkpoint_path"]

log = logging.getLogger(__name__)

#: Randomised simulator settings: each option is a ``[low, high]`` range (see `NuisanceRanges`).
RANGE_OPTIONS = tuple(f.name for f in dataclasses.fields(NuisanceRanges))
_SHARED = ("backbone", "backbone_norm", "n_components", "head_hidden", "redshift_loss_weight", "normalisation",
           "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay", "lr_steps", "lr_gamma",
           "augment_dihedral", "augment_noise", "augment_ebv", "augment_box_jitter", "clip_grad_norm", "seed",
           "device", "num_threads", "resume", "progress_bar")
_DEFAULT_RANGES = NuisanceRanges().to_dict()

#: Every pretraining option and its default.
PRETRAIN_DEFAULTS: dict = {
    "bands": "JADES9",
    "tile_size": 128,
    "pixel_scale": 0.03,
    "tile_files": [],
    "tiles_per_chunk": 32,
    "chunks_per_epoch": 8,
    "epochs": 10,
    "validation_tiles": 16,
    "randomise": True,
    **_DEFAULT_RANGES,
    **{key: TRAIN_DEFAULTS[key] for key in _SHARED},
    "checkpoint": "",
}


def pretrain_checkpoint_path(model_path: str | Path) -> Path:
    """``MODEL_pretrain_checkpoint.pt`` beside a model file."""
    p = Path(model_path)
    return p.with_name(p.stem + "_pretrain_checkpoint.pt")


def check_pretrain_options(options: Mapping) -> dict:
    """Check pretraining options (names and values) without simulating anything; return them completed.

    Raises
    ------
    ConfigError
        Naming the first unknown or out-of-range option.
    """
    unknown = [k for k in options if k not in PRETRAIN_DEFAULTS]
    if unknown:
        hints = [f"'{k}'" + (f" (did you mean '{c[0]}'?)"
                             if (c := difflib.get_close_matches(k, PRETRAIN_DEFAULTS, 1)) else "") for k in unknown]
        raise ConfigError(f"unknown pretraining option(s) {', '.join(hints)}")
    opts = {**PRETRAIN_DEFAULTS, **options}
    if not isinstance(opts["tile_files"], (list, tuple)):
        raise ConfigError(f"tile_files must be a list of TileSet paths, got {opts['tile_files']!r}")
    _ranges(opts)
    _train_settings(opts, ("BAND",), 1.0)
    PretrainSettings(epochs=int(opts["epochs"]), validation_tiles=int(opts["validation_tiles"]),
                     seed=int(opts["seed"]))
    if not opts["tile_files"]:
        _base_settings(opts)
    if int(opts["tiles_per_chunk"]) < 2 or int(opts["chunks_per_epoch"]) < 1:
        raise ConfigError(f"tiles_per_chunk must be >= 2 and chunks_per_epoch >= 1, got "
                          f"{opts['tiles_per_chunk']} and {opts['chunks_per_epoch']}")
    resolve_device(opts["device"])
    return opts


def pretrain_from_options(options: Mapping, *, model_path: str | Path | None = None, on_chunk_end=None) -> dict:
    """Pretrain with the given options; return the one-member artifact.

    Parameters
    ----------
    options : mapping
        Any subset of `PRETRAIN_DEFAULTS`.
    model_path : str or Path, optional
        Where the model will be written; the checkpoint defaults to `pretrain_checkpoint_path` beside it and
        the loss curves (per epoch: training losses, validation NLL) go to ``MODEL_loss.json`` / ``.png``.
    on_chunk_end : callable, optional
        Passed to `pretrain_model`.

    Returns
    -------
    dict
        The artifact (also on non-zero DDP ranks, which write nothing).
    """
    opts = check_pretrain_options(options)
    device = resolve_device(opts["device"])
    set_threads(int(opts["num_threads"]))
    source = _source(opts)
    network, train_settings = _train_settings(opts, source.bands, source.pixel_scale)
    settings = PretrainSettings(epochs=int(opts["epochs"]), validation_tiles=int(opts["validation_tiles"]),
                                seed=int(opts["seed"]))
    checkpoint = Path(opts["checkpoint"]) if opts["checkpoint"] else (
        pretrain_checkpoint_path(model_path) if model_path is not None else None)
    if opts["resume"] and checkpoint is None:
        raise ConfigError("resume needs checkpoint (or a model path beside which the checkpoint lies)")
    dist_ctx = DistContext.from_env(device)
    try:
        artifact = pretrain_model(source, network, train_settings, settings, checkpoint=checkpoint,
                                  resume=bool(opts["resume"]), device=dist_ctx.device_for(device),
                                  dist_ctx=dist_ctx, progress=bool(opts["progress_bar"]), on_chunk_end=on_chunk_end)
        if model_path is not None and dist_ctx.is_main:
            write_loss_curves(artifact, *loss_curve_paths(model_path))
    finally:
        dist_ctx.close()
    return artifact


def _ranges(opts: dict) -> NuisanceRanges:
    values = {}
    for key in RANGE_OPTIONS:
        value = opts[key]
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{key} must be a [low, high] range, got {value!r}")
        values[key] = (float(value[0]), float(value[1]))
    ranges = NuisanceRanges(**values)
    return ranges if opts["randomise"] else NuisanceRanges.fixed()


def _base_settings(opts: dict) -> SimulationSettings:
    return SimulationSettings(n_tiles=int(opts["tiles_per_chunk"]), tile_size=int(opts["tile_size"]),
                              bands=resolve_bands(opts["bands"]), pixel_scale=float(opts["pixel_scale"]),
                              seed=int(opts["seed"]))


def _source(opts: dict):
    if opts["tile_files"]:
        return FileChunks(opts["tile_files"], tiles_per_chunk=int(opts["tiles_per_chunk"]))
    return SimulatedChunks(_base_settings(opts), _ranges(opts), tiles_per_chunk=int(opts["tiles_per_chunk"]),
                           chunks_per_epoch=int(opts["chunks_per_epoch"]), seed=int(opts["seed"]))


def _train_settings(opts: dict, bands, pixel_scale):
    full = {**TRAIN_DEFAULTS, **{key: opts[key] for key in _SHARED}, "epochs": int(opts["epochs"])}
    network, settings, _ = settings_from_options(full, bands, pixel_scale)
    return network, settings
