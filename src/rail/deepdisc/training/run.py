"""One training run from flat options (the informer's config or the ``deepdisc train`` flags) to an artifact.

`TRAIN_DEFAULTS` lists every option with its default; `train_from_options` checks them (unknown names and
out-of-range values are `ConfigError`), sets threads and device, joins a torchrun process group when there is
one, trains the ensemble with per-epoch checkpoints, and (rank 0) writes the loss curves beside the model.
`DeepDiscInformer` and the command line both call it, so they cannot drift apart.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from rail.deepdisc.constants import N_COMPONENTS
from rail.deepdisc.devices import resolve_device, set_threads
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.artifact import load_artifact
from rail.deepdisc.model.network import NetworkConfig
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.training.data import Augmentation
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.ensemble import EnsembleSettings, train_ensemble
from rail.deepdisc.training.finetune import FIRST_CONV_MODES
from rail.deepdisc.training.loop import TrainSettings
from rail.deepdisc.training.loss_curves import write_loss_curves

__all__ = [
    "TRAIN_DEFAULTS",
    "train_from_options",
    "check_train_options",
    "settings_from_options",
    "loss_curve_paths",
    "default_checkpoint_dir",
]

log = logging.getLogger(__name__)

#: Every training option and its default (the informer declares the same names).
TRAIN_DEFAULTS: dict = {
    "backbone": "resnet18",
    "backbone_norm": "group",
    "backbone_weights": "",
    "init_model": "",
    "first_conv": "reinit",
    "freeze": [],
    "freeze_epochs": 0,
    "n_components": N_COMPONENTS,
    "head_hidden": [1024, 64],
    "pixel_pool_size": 4,
    "redshift_loss_weight": 1.0,
    "head_lr_factor": 0.5,
    "head_steps": 4,
    "head_replay": 16,
    "head_dropout": 0.3,
    "redshift_backbone_grad": 0.1,
    "calibrate_widths": True,
    "normalisation": "zscore",
    "members": 10,
    "val_fraction": 0.1,
    "calibration_fraction": 0.0,
    "epochs": 20,
    "batch_size": 4,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "lr_steps": [],
    "lr_gamma": 0.1,
    "lr_schedule": "cosine",
    "patience": 10,
    "augment_dihedral": True,
    "augment_noise": 0.0,
    "augment_ebv": 0.0,
    "augment_box_jitter": 0.05,
    "clip_grad_norm": 10.0,
    "member_indices": [],
    "seed": 1234,
    "device": "auto",
    "num_threads": 0,
    "checkpoint_dir": "",
    "resume": False,
    "progress_bar": True,
}


def loss_curve_paths(model_path: str | Path) -> tuple[Path, Path]:
    """``MODEL_loss.json`` and ``MODEL_loss.png`` beside a model file."""
    p = Path(model_path)
    return p.with_name(p.stem + "_loss.json"), p.with_name(p.stem + "_loss.png")


def default_checkpoint_dir(model_path: str | Path) -> Path:
    """``MODEL_checkpoints/`` beside a model file."""
    p = Path(model_path)
    return p.with_name(p.stem + "_checkpoints")


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
        The model artifact (also returned on non-zero DDP ranks, which write nothing).

    Raises
    ------
    ConfigError
        Unknown option names or out-of-range values.
    TileSetError
        A TileSet without usable spec-z labels.
    """
    opts = check_train_options(options)
    device = resolve_device(opts["device"])
    set_threads(int(opts["num_threads"]))
    network, settings, ensemble = settings_from_options(opts, tileset.bands, tileset.pixel_scale)
    checkpoint_dir = _checkpoint_dir(opts, model_path)
    init_artifact = load_artifact(opts["init_model"]) if opts["init_model"] else None
    dist_ctx = DistContext.from_env(device)
    try:
        artifact = train_ensemble(
            tileset,
            network,
            settings,
            ensemble,
            checkpoint_dir=checkpoint_dir,
            resume=bool(opts["resume"]),
            device=dist_ctx.device_for(device),
            dist_ctx=dist_ctx,
            members=opts["member_indices"] or None,
            init_artifact=init_artifact,
            backbone_weights=opts["backbone_weights"] or None,
            first_conv=str(opts["first_conv"]),
            progress=bool(opts["progress_bar"]),
            on_epoch_end=on_epoch_end,
        )
        if init_artifact is not None:
            artifact["provenance"]["fine_tuned_from"] = _source_description(opts["init_model"], init_artifact)
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
    opts = _checked(options)
    settings_from_options(opts, ("BAND",), 1.0)
    resolve_device(opts["device"])
    if int(opts["num_threads"]) < 0:
        raise ConfigError(f"num_threads must be >= 0 (0 = torch default), got {opts['num_threads']!r}")
    return opts


def settings_from_options(
    opts: dict, bands, pixel_scale
) -> tuple[NetworkConfig, TrainSettings, EnsembleSettings]:
    """Build the settings objects from checked options (every `TRAIN_DEFAULTS` key present)."""
    network = NetworkConfig(
        bands=tuple(bands),
        pixel_scale=float(pixel_scale),
        backbone=opts["backbone"],
        backbone_norm=opts["backbone_norm"],
        n_components=int(opts["n_components"]),
        head_hidden=tuple(int(h) for h in opts["head_hidden"]),
        pixel_pool_size=int(opts["pixel_pool_size"]),
        normalisation=opts["normalisation"],
    )
    settings = TrainSettings(
        epochs=int(opts["epochs"]),
        batch_size=int(opts["batch_size"]),
        optimizer=str(opts["optimizer"]),
        learning_rate=float(opts["learning_rate"]),
        momentum=float(opts["momentum"]),
        weight_decay=float(opts["weight_decay"]),
        lr_steps=tuple(int(s) for s in opts["lr_steps"]),
        lr_gamma=float(opts["lr_gamma"]),
        lr_schedule=str(opts["lr_schedule"]),
        patience=int(opts["patience"]),
        redshift_loss_weight=float(opts["redshift_loss_weight"]),
        head_lr_factor=float(opts["head_lr_factor"]),
        head_steps=int(opts["head_steps"]),
        head_replay=int(opts["head_replay"]),
        head_dropout=float(opts["head_dropout"]),
        redshift_backbone_grad=float(opts["redshift_backbone_grad"]),
        calibrate_widths=bool(opts["calibrate_widths"]),
        clip_grad_norm=float(opts["clip_grad_norm"]),
        augmentation=Augmentation(
            dihedral=bool(opts["augment_dihedral"]),
            noise_sigma=float(opts["augment_noise"]),
            ebv_sigma=float(opts["augment_ebv"]),
            box_jitter=float(opts["augment_box_jitter"]),
        ),
        freeze=tuple(str(p) for p in opts["freeze"]),
        freeze_epochs=int(opts["freeze_epochs"]),
    )
    ensemble = EnsembleSettings(
        members=int(opts["members"]),
        val_fraction=float(opts["val_fraction"]),
        seed=int(opts["seed"]),
        calibration_fraction=float(opts["calibration_fraction"]),
    )
    return network, settings, ensemble


def _checked(options: Mapping) -> dict:
    unknown = [k for k in options if k not in TRAIN_DEFAULTS]
    if unknown:
        hints = [
            f"'{k}'"
            + (f" (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(k, TRAIN_DEFAULTS, 1)) else "")
            for k in unknown
        ]
        raise ConfigError(f"unknown training option(s) {', '.join(hints)}")
    opts = {**TRAIN_DEFAULTS, **options}
    for key in ("head_hidden", "lr_steps", "member_indices", "freeze"):
        if not isinstance(opts[key], (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {opts[key]!r}")
    if int(opts["n_components"]) < 1:
        raise ConfigError(f"n_components must be >= 1, got {opts['n_components']!r}")
    if not math.isfinite(float(opts["redshift_loss_weight"])):
        raise ConfigError(f"redshift_loss_weight must be finite, got {opts['redshift_loss_weight']!r}")
    if opts["first_conv"] not in FIRST_CONV_MODES:
        raise ConfigError(f"first_conv must be one of {', '.join(FIRST_CONV_MODES)}, got {opts['first_conv']!r}")
    if opts["freeze"] and not opts["init_model"] and not opts["backbone_weights"]:
        raise ConfigError(
            "freeze only makes sense when starting from pretrained weights: give init_model (or "
            "backbone_weights), or leave freeze empty"
        )
    if opts["backbone_weights"] and opts["init_model"]:
        raise ConfigError(
            "give backbone_weights or init_model, not both (init_model already holds a backbone)"
        )
    return opts


def _source_description(path, artifact: dict) -> dict:
    """Where a fine-tuned model started: the file, its creator version and its own provenance."""
    return {
        "path": str(path),
        "package_version": artifact.get("package_version", "?"),
        "bands": list(artifact["config"]["bands"]),
        "provenance": artifact.get("provenance") or {},
    }


def _checkpoint_dir(opts: dict, model_path) -> Path | None:
    if opts["checkpoint_dir"]:
        return Path(opts["checkpoint_dir"])
    if model_path is not None:
        return default_checkpoint_dir(model_path)
    if opts["resume"]:
        raise ConfigError("resume needs checkpoint_dir (or a model path beside which the checkpoints lie)")
    return None
