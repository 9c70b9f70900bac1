"""One pretraining run from flat options (``deepdisc pretrain`` flags or `DeepDiscPretrainer` config).

`PRETRAIN_DEFAULTS` lists every option with its default: the simulated data (bands, tile size, chunking, the
nuisance ranges of the domain randomisation), or TileSet files instead, plus the network and optimisation
options shared with ``deepdisc train`` (`rail.deepdisc.training.run.TRAIN_DEFAULTS`). `pretrain_from_options`
checks them, sets threads and device, joins a torchrun process group when there is one, and runs
`rail.deepdisc.pretraining.loop.pretrain_model` with a checkpoint beside the model.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path

from rail.deepdisc.constants import N_COMPONENTS
from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "PRETRAIN_DEFAULTS",
    "DEFAULT_RANGES",
    "RANGE_OPTIONS",
    "SHARED_DEFAULTS",
    "check_pretrain_options",
    "pretrain_from_options",
    "pretrain_checkpoint_path",
]

log = logging.getLogger(__name__)

#: Randomised simulator settings and their default ``[low, high]`` ranges (the defaults of
#: `rail.deepdisc.pretraining.randomise.NuisanceRanges`; kept here as plain data so that importing this module, and the
#: RAIL stage that declares these options, stays light).
DEFAULT_RANGES = {
    "psf_fwhm_scale": [0.85, 1.25],
    "depth_offset": [-0.8, 0.4],
    "noise_correlation_px": [0.0, 1.0],
    "starburst_weight": [0.5, 2.0],
    "emission_line_scale": [0.5, 1.5],
    "passive_fraction": [0.15, 0.35],
    "size_scale": [0.8, 1.25],
}
RANGE_OPTIONS = tuple(DEFAULT_RANGES)
#: Options shared with ``deepdisc train`` (same meaning and defaults as `rail.deepdisc.training.run.TRAIN_DEFAULTS`).
SHARED_DEFAULTS = {
    "backbone": "resnet18",
    "backbone_norm": "group",
    "n_components": N_COMPONENTS,
    "head_hidden": [1024, 64],
    "pixel_pool_size": 4,
    "redshift_loss_weight": 1.0,
    "normalisation": "zscore",
    "batch_size": 4,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "lr_steps": [],
    "lr_gamma": 0.1,
    "lr_schedule": "cosine",
    "augment_dihedral": True,
    "augment_noise": 0.0,
    "augment_ebv": 0.0,
    "augment_box_jitter": 0.05,
    "clip_grad_norm": 10.0,
    "seed": 1234,
    "device": "auto",
    "num_threads": 0,
    "resume": False,
    "progress_bar": True,
}

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
    **DEFAULT_RANGES,
    **SHARED_DEFAULTS,
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
    from rail.deepdisc.devices import resolve_device
    from rail.deepdisc.pretraining.loop import PretrainSettings

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
    from rail.deepdisc.devices import resolve_device, set_threads
    from rail.deepdisc.pretraining.loop import PretrainSettings, pretrain_model
    from rail.deepdisc.training.ddp import DistContext
    from rail.deepdisc.training.loss_curves import write_loss_curves
    from rail.deepdisc.training.run import loss_curve_paths

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


def _ranges(opts: dict):
    from rail.deepdisc.pretraining.randomise import NuisanceRanges

    values = {}
    for key in RANGE_OPTIONS:
        value = opts[key]
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{key} must be a [low, high] range, got {value!r}")
        values[key] = (float(value[0]), float(value[1]))
    ranges = NuisanceRanges(**values)
    return ranges if opts["randomise"] else NuisanceRanges.fixed()


def _base_settings(opts: dict):
    from rail.deepdisc.presets import resolve_bands
    from rail.deepdisc.simulation import SimulationSettings

    return SimulationSettings(n_tiles=int(opts["tiles_per_chunk"]), tile_size=int(opts["tile_size"]),
                              bands=resolve_bands(opts["bands"]), pixel_scale=float(opts["pixel_scale"]),
                              seed=int(opts["seed"]))


def _source(opts: dict):
    from rail.deepdisc.pretraining.randomise import FileChunks, SimulatedChunks

    if opts["tile_files"]:
        return FileChunks(opts["tile_files"], tiles_per_chunk=int(opts["tiles_per_chunk"]))
    return SimulatedChunks(_base_settings(opts), _ranges(opts), tiles_per_chunk=int(opts["tiles_per_chunk"]),
                           chunks_per_epoch=int(opts["chunks_per_epoch"]), seed=int(opts["seed"]))


def _train_settings(opts: dict, bands, pixel_scale):
    from rail.deepdisc.training.run import TRAIN_DEFAULTS, settings_from_options

    full = {**TRAIN_DEFAULTS, **{key: opts[key] for key in SHARED_DEFAULTS}, "epochs": int(opts["epochs"])}
    network, settings, _ = settings_from_options(full, bands, pixel_scale)
    return network, settings
