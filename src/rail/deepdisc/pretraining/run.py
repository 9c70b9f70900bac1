"""One pretraining run from flat options (``deepdisc pretrain`` flags or `DeepDiscPretrainer` config).

The options are declared once in `rail.deepdisc.pretraining.settings` (`PRETRAIN_OPTIONS`; `PRETRAIN_DEFAULTS`
lists them with their defaults): the simulated data (bands, tile size, chunking, the SED families and the
nuisance ranges of the domain randomisation), or TileSet files instead, plus the network and optimisation
options shared with ``deepdisc train``. `pretrain_from_options` checks them, sets threads and device, joins a
torchrun process group when there is one, and runs `rail.deepdisc.pretraining.loop.pretrain_model` with a
checkpoint beside the model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import OptionSet, build
from rail.deepdisc.pretraining.randomise import NuisanceRanges
from rail.deepdisc.pretraining.settings import (
    PRETRAIN_OPTIONS,
    SHARED_TRAINING_OPTIONS,
    PretrainRunOptions,
    PretrainSettings,
)
from rail.deepdisc.training.settings import TrainRunOptions

__all__ = [
    "PRETRAIN_OPTIONS",
    "PRETRAIN_DEFAULTS",
    "DEFAULT_RANGES",
    "RANGE_OPTIONS",
    "SHARED_DEFAULTS",
    "check_pretrain_options",
    "pretrain_from_options",
    "pretrain_checkpoint_path",
    "pretraining_source",
]

log = logging.getLogger(__name__)

#: Every pretraining option and its default, as plain data (derived from `PRETRAIN_OPTIONS`).
PRETRAIN_DEFAULTS: dict = PRETRAIN_OPTIONS.defaults()
#: Randomised simulator settings and their default ``[low, high]`` ranges (`NuisanceRanges`).
DEFAULT_RANGES: dict = OptionSet(NuisanceRanges).defaults()
RANGE_OPTIONS = tuple(DEFAULT_RANGES)
#: Options shared with ``deepdisc train``, with their (training) defaults.
SHARED_DEFAULTS: dict = {name: PRETRAIN_DEFAULTS[name] for name in SHARED_TRAINING_OPTIONS}


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
    from rail.deepdisc.devices import resolve_device

    opts = PRETRAIN_OPTIONS.check(options, "pretraining")
    run, settings = build(PretrainRunOptions, opts), build(PretrainSettings, opts)
    _ranges(run, opts)
    _train_settings(opts, ("BAND",), 1.0, settings.epochs)
    if not run.tile_files:
        _base_settings(run, settings)
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
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.pretraining.loop import pretrain_model
    from rail.deepdisc.training.run import run_in_process_group

    opts = check_pretrain_options(options)
    run, settings, train_run = (build(cls, opts) for cls in (PretrainRunOptions, PretrainSettings, TrainRunOptions))
    source = _source(run, settings, opts)
    network, train_settings = _train_settings(opts, source.bands, source.pixel_scale, settings.epochs)
    checkpoint = Path(run.checkpoint) if run.checkpoint else (
        pretrain_checkpoint_path(model_path) if model_path is not None else None)
    if train_run.resume and checkpoint is None:
        raise ConfigError("resume needs checkpoint (or a model path beside which the checkpoint lies)")
    init = load_artifact(run.init_model) if run.init_model else None

    def train(dist_ctx, device) -> dict:
        return pretrain_model(source, network, train_settings, settings, checkpoint=checkpoint,
                              resume=train_run.resume, device=device, dist_ctx=dist_ctx,
                              progress=train_run.progress_bar, on_chunk_end=on_chunk_end, init=init,
                              init_path=run.init_model)

    return run_in_process_group(train_run, model_path, train)


def _ranges(run: PretrainRunOptions, opts: Mapping) -> NuisanceRanges:
    ranges = build(NuisanceRanges, opts)
    return ranges if run.randomise else NuisanceRanges.fixed()


def _base_settings(run: PretrainRunOptions, settings: PretrainSettings):
    from rail.deepdisc.simulation import SimulationSettings

    return SimulationSettings(n_tiles=run.tiles_per_chunk, tile_size=run.tile_size, bands=run.bands,
                              pixel_scale=run.pixel_scale, seed=settings.seed, sed_library=run.sed_library)


def pretraining_source(options: Mapping):
    """The chunks that pretraining with ``options`` streams (`SimulatedChunks`, or `FileChunks` for tile_files).

    Raises
    ------
    ConfigError
        Naming the first unknown or out-of-range option.
    """
    opts = check_pretrain_options(options)
    return _source(build(PretrainRunOptions, opts), build(PretrainSettings, opts), opts)


def _source(run: PretrainRunOptions, settings: PretrainSettings, opts: Mapping):
    from rail.deepdisc.pretraining.randomise import FileChunks, SimulatedChunks

    if run.tile_files:
        return FileChunks(list(run.tile_files), tiles_per_chunk=run.tiles_per_chunk)
    return SimulatedChunks(_base_settings(run, settings), _ranges(run, opts), tiles_per_chunk=run.tiles_per_chunk,
                           chunks_per_epoch=run.chunks_per_epoch, seed=settings.seed)


def _train_settings(opts: Mapping, bands, pixel_scale, epochs: int):
    from rail.deepdisc.training.run import settings_from_options

    shared = {name: opts[name] for name in SHARED_TRAINING_OPTIONS}
    network, train_settings, _ = settings_from_options({**shared, "epochs": epochs}, bands, pixel_scale)
    return network, train_settings
