"""Backbone-only pretraining like Merz et al. (2025): a ResNet regresses redshift and magnitudes of cutouts.

The paper starts its detector from a ResNet pretrained in-domain. Here the ResNet body of
`rail.deepdisc.model.backbone.build_backbone` (same depth, normalisation layers and band count as the detector) sees
single-object cutouts (``cutout_size`` px, centred on each object, zero-padded at tile edges) of label-complete
TileSets, global-average-pools its last layer and feeds an MLP head that regresses the standardised true
redshift and the standardised magnitude in every band (mean squared error; missing magnitudes are masked).
Only the ResNet weights are the product: `save_backbone` writes ``{"state_dict": ResNet weights, "config",
"provenance"}``, which `rail.deepdisc.model.backbone.load_backbone_weights` (``deepdisc train --backbone-weights``)
loads into the detector's backbone.

Pixels are scaled like the detector's input (`rail.deepdisc.model.normalise`, statistics of the first chunk).
Chunks stream from a source of `rail.deepdisc.pretraining.randomise` (files or on-the-fly simulation); a fixed
fraction of the objects (by a hash of ``object_id``) is held out for validation. Each epoch's randomness derives from
``(seed, epoch, chunk)`` and a checkpoint is written after every epoch, so a killed run resumes exactly.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.backbone import BACKBONES, build_backbone
from rail.deepdisc.model.normalise import InputNormaliser, band_statistics
from rail.deepdisc.options import build
from rail.deepdisc.pretraining.randomise import chunk_seed
from rail.deepdisc.pretraining.settings import (
    BACKBONE_PRETRAIN_OPTIONS,
    MIN_CUTOUT_SIZE,
    BackboneRunOptions,
    BackboneSettings,
)
from rail.deepdisc.training.checkpoint import read_checkpoint, save_checkpoint

__all__ = [
    "BACKBONE_CHECKPOINT_KIND",
    "BACKBONE_PRETRAIN_DEFAULTS",
    "extract_cutouts",
    "CutoutRegressor",
    "pretrain_backbone",
    "pretrain_backbone_from_options",
    "save_backbone",
]

log = logging.getLogger(__name__)

BACKBONE_CHECKPOINT_KIND = "deepdisc-backbone-checkpoint"
#: Hidden width of the MLP head.
HEAD_HIDDEN = 256
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: object_id -> validation membership
_HASH_MODULUS = 2**32
_MIN_SPREAD = 1e-3  # floor of a target's standard deviation (redshift units or mag)


def extract_cutouts(tileset, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cutouts centred on every object of a TileSet, with redshift and magnitude targets.

    Parameters
    ----------
    tileset : TileSet
        Label-complete tiles (``objects/redshift`` finite for the objects to use).
    size : int
        Cutout side, pixels (>= 32, the ResNet's total stride).

    Returns
    -------
    cutouts : ndarray (N, C, size, size) float32
        Raw pixels, zero outside the tile.
    redshift : ndarray (N,)
    mags : ndarray (N, C)
        ``true_mag_<band>`` when present, else ``mag_<band>`` (non-finite = missing).
    object_id : ndarray (N,) int64
    """
    if int(size) < MIN_CUTOUT_SIZE:
        raise ConfigError(f"cutout_size must be >= {MIN_CUTOUT_SIZE} pixels (the ResNet's stride), got {size}")
    obj = tileset.objects
    use = np.flatnonzero(np.isfinite(obj["redshift"]))
    c, h, w = tileset.images.shape[1:]
    half = size // 2
    padded = np.zeros((c, h + size, w + size), dtype=np.float32)
    out = np.zeros((len(use), c, size, size), dtype=np.float32)
    order = use[np.argsort(obj["tile"][use], kind="stable")]
    last = -1
    for k, row in enumerate(order):
        tile = int(obj["tile"][row])
        if tile != last:
            padded[:, half : half + h, half : half + w] = tileset.images[tile]
            last = tile
        x, y = int(round(float(obj["x"][row]))), int(round(float(obj["y"][row])))
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        out[k] = padded[:, y : y + size, x : x + size]
    mags = np.stack([np.asarray(obj.get(f"true_mag_{b}", obj[f"mag_{b}"]), dtype=np.float64)[order]
                     for b in tileset.bands], axis=1)
    return out, np.asarray(obj["redshift"][order], np.float64), mags, np.asarray(obj["object_id"][order], np.int64)


class CutoutRegressor(nn.Module):
    """Normaliser, ResNet body, global average pooling and an MLP with ``1 + C`` outputs.

    Parameters
    ----------
    backbone : {"resnet18", "resnet34", "resnet50"}
    n_bands : int
    norm : {"group", "batch"}
        ResNet normalisation layers (use the detector's ``backbone_norm``).
    normalisation : {"zscore", "asinh"}
        Input normalisation kind (statistics set with ``normaliser.set_statistics``).
    """

    def __init__(self, backbone: str, n_bands: int, *, norm: str = "group", normalisation: str = "zscore"):
        super().__init__()
        self.normaliser = InputNormaliser(n_bands, kind=normalisation)
        self.body = build_backbone(backbone, n_bands, norm=norm).body
        width = BACKBONES[backbone][-1]
        self.head = nn.Sequential(nn.Linear(width, HEAD_HIDDEN), nn.ReLU(inplace=True),
                                  nn.Linear(HEAD_HIDDEN, 1 + n_bands))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) raw pixels -> (B, 1 + C) standardised redshift and magnitudes."""
        features = self.body(self.normaliser(x))
        last = features[list(features)[-1]]
        return self.head(last.mean(dim=(-2, -1)))


def _in_validation(object_id: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    h = (object_id.astype(np.uint64) * np.uint64(_HASH_MULTIPLIER) + np.uint64(seed)) % np.uint64(_HASH_MODULUS)
    return h.astype(np.float64) / _HASH_MODULUS < fraction


def _masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ok = torch.isfinite(target)
    diff = torch.where(ok, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff**2).sum() / ok.sum().clamp(min=1)


def pretrain_backbone(
    source,
    settings: BackboneSettings | None = None,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    device: torch.device = torch.device("cpu"),
    progress: bool = True,
) -> dict:
    """Train a `CutoutRegressor` on a stream of chunks; return its ResNet weights and provenance.

    Parameters
    ----------
    source : FileChunks or SimulatedChunks
        Label-complete chunks (`rail.deepdisc.pretraining.randomise`).
    settings : BackboneSettings, optional
        Backbone (as the detector's ``backbone``, ``backbone_norm``, ``normalisation``), cutout size, epochs,
        batch size, AdamW learning rate and weight decay, validation fraction (held out by object id), seed
        (default: `BackboneSettings` defaults).
    checkpoint : Path, optional
        Written after every epoch.
    resume : bool
        Continue from ``checkpoint`` when it exists.
    device : torch.device
    progress : bool

    Returns
    -------
    dict
        ``state_dict`` (ResNet body weights, CPU), ``config``, ``provenance`` (see `save_backbone`).
    """
    s = settings if settings is not None else BackboneSettings()
    backbone, norm, normalisation, cutout_size = s.backbone, s.backbone_norm, s.normalisation, s.cutout_size
    epochs, batch_size, learning_rate, seed = s.epochs, s.batch_size, s.learning_rate, s.seed
    validation_fraction = s.validation_fraction
    first = source.chunk(0, 0)
    stats = band_statistics(first.images, first.segmaps, seed=seed)
    _, z, mags, _ = extract_cutouts(first, cutout_size)
    loc, spread = _target_moments(z, mags)
    torch.manual_seed(seed)
    model = CutoutRegressor(backbone, len(source.bands), norm=norm, normalisation=normalisation)
    model.normaliser.set_statistics(*stats.center_scale(normalisation))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=s.weight_decay)
    state = {"epoch": 0, "history": []}
    fingerprint = {"backbone": backbone, "norm": norm, "cutout_size": cutout_size, "epochs": epochs,
                   "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                   "validation_fraction": validation_fraction, "data": source.describe()}
    if resume and checkpoint is not None and checkpoint.exists():
        state.update(read_checkpoint(checkpoint, kind=BACKBONE_CHECKPOINT_KIND, fingerprint=fingerprint,
                                     description="backbone pretraining checkpoint", model=model,
                                     optimizer=optimizer)["state"])
    n_train = 0
    for epoch in tqdm(range(state["epoch"], epochs), desc="backbone", disable=not progress, leave=False):
        train_loss, val_sq, val_n, n_train = 0.0, 0.0, 0, 0
        for c in range(source.chunks_per_epoch):
            cut, z, mags, oid = extract_cutouts(source.chunk(epoch, c), cutout_size)
            targets = (torch.from_numpy(np.c_[z, mags].astype(np.float32)) - loc) / spread
            val = _in_validation(oid, validation_fraction, seed)
            rng = np.random.default_rng(chunk_seed(seed, epoch, c))
            model.train()
            for batch in np.array_split(rng.permutation(np.flatnonzero(~val)), max(1, (~val).sum() // batch_size)):
                if len(batch) < 2:
                    continue
                x = torch.from_numpy(_dihedral(cut[batch], rng)).to(device)
                loss = _masked_mse(model(x), targets[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_loss += float(loss.detach()) * len(batch)
                n_train += len(batch)
            val_sq, val_n = _validate(model, cut[val], z[val], loc, spread, device, val_sq, val_n)
        rmse = math.sqrt(val_sq / val_n) if val_n else math.nan
        state["history"].append({"epoch": epoch, "loss": train_loss / max(n_train, 1), "val_redshift_rmse": rmse})
        state["epoch"] = epoch + 1
        if checkpoint is not None:
            save_checkpoint({"kind": BACKBONE_CHECKPOINT_KIND, "fingerprint": fingerprint, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(), "state": state}, checkpoint)
        log.info("backbone epoch %d: loss %.4f, validation redshift RMSE %.3f", epoch,
                 state["history"][-1]["loss"], rmse)
    last = state["history"][-1] if state["history"] else {}
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.body.state_dict().items()},
        "config": {"backbone": backbone, "backbone_norm": norm, "bands": list(source.bands),
                   "pixel_scale": source.pixel_scale, "cutout_size": cutout_size},
        "provenance": {"kind": "backbone-pretrained", "backbone": backbone, "pretraining_data": source.describe(),
                       "seed": seed, "epochs": epochs, "n_train": n_train,
                       "val_redshift_rmse": float(last.get("val_redshift_rmse", math.nan)),
                       "history": state["history"],
                       "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def _target_moments(z: np.ndarray, mags: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread of the targets (redshift, then each band's magnitude) for standardisation.

    Bands without any finite magnitude get 0 and 1 (their targets are all masked anyway).
    """
    values = np.c_[z, mags]
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    filled = np.where(finite, values, 0.0)
    mean = np.where(n > 0, filled.sum(axis=0) / np.maximum(n, 1), 0.0)
    var = np.where(finite, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1)
    spread = np.where(n > 1, np.sqrt(var), 1.0)
    return (torch.tensor(mean, dtype=torch.float32),
            torch.tensor(np.maximum(spread, _MIN_SPREAD), dtype=torch.float32))


def _dihedral(cutouts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(4))
    out = np.rot90(cutouts, k=k, axes=(-2, -1))
    if rng.integers(2):
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


@torch.no_grad()
def _validate(model, cut, z, loc, spread, device, sq, n):
    if len(z) == 0:
        return sq, n
    model.eval()
    pred = model(torch.from_numpy(cut).to(device))[:, 0].cpu() * spread[0] + loc[0]
    return sq + float(((pred.double() - torch.from_numpy(z)) ** 2).sum()), n + len(z)


def save_backbone(result: dict, path: str | Path) -> Path:
    """Write `pretrain_backbone`'s result atomically (``torch.load(weights_only=True)`` reads it back).

    The file is ``{"kind": "deepdisc-backbone", "state_dict", "config", "provenance"}``; its ``state_dict``
    holds plain ResNet keys (``conv1.weight``, ``layer1.0.conv1.weight``, ...), the format
    `rail.deepdisc.model.backbone.load_backbone_weights` reads.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"kind": "deepdisc-backbone", **result}, tmp)
    return path


#: Options of `pretrain_backbone_from_options` (``deepdisc pretrain --backbone-only``) and their defaults.
BACKBONE_PRETRAIN_DEFAULTS: dict = BACKBONE_PRETRAIN_OPTIONS.defaults()


def pretrain_backbone_from_options(options: dict, *, output_path: str | Path | None = None) -> dict:
    """`pretrain_backbone` on label-complete TileSet files from flat options (`BACKBONE_PRETRAIN_OPTIONS`).

    The checkpoint defaults to ``OUTPUT_checkpoint.pt`` beside ``output_path``.

    Raises
    ------
    ConfigError
        Unknown options, no ``tile_files``, or out-of-range values.
    """
    from rail.deepdisc.devices import resolve_device, set_threads
    from rail.deepdisc.pretraining.randomise import FileChunks

    opts = BACKBONE_PRETRAIN_OPTIONS.check(options, "backbone pretraining")
    run, settings = build(BackboneRunOptions, opts), build(BackboneSettings, opts)
    if not run.tile_files:
        raise ConfigError("backbone-only pretraining needs tile_files: label-complete simulated TileSets "
                          "(make them with deepdisc simulate)")
    device = resolve_device(run.device)
    set_threads(run.num_threads)
    checkpoint = Path(run.checkpoint) if run.checkpoint else (
        Path(output_path).with_name(Path(output_path).stem + "_checkpoint.pt") if output_path else None)
    source = FileChunks(list(run.tile_files), tiles_per_chunk=run.tiles_per_chunk)
    return pretrain_backbone(source, settings, checkpoint=checkpoint, resume=run.resume, device=device,
                             progress=run.progress_bar)
