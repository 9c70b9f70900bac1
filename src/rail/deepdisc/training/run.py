"""One training run from flat options (the informer's config or the ``deepdisc train`` flags) to an artifact.

The options are declared once, in `rail.deepdisc.training.settings` (`TRAIN_OPTIONS`; `TRAIN_DEFAULTS` lists
them with their defaults); `train_from_options` checks them (unknown names and out-of-range values are
`ConfigError`), sets threads and device, joins a torchrun process group when there is
one, trains the ensemble with per-epoch checkpoints, and (rank 0) writes the loss curves beside the model.
`DeepDiscInformer` and the command line both call it, so they cannot drift apart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from rail.deepdisc.devices import resolve_device, set_threads
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.config import NetworkConfig
from rail.deepdisc.options import build
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.ensemble import train_ensemble
from rail.deepdisc.training.loss_curves import write_loss_curves
from rail.deepdisc.training.settings import (
    DISTILL_OPTIONS,
    TRAIN_OPTIONS,
    DistillSettings,
    EnsembleSettings,
    TrainRunOptions,
    TrainSettings,
)

__all__ = [
    "TRAIN_DEFAULTS",
    "TRAIN_OPTIONS",
    "train_from_options",
    "distill_from_options",
    "teacher_path",
    "run_in_process_group",
    "check_train_options",
    "settings_from_options",
    "loss_curve_paths",
    "default_checkpoint_dir",
]

log = logging.getLogger(__name__)

#: Every training option and its default, as plain data (derived from `TRAIN_OPTIONS`).
TRAIN_DEFAULTS: dict = TRAIN_OPTIONS.defaults()


def loss_curve_paths(model_path: str | Path) -> tuple[Path, Path]:
    """``MODEL_loss.json`` and ``MODEL_loss.png`` beside a model file."""
    p = Path(model_path)
    return p.with_name(p.stem + "_loss.json"), p.with_name(p.stem + "_loss.png")


def default_checkpoint_dir(model_path: str | Path) -> Path:
    """``MODEL_checkpoints/`` beside a model file."""
    p = Path(model_path)
    return p.with_name(p.stem + "_checkpoints")


def teacher_path(model_path: str | Path) -> Path:
    """``MODEL_teacher.pt`` beside a model file: the ensemble a ``distill`` training distilled."""
    p = Path(model_path)
    return p.with_name(p.stem + "_teacher.pt")


def train_from_options(
    tileset: TileSet, options: Mapping, *, model_path: str | Path | None = None, on_epoch_end=None
) -> dict:
    """Train an ensemble on ``tileset`` with the given options; return the artifact.

    Parameters
    ----------
    tileset : TileSet
        Training data (spec-z in ``objects/redshift``).
    options : mapping
        Any subset of `TRAIN_DEFAULTS`.
    model_path : str or Path, optional
        Where the model will be written: checkpoints default to ``MODEL_checkpoints/`` and the loss curves go
        to ``MODEL_loss.json`` / ``.png`` beside it (rank 0 only). Without it and without ``checkpoint_dir``
        no checkpoints are written.
    on_epoch_end : callable, optional
        Called after each epoch as ``f(epoch, record)`` (after the checkpoint is written).

    Returns
    -------
    dict
        The model artifact (also returned on non-zero DDP ranks, which write nothing). With ``distill``, the
        distilled one-member model (`distill_from_options`); the ensemble is written to `teacher_path`.

    Raises
    ------
    ConfigError
        Unknown option names or out-of-range values.
    TileSetError
        A TileSet without usable spec-z labels.
    """
    opts = check_train_options(options)
    run = build(TrainRunOptions, opts)
    network, settings, ensemble = settings_from_options(opts, tileset.bands, tileset.pixel_scale)
    checkpoint_dir = _checkpoint_dir(run, model_path)
    init_artifact = load_artifact(run.init_model) if run.init_model else None

    def train(dist_ctx: DistContext, device) -> dict:
        artifact = train_ensemble(
            tileset,
            network,
            settings,
            ensemble,
            checkpoint_dir=checkpoint_dir,
            resume=run.resume,
            device=device,
            dist_ctx=dist_ctx,
            members=list(run.member_indices) or None,
            init_artifact=init_artifact,
            backbone_weights=run.backbone_weights or None,
            first_conv=run.first_conv,
            progress=run.progress_bar,
            on_epoch_end=on_epoch_end,
        )
        if init_artifact is not None:
            artifact["provenance"]["fine_tuned_from"] = _source_description(run.init_model, init_artifact)
        return artifact

    distill = build(DistillSettings, opts).distill
    if distill and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("distill runs in one process: train under torchrun without it, then run deepdisc distill")
    artifact = run_in_process_group(run, model_path, train)
    if not distill:
        return artifact
    if model_path is not None:
        save_artifact(artifact, teacher_path(model_path))
        log.info("ensemble written to %s; distilling it", teacher_path(model_path))
    shared = {k: v for k, v in opts.items() if k in DISTILL_OPTIONS}
    return distill_from_options(artifact, [tileset], shared, model_path=model_path,
                                name=str(teacher_path(model_path)) if model_path else "ensemble")


def distill_from_options(artifact: dict, tilesets: list[TileSet], options: Mapping, *,
                         model_path: str | Path | None = None, name: str = "model") -> dict:
    """Distil an ensemble into one network with the options of ``deepdisc distill`` (`DISTILL_OPTIONS`).

    ``distill_epochs`` and ``distill_lr`` are the epochs and learning rate of the student's `TrainSettings`; the
    checkpoint is ``distill.pt`` in ``checkpoint_dir`` (default: ``MODEL_checkpoints/`` beside ``model_path``).
    See `rail.deepdisc.training.distill.distill_ensemble`.
    """
    from rail.deepdisc.training.distill import distill_ensemble

    opts = DISTILL_OPTIONS.check(options, "distillation")
    run = build(TrainRunOptions, opts)
    settings = build(TrainSettings, {**opts, "epochs": opts["distill_epochs"], "learning_rate": opts["distill_lr"]})
    folder = _checkpoint_dir(run, model_path)
    device = resolve_device(run.device)
    set_threads(run.num_threads)
    return distill_ensemble(artifact, tilesets, settings, build(DistillSettings, opts),
                            seed=build(EnsembleSettings, opts).seed,
                            checkpoint=folder / "distill.pt" if folder is not None else None, resume=run.resume,
                            device=device, progress=run.progress_bar, name=name)


def run_in_process_group(run: TrainRunOptions, model_path: str | Path | None,
                         train: Callable[[DistContext, torch.device], dict]) -> dict:
    """Set threads and device, join the torchrun process group when there is one, train, write the loss curves.

    Parameters
    ----------
    run : TrainRunOptions
        Its ``device`` and ``num_threads``.
    model_path : str or Path or None
        The loss curves go beside it (`loss_curve_paths`, rank 0 only).
    train : callable
        ``train(dist_ctx, device)`` returns the artifact (training or pretraining).

    Returns
    -------
    dict
        The artifact (on every rank).
    """
    device = resolve_device(run.device)
    set_threads(run.num_threads)
    dist_ctx = DistContext.from_env(device)
    try:
        artifact = train(dist_ctx, dist_ctx.device_for(device))
        if model_path is not None and dist_ctx.is_main:
            write_loss_curves(artifact, *loss_curve_paths(model_path))
    finally:
        dist_ctx.close()
    return artifact


def check_train_options(options: Mapping) -> dict:
    """Check training options (names and values) without touching data; return them with defaults filled.

    Raises
    ------
    ConfigError
        Naming the first unknown or out-of-range option.
    """
    opts = TRAIN_OPTIONS.check(options, "training")
    _, settings, _ = settings_from_options(opts, ("BAND",), 1.0)
    run = build(TrainRunOptions, opts)
    if settings.freeze and not run.init_model and not run.backbone_weights:
        raise ConfigError(
            "freeze only makes sense when starting from pretrained weights: give init_model (or "
            "backbone_weights), or leave freeze empty"
        )
    if settings.finetune == "head" and not run.init_model:
        raise ConfigError("finetune head trains the redshift head of a pretrained network: give init_model (the "
                          "output of deepdisc pretrain or deepdisc train), or use finetune all")
    if settings.finetune == "head" and settings.freeze:
        raise ConfigError("finetune head already keeps everything but the redshift head fixed: leave freeze empty")
    if settings.head_distill and settings.finetune != "head":
        raise ConfigError("head_distill keeps the initial model's mixtures of the unlabelled objects while the head "
                          "is fine-tuned alone (finetune head): leave it at 0 with finetune all")
    if settings.head_views and settings.finetune != "head":
        raise ConfigError("head_views are augmented copies of the head's inputs for finetune head; finetune all "
                          "augments every batch itself: leave head_views at 0")
    if run.backbone_weights and run.init_model:
        raise ConfigError("give backbone_weights or init_model, not both (init_model already holds a backbone)")
    resolve_device(run.device)
    return opts


def settings_from_options(
    opts: Mapping, bands, pixel_scale
) -> tuple[NetworkConfig, TrainSettings, EnsembleSettings]:
    """Build the settings objects from training options (missing ones take their defaults)."""
    network = build(NetworkConfig, opts, bands=tuple(bands), pixel_scale=float(pixel_scale))
    return network, build(TrainSettings, opts), build(EnsembleSettings, opts)


def _source_description(path, artifact: dict) -> dict:
    """Where a fine-tuned model started: the file, its creator version and its own provenance."""
    return {
        "path": str(path),
        "package_version": artifact.get("package_version", "?"),
        "bands": list(artifact["config"]["bands"]),
        "provenance": artifact.get("provenance") or {},
    }


def _checkpoint_dir(run: TrainRunOptions, model_path) -> Path | None:
    if run.checkpoint_dir:
        return Path(run.checkpoint_dir)
    if model_path is not None:
        return default_checkpoint_dir(model_path)
    if run.resume:
        raise ConfigError("resume needs checkpoint_dir (or a model path beside which the checkpoints lie)")
    return None
