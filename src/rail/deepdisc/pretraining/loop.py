"""Pretraining the whole network (detector + redshift head) on streamed, label-complete simulated tiles.

Real spec-z labels are few, bright and mostly at low redshift; the simulator knows the true redshift of every
object at every depth. `pretrain_model` trains one network on a stream of chunks
(`rail.deepdisc.pretraining.randomise`): each epoch is ``chunks_per_epoch`` chunks, each chunk is one pass of
`rail.deepdisc.training.epoch.run_epoch` (the same training step as ``deepdisc train``: augmentation, all detection
losses, the mixture NLL on every object), then the chunk is dropped. After every chunk a checkpoint (model, optimiser,
position, history) is written atomically; each chunk's data and randomness derive from ``(seed, epoch, chunk)`` alone,
so a run killed at any point and resumed reaches the same weights as an uninterrupted one (same device and thread
count). Under DDP (torchrun) every rank simulates its own chunk and gradients are averaged.

The result is an ordinary one-member model artifact whose ``provenance`` describes the pretraining data
(source, randomisation ranges, fixed simulator settings, SED families), seed, epochs, tiles seen and the CPU
seconds spent (every rank, simulation included, resumed runs added up); fine-tune it with
``deepdisc train --init`` (`rail.deepdisc.training.finetune`). Input normalisation comes from a fixed validation set
(the midpoint of every randomised range, never trained on), whose mean log-likelihood is recorded per epoch.

*Continuing a pretraining* (``init``: ``deepdisc pretrain --init EARLIER.pt``). The run starts from an earlier
pretrained model's weights and input normalisation, with a fresh optimiser and learning-rate schedule over its own
epochs (a warm restart, Loshchilov & Hutter 2017). Its epochs are numbered after the earlier run's, so that with
the same seed its chunks are new ones, never the earlier run's again. The provenance's ``epochs``, ``tiles_seen``,
``objects_seen`` and ``cpu_seconds`` are totals over both runs (what it took to make the model), and
``continued_from`` records the earlier model (its weights' digest and its own totals); the member's history (the
loss curves) is the earlier run's followed by this one's.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.artifact import weights_digest
from rail.deepdisc.model.network import NetworkConfig, build_model
from rail.deepdisc.model.normalise import band_statistics
from rail.deepdisc.pretraining.randomise import chunk_seed
from rail.deepdisc.pretraining.settings import PretrainSettings
from rail.deepdisc.training.checkpoint import read_checkpoint, save_checkpoint
from rail.deepdisc.training.data import MemberData, tile_targets
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.ensemble import EnsembleSettings, assemble_artifact
from rail.deepdisc.training.epoch import run_epoch
from rail.deepdisc.training.member import MemberResult
from rail.deepdisc.training.optimiser import make_optimizer
from rail.deepdisc.training.settings import TrainSettings
from rail.deepdisc.training.validation import validation_log_likelihood

__all__ = ["PRETRAIN_CHECKPOINT_KIND", "pretrain_model"]

log = logging.getLogger(__name__)

PRETRAIN_CHECKPOINT_KIND = "deepdisc-pretrain-checkpoint"
_EMPTY = np.zeros(0, dtype=np.int64)


class _Position:
    """Where a pretraining run stands: what a checkpoint holds besides the weights."""

    def __init__(self) -> None:
        self.epoch = 0
        self.chunk = 0
        self.sums: dict[str, float] = {}
        self.n_chunks = 0
        self.tiles_seen = 0
        self.objects_seen = 0
        self.history: list[dict] = []
        self.cpu_seconds = 0.0  # summed over the ranks and over resumed runs

    def to_dict(self) -> dict:
        return dict(vars(self))

    def load(self, data: dict) -> None:
        for key in vars(self):
            setattr(self, key, data.get(key, getattr(self, key)))  # checkpoints before cpu_seconds lack it


def pretrain_model(
    source,
    network: NetworkConfig,
    train_settings: TrainSettings,
    settings: PretrainSettings,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    device: torch.device = torch.device("cpu"),
    dist_ctx: DistContext = DistContext(),
    progress: bool = True,
    on_chunk_end=None,
    init: dict | None = None,
    init_path: str = "",
) -> dict:
    """Pretrain one network on a stream of label-complete chunks; return the model artifact.

    Parameters
    ----------
    source : SimulatedChunks or FileChunks
        The chunks (`rail.deepdisc.pretraining.randomise`); its bands and pixel scale must match ``network``.
    network : NetworkConfig
        Architecture.
    train_settings : TrainSettings
        Batch size, optimiser, learning-rate schedule (by epoch), augmentation; ``patience`` and ``freeze``
        are not used (fresh data every chunk: no early stopping, nothing to freeze).
    settings : PretrainSettings
        Epochs, validation size, seed.
    checkpoint : Path, optional
        Checkpoint file, rewritten after every chunk by rank 0.
    resume : bool
        Continue from ``checkpoint`` when it exists.
    device : torch.device
        Training device.
    dist_ctx : DistContext
        DDP context.
    progress : bool
        Progress bar (rank 0).
    on_chunk_end : callable, optional
        Called as ``f(epoch, chunk, record)`` (the chunk just trained, 0-based) after its checkpoint is
        written.
    init : dict, optional
        An earlier pretrained artifact to continue (see the module docstring): same architecture and bands.
    init_path : str
        Its file, for the provenance.

    Returns
    -------
    dict
        A one-member artifact (``config``, ``members``, ``provenance``).

    Raises
    ------
    ConfigError
        If the source's bands or pixel scale differ from the network's, or ``init`` is not a pretrained model
        of the same network.
    ModelError
        If a checkpoint to resume from belongs to another run.
    """
    cpu0 = time.process_time()  # this process's CPU (every thread), simulation included
    if tuple(source.bands) != tuple(network.bands) or not math.isclose(
        source.pixel_scale, network.pixel_scale, rel_tol=1e-3
    ):
        raise ConfigError(
            f"pretraining data have bands {' '.join(source.bands)} at {source.pixel_scale:g} arcsec/pix, the "
            f"network {' '.join(network.bands)} at {network.pixel_scale:g}"
        )
    val = source.validation(settings.validation_tiles)
    network = network.for_tiles(val.images.shape)  # transformer backbones are built for the tile size
    stats = band_statistics(val.images, val.segmaps, seed=settings.seed)
    center, scale = stats.center_scale(network.normalisation)
    earlier = _continuation(init, init_path, network) if init is not None else None
    if earlier is not None:
        if dist_ctx.is_main:
            _warn_if_other_data(earlier, source.describe())
        norm = init["config"]["normalisation"]
        center, scale = np.asarray(norm["center"], float), np.asarray(norm["scale"], float)
    val_targets = tile_targets(val)
    val_data = MemberData(val.images, val.segmaps, val_targets, _EMPTY, np.arange(val.n_tiles), stats.sky_sigma)
    model = _initial_model(network, settings.seed, center, scale, val_targets)
    if earlier is not None:
        model.load_state_dict(init["members"][0]["state_dict"])
    model = model.to(device).train()
    optimizer = make_optimizer(model, train_settings)
    pos = _Position()
    offset = earlier["epochs"] if earlier is not None else 0  # new chunks after the earlier run's
    fingerprint = {
        "network": network.to_dict(),
        "training": train_settings.to_dict(),
        "data": source.describe(),
        "seed": settings.seed,
        "epochs": settings.epochs,
        "validation_tiles": settings.validation_tiles,
        "world_size": dist_ctx.world_size,
    }
    if earlier is not None:  # only then: checkpoints of runs from scratch keep their fingerprint
        fingerprint["init_weights"] = earlier["weights"]
    if resume and checkpoint is not None and checkpoint.exists():
        pos.load(read_checkpoint(checkpoint, kind=PRETRAIN_CHECKPOINT_KIND, fingerprint=fingerprint,
                                 description="DeepDISC pretraining checkpoint", model=model,
                                 optimizer=optimizer)["position"])
        log.info("pretraining: resumed at epoch %d, chunk %d from %s", pos.epoch, pos.chunk, checkpoint)
    net = dist_ctx.wrap(model)
    total = settings.epochs * source.chunks_per_epoch
    bar = tqdm(total=total, initial=pos.epoch * source.chunks_per_epoch + pos.chunk, unit="chunk",
               desc="pretrain", disable=not (progress and dist_ctx.is_main), leave=False)
    while pos.epoch < settings.epochs:
        rank = dist_ctx.rank if source.per_rank else 0
        tiles = source.chunk(offset + pos.epoch, pos.chunk, rank)
        data = MemberData(tiles.images, tiles.segmaps, tile_targets(tiles), np.arange(tiles.n_tiles), _EMPTY,
                          stats.sky_sigma)
        epoch, chunk = pos.epoch, pos.chunk  # the learning-rate schedule runs over this run's epochs
        seed = chunk_seed(settings.seed, offset + epoch, chunk)
        record = run_epoch(net, model, data, train_settings, epoch, seed, optimizer, device, dist_ctx,
                           presharded=source.per_rank)
        _accumulate(pos, record, tiles, dist_ctx.world_size if source.per_rank else 1)
        if pos.chunk == source.chunks_per_epoch:
            _end_epoch(pos, model, val_data, train_settings, device, dist_ctx, offset)
        cpu1 = time.process_time()
        pos.cpu_seconds += dist_ctx.all_sum([cpu1 - cpu0])[0]
        cpu0 = cpu1
        if dist_ctx.is_main and checkpoint is not None:
            save_checkpoint(_checkpoint(fingerprint, model, optimizer, pos), checkpoint)
        dist_ctx.barrier()
        bar.update(1)
        bar.set_postfix(loss=f"{record.get('loss', math.nan):.3f}")
        if on_chunk_end is not None:
            on_chunk_end(epoch, chunk, record)
    bar.close()
    history = (init["members"][0].get("history") or []) if init is not None else []
    return _artifact(network, train_settings, settings, source, center, scale, model, pos, dist_ctx, earlier,
                     history + pos.history, offset)


def _continuation(init: dict, path: str, network: NetworkConfig) -> dict:
    """What the provenance records of an earlier pretraining that ``init`` continues (checked against ``network``)."""
    prov = init.get("provenance") or {}
    name = path or "init"
    if prov.get("kind") != "pretrained" or "epochs" not in prov:
        raise ConfigError(f"{name}: not a pretrained model (deepdisc pretrain's output); only a pretraining can be "
                          f"continued (fine-tune other models with deepdisc train --init)")
    diff = NetworkConfig.from_dict(init["config"]).differences(network)
    if diff:
        raise ConfigError(f"{name}: its network differs from the requested one in {', '.join(diff)}; continue it "
                          f"with the options it was pretrained with (deepdisc info {name})")
    return {"path": str(path), "weights": weights_digest(init["members"][0]["state_dict"]),
            **{k: prov.get(k) for k in ("epochs", "tiles_seen", "objects_seen", "cpu_seconds",
                                        "final_validation_nll", "pretraining_data", "seed")}}


def _initial_model(network, seed, center, scale, val_targets):
    torch.manual_seed(seed)
    model = build_model(network)
    model.normaliser.set_statistics(center, scale)
    z = np.concatenate([t["redshift"] for t in val_targets])
    model.redshift_head.init_from_labels(torch.from_numpy(z[np.isfinite(z)].astype(np.float64)))
    return model


def _warn_if_other_data(earlier: dict, data: dict) -> None:
    """Log which settings of the pretraining data differ from those of the run being continued."""
    before = earlier.get("pretraining_data") or {}
    keys = sorted(k for k in set(before) | set(data) if before.get(k) != data.get(k))
    if keys:
        log.warning("%s was pretrained on other data (%s differ): continuing on these, as asked",
                    earlier["path"] or "the init model", ", ".join(keys))


def _accumulate(pos: _Position, record: dict, tiles, n_ranks: int) -> None:
    for key, value in record.items():
        if key.startswith("loss"):
            pos.sums[key] = pos.sums.get(key, 0.0) + float(value)
    pos.n_chunks += 1
    pos.chunk += 1
    pos.tiles_seen += tiles.n_tiles * n_ranks
    pos.objects_seen += tiles.n_objects * n_ranks


def _end_epoch(pos: _Position, model, val_data, train_settings, device, dist_ctx: DistContext, offset: int) -> None:
    ll, n_val = (
        validation_log_likelihood(model, val_data, batch_size=train_settings.batch_size, device=device)
        if dist_ctx.is_main
        else (0.0, 0)
    )
    ll, n_val = dist_ctx.broadcast([ll, float(n_val)])
    record = {key: value / max(pos.n_chunks, 1) for key, value in pos.sums.items()}
    record.update(epoch=offset + pos.epoch, chunks=pos.n_chunks, tiles_seen=pos.tiles_seen, val_nll=-ll,
                  n_val=int(n_val))
    pos.history.append(record)
    log.info("pretraining epoch %d: loss %.3f, validation NLL %.3f", offset + pos.epoch, record.get("loss", math.nan),
             -ll)
    pos.epoch, pos.chunk, pos.sums, pos.n_chunks = pos.epoch + 1, 0, {}, 0


def _checkpoint(fingerprint: dict, model, optimizer, pos: _Position) -> dict:
    return {
        "kind": PRETRAIN_CHECKPOINT_KIND,
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "position": pos.to_dict(),
    }


def _artifact(network, train_settings, settings, source, center, scale, model, pos, dist_ctx, earlier, history,
              offset) -> dict:
    last = pos.history[-1] if pos.history else {}
    result = MemberResult(
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        val_log_likelihood=-float(last.get("val_nll", math.nan)),
        best_epoch=offset + settings.epochs - 1,
        seed=settings.seed,
        history=history,
    )
    provenance = {
        "kind": "pretrained",
        "pretraining_data": source.describe(),
        "seed": settings.seed,
        "epochs": settings.epochs,
        "tiles_seen": pos.tiles_seen,
        "objects_seen": pos.objects_seen,
        "validation_tiles": settings.validation_tiles,
        "final_validation_nll": float(last.get("val_nll", math.nan)),
        "world_size": dist_ctx.world_size,
        "cpu_seconds": float(pos.cpu_seconds),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if earlier is not None:  # totals over both runs; the earlier one's own figures in continued_from
        for key in ("epochs", "tiles_seen", "objects_seen", "cpu_seconds"):
            if earlier[key] is None:  # models written before the entry existed: no total to give
                provenance[f"{key}_this_run"] = provenance.pop(key)
            else:
                provenance[key] += earlier[key]
        provenance["continued_from"] = earlier
    ensemble = EnsembleSettings(members=1, seed=settings.seed)
    artifact = assemble_artifact(network, train_settings, ensemble, center, scale, [result], provenance)
    artifact["config"]["training"].pop("val_fraction", None)
    artifact["config"]["training"].pop("calibration_fraction", None)
    artifact["config"]["training"]["pretraining"] = True
    return artifact
