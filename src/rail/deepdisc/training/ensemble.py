"""Training a weighted ensemble of DeepDISC networks and assembling the model artifact.

Each member ``m`` gets its own seed ``s_m`` (from ``SeedSequence([seed, m])``), its own random partition of
the tiles with spec-z (``val_fraction`` held out for validation; tiles without spec-z always train detection)
and its own initialisation; a share ``calibration_fraction`` of the labelled tiles is held out from every
member to calibrate the ensemble's widths (`rail.deepdisc.training.calibration`). Members are weighted by their
normalised validation likelihood (Merz et al. 2025)::

    w_m = L_m / sum_j L_j,    L_m = exp(<log p_m(z_spec)>_val)

where ``<log p_m(z_spec)>_val`` is member m's mean log-likelihood per validation object (the geometric-mean
likelihood of its validation set, so sets of different sizes compare), computed at its best epoch. The weights
are evaluated as a softmax of the mean log-likelihoods, which is the same quantity without overflow.

Members can be trained by separate processes (``members=[...]``) and joined with `merge_artifacts`, which
recomputes the weights from the stored validation likelihoods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from rail.deepdisc.exceptions import ConfigError, ModelError, TileSetError
from rail.deepdisc.model.anchors import describe_anchor_coverage
from rail.deepdisc.model.artifact import weights_digest
from rail.deepdisc.model.backbone import load_backbone_weights
from rail.deepdisc.model.network import DeepDiscRCNN, NetworkConfig, build_model
from rail.deepdisc.model.normalise import band_statistics
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.training.calibration import calibration_record, calibration_tiles, ensemble_std_scale
from rail.deepdisc.training.data import MemberData, hide_labels, labelled_tiles, partition_tiles, tile_targets
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.finetune import load_pretrained
from rail.deepdisc.training.head_finetune import labelled_head_features, train_head_member, view_options
from rail.deepdisc.training.member import MemberResult, train_member
from rail.deepdisc.training.settings import EnsembleSettings, TrainSettings
from rail.deepdisc.training.validation import held_out_mixtures

__all__ = [
    "member_seed",
    "member_weights",
    "check_training_set",
    "train_ensemble",
    "merge_artifacts",
    "assemble_artifact",
]

log = logging.getLogger(__name__)


def member_seed(seed: int, member: int) -> int:
    """Seed of member ``member`` of an ensemble with master seed ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(member)]).generate_state(1, dtype=np.uint32)[0])


def member_weights(val_log_likelihoods: Sequence[float]) -> np.ndarray:
    """Normalised validation likelihoods ``w_m = exp(l_m) / sum_j exp(l_j)`` (see the module docstring).

    Parameters
    ----------
    val_log_likelihoods : sequence of float
        Mean validation log-likelihood per object of each member (nats); non-finite values get weight 0.

    Returns
    -------
    ndarray (M,)
        Weights summing to 1 (equal weights if no value is finite).

    Examples
    --------
    >>> member_weights([0.0, math.log(3.0)]).round(3).tolist()
    [0.25, 0.75]
    """
    ll = np.asarray(val_log_likelihoods, dtype=np.float64)
    finite = np.isfinite(ll)
    if not finite.any():
        return np.full(len(ll), 1.0 / len(ll))
    w = np.zeros(len(ll))
    w[finite] = np.exp(ll[finite] - ll[finite].max())
    return w / w.sum()


def check_training_set(tileset: TileSet) -> list[dict]:
    """Targets of a TileSet that can train a model, or a clear error.

    Raises
    ------
    TileSetError
        If no object has a spec-z label with a usable box, or fewer than 2 tiles hold one.
    """
    targets = tile_targets(tileset)
    n_lab = len(labelled_tiles(targets))
    if n_lab == 0:
        raise TileSetError(
            f"{tileset.source}: no object has a spec-z label (objects/redshift is NaN "
            f"everywhere); training needs labelled objects"
        )
    if n_lab < 2:
        raise TileSetError(
            f"{tileset.source}: only {n_lab} tile holds labelled objects; training needs at least "
            f"2 (one for validation)"
        )
    return targets


def train_ensemble(
    tileset: TileSet,
    network: NetworkConfig,
    settings: TrainSettings,
    ensemble: EnsembleSettings,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    device: torch.device = torch.device("cpu"),
    dist_ctx: DistContext = DistContext(),
    members: Sequence[int] | None = None,
    init_artifact: dict | None = None,
    backbone_weights: str | None = None,
    first_conv: str = "reinit",
    progress: bool = True,
    on_epoch_end=None,
) -> dict:
    """Train ensemble members on a TileSet and return the model artifact (``docs/contracts.md``).

    Parameters
    ----------
    tileset : TileSet
        Training tiles with spec-z (NaN = none).
    network : NetworkConfig
        Architecture; its ``bands`` and ``pixel_scale`` must match the TileSet.
    settings : TrainSettings
        Optimisation settings of every member.
    ensemble : EnsembleSettings
        Number of members, validation fraction, seed.
    checkpoint_dir : Path, optional
        Per-member checkpoints ``member_NNN.pt`` (written after each epoch).
    resume : bool
        Continue from the checkpoints in ``checkpoint_dir``.
    device : torch.device
        Training device.
    dist_ctx : DistContext
        DDP context (each member is trained by all ranks together).
    members : sequence of int, optional
        Train only these member indices (default: all ``ensemble.members``).
    init_artifact : dict, optional
        A loaded artifact (e.g. from ``deepdisc pretrain``) whose first member's weights every member starts
        from (fine-tuning). With the same bands its input normalisation is kept too; with other bands the
        band-dependent tensors are set as `rail.deepdisc.training.finetune.load_pretrained` describes and the
        normalisation comes from ``tileset``.
    backbone_weights : str, optional
        Local ResNet checkpoint for the backbone (ignored with ``init_artifact``).
    first_conv : {"reinit", "adapt"}
        First-convolution recipe when ``init_artifact`` has other bands.
    progress : bool
        Progress bars.
    on_epoch_end : callable, optional
        Passed to `train_member` (called as ``f(epoch, record)``).

    Returns
    -------
    dict
        The artifact: ``config``, ``members``, ``provenance``.

    Raises
    ------
    TileSetError
        If the TileSet has no usable labels.
    ConfigError
        If bands, pixel scale or member indices do not fit.
    """
    targets = check_training_set(tileset)
    network = network.for_tiles(tileset.images.shape)  # transformer backbones are built for the tile size
    if init_artifact is not None:
        network = network.keeping_anchors_of(NetworkConfig.from_dict(init_artifact["config"]))
    _check_network_fits(network, tileset, init_artifact)
    indices = list(range(ensemble.members)) if members is None else [int(m) for m in members]
    bad = [m for m in indices if not 0 <= m < ensemble.members]
    if bad or len(set(indices)) != len(indices):
        raise ConfigError(f"member indices must be distinct and in 0..{ensemble.members - 1}, got {indices}")
    text, poor = describe_anchor_coverage(network, np.concatenate([t["boxes"] for t in targets]), tileset.tile_shape)
    (log.warning if poor else log.info)("training %s%s", text, "; large boxes train the RPN poorly" if poor else "")
    stats = band_statistics(tileset.images, tileset.segmaps, seed=ensemble.seed)
    same_bands = init_artifact is not None and tuple(init_artifact["config"]["bands"]) == tuple(network.bands)
    if same_bands:
        norm = init_artifact["config"]["normalisation"]
        center, scale = np.asarray(norm["center"]), np.asarray(norm["scale"])
    else:
        center, scale = stats.center_scale(network.normalisation)
    fingerprint = _fingerprint(tileset, network, settings, ensemble, init_artifact, backbone_weights)
    fingerprint["first_conv"] = first_conv
    labelled = labelled_tiles(targets)
    cal = calibration_tiles(labelled, ensemble.calibration_fraction if settings.calibrate_widths else 0.0,
                            ensemble.seed)
    cal_data = MemberData(tileset.images, tileset.segmaps, targets, np.zeros(0, np.int64), cal, stats.sky_sigma)
    if len(cal):
        log.info("%d of %d labelled tiles held out from every member for the ensemble width calibration",
                 len(cal), len(labelled))
    results = []
    head_features = None
    for m in indices:
        seed_m = member_seed(ensemble.seed, m)
        train, val = partition_tiles(
            tileset.n_tiles, np.setdiff1d(labelled, cal), val_fraction=ensemble.val_fraction, seed=seed_m
        )
        data = MemberData(  # calibration tiles train detection only (their labels are hidden like val's)
            tileset.images, tileset.segmaps, hide_labels(targets, train, np.union1d(val, cal)), train, val,
            stats.sky_sigma,
        )
        model = _init_member(network, seed_m, center, scale, data, init_artifact, backbone_weights, first_conv)
        ckpt = checkpoint_dir / f"member_{m:03d}.pt" if checkpoint_dir is not None else None
        log.info("member %d of %d: %d training tiles, %d validation tiles, seed %d", m, ensemble.members, len(train),
                 len(val), seed_m)
        trainer, extra = train_member, {}
        if settings.finetune == "head":  # the head alone, on frozen features computed once for every member
            if head_features is None and not dist_ctx.distributed:  # (train_head_member refuses DDP)
                head_features = labelled_head_features(model.to(device), tileset.images, tileset.segmaps, targets,
                                                       labelled, batch_size=settings.batch_size, device=device,
                                                       **view_options(settings, ensemble.seed, stats.sky_sigma))
            trainer, extra = train_head_member, {"features": head_features}
        result = trainer(
            model,
            data,
            settings,
            member=m,
            seed=seed_m,
            checkpoint=ckpt,
            resume=resume,
            fingerprint=fingerprint,
            device=device,
            dist_ctx=dist_ctx,
            progress=progress,
            on_epoch_end=on_epoch_end,
            **extra,
        )
        if len(cal):  # only with calibrate_widths, after which train_member leaves the kept weights in model
            result.calibration = calibration_record(
                *held_out_mixtures(model, cal_data, batch_size=settings.batch_size, device=device)
            )
        results.append(result)
    provenance = {
        "training_data": str(tileset.source),
        "n_tiles": tileset.n_tiles,
        "n_labelled_objects": int(np.isfinite(tileset.objects["redshift"]).sum()),
        "seed": ensemble.seed,
        "members_trained": indices,
        "world_size": dist_ctx.world_size,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return assemble_artifact(network, settings, ensemble, center, scale, results, provenance)


def _check_network_fits(network: NetworkConfig, tileset: TileSet, init_artifact: dict | None) -> None:
    if tuple(network.bands) != tuple(tileset.bands):
        raise ConfigError(
            f"network bands {' '.join(network.bands)} differ from the TileSet's {' '.join(tileset.bands)}"
        )
    if not math.isclose(network.pixel_scale, tileset.pixel_scale, rel_tol=1e-3):
        raise ConfigError(
            f"network pixel scale {network.pixel_scale:g} differs from the TileSet's "
            f"{tileset.pixel_scale:g} arcsec/pix"
        )
    if init_artifact is not None:
        # other bands: see finetune.load_pretrained
        diff = NetworkConfig.from_dict(init_artifact["config"]).differences(network, ignore=("bands",))
        if diff:
            raise ConfigError(
                f"init_model's architecture differs from the requested one in "
                f"{', '.join(diff)}; use the same options (e.g. backbone) as the init model"
            )


def _init_member(
    network: NetworkConfig,
    seed: int,
    center,
    scale,
    data: MemberData,
    init_artifact: dict | None,
    backbone_weights: str | None,
    first_conv: str,
) -> DeepDiscRCNN:
    torch.manual_seed(seed)
    model = build_model(network)
    model.normaliser.set_statistics(center, scale)
    if init_artifact is not None:
        same = tuple(init_artifact["config"]["bands"]) == tuple(network.bands)
        load_pretrained(model, init_artifact["members"][0]["state_dict"], same_bands=same, first_conv=first_conv)
        return model
    if backbone_weights:
        load_backbone_weights(model.backbone, backbone_weights)
    z = np.concatenate([data.targets[k]["redshift"] for k in data.train])
    model.redshift_head.init_from_labels(torch.from_numpy(z[np.isfinite(z)].astype(np.float64)))
    return model


def _fingerprint(tileset, network, settings, ensemble, init_artifact, backbone_weights) -> dict:
    z = tileset.objects["redshift"]
    return {
        "network": network.to_dict(),
        "training": settings.to_dict(),
        "val_fraction": ensemble.val_fraction,
        "calibration_fraction": ensemble.calibration_fraction,
        "n_tiles": tileset.n_tiles,
        "n_objects": tileset.n_objects,
        "label_sum": float(np.round(np.nansum(z), 6)),
        "tile_ids": int(np.sum(tileset.tiles["tile_id"])),
        "init_model": init_artifact is not None,  # and which weights (old checkpoints lack it: LATER_ENTRIES)
        "init_weights": weights_digest(init_artifact["members"][0]["state_dict"]) if init_artifact else "",
        "backbone_weights": str(backbone_weights or ""),
    }


def assemble_artifact(
    network: NetworkConfig,
    settings: TrainSettings,
    ensemble: EnsembleSettings,
    center,
    scale,
    results: Sequence[MemberResult],
    provenance: dict,
) -> dict:
    """Build the artifact dict (plain data and tensors) from trained members.

    Member weights come from `member_weights` of their validation log-likelihoods.
    """
    config = network.to_dict()
    config["normalisation"] = {
        "kind": network.normalisation,
        "center": [float(c) for c in center],
        "scale": [float(s) for s in scale],
    }
    config["training"] = {
        **settings.to_dict(),
        "members": ensemble.members,
        "val_fraction": ensemble.val_fraction,
        "calibration_fraction": ensemble.calibration_fraction,
        "seed": ensemble.seed,
    }
    weights = member_weights([r.val_log_likelihood for r in results])
    members = [
        {
            "state_dict": r.state_dict,
            "val_log_likelihood": float(r.val_log_likelihood),
            "weight": float(w),
            "seed": int(r.seed),
            "best_epoch": int(r.best_epoch),
            "std_scale": float(r.std_scale),
            "history": r.history,
            **({"calibration": r.calibration} if r.calibration is not None else {}),
        }
        for r, w in zip(results, weights)
    ]
    _log_ensemble_scale(members)
    return {"config": config, "members": members, "provenance": provenance}


def _log_ensemble_scale(members: Sequence[dict]) -> None:
    scale, n = ensemble_std_scale(members)
    if n:
        log.info("ensemble of %d member(s): widths x %.3f on %d calibration objects", len(members), scale, n)


def merge_artifacts(artifacts: Sequence[dict]) -> dict:
    """Join artifacts of the same architecture (members trained by separate processes); re-weight members.

    Raises
    ------
    ModelError
        If the artifacts' network configs or normalisations differ, or fewer than one is given.
    """
    if not artifacts:
        raise ModelError("merge_artifacts: nothing to merge")
    first = artifacts[0]["config"]
    core = {k: v for k, v in first.items() if k != "training"}
    for k, art in enumerate(artifacts[1:], start=1):
        other = {key: v for key, v in art["config"].items() if key != "training"}
        if other != core:
            diff = sorted(key for key in set(core) | set(other) if core.get(key) != other.get(key))
            raise ModelError(
                f"artifact {k} differs from artifact 0 in {', '.join(diff)}; only members of the same "
                f"architecture, bands and normalisation can be merged"
            )
    members = [dict(m) for art in artifacts for m in art["members"]]
    for m, w in zip(members, member_weights([m["val_log_likelihood"] for m in members])):
        m["weight"] = float(w)
    _log_ensemble_scale(members)
    provenance = {"merged_from": [a.get("provenance", {}) for a in artifacts]}
    return {"config": dict(first), "members": members, "provenance": provenance}
