"""Running a DeepDISC ensemble over chunks of tiles: detect, match, forced boxes, redshift mixtures.

`EnsemblePredictor` builds every member network once (`model_from_artifact`, the single place where the
network is constructed) and then turns each chunk of whole tiles into one combined photo-z mixture per
*primary* object (`PhotoZChunk`). Per member and batch of tiles the backbone runs once (``encode``); the
detector's boxes above ``score_threshold`` are matched one-to-one to the tile's catalog boxes (all
appearances, so a detection of a neighbour's non-primary appearance cannot steal a primary object); each
primary object then takes its redshift mixture from the matched detection box or, if no detection matched,
from its catalog box (forced). All boxes of a batch go through one batched ``redshift`` call (one RoIAlign).

Per-object flags of the ensemble: ``detected`` = a detection matched the object in at least one member;
``forced`` = no member matched it (every member used the catalog box); ``score`` = member-weighted mean of the
matched detection scores (0 for a member that did not match). In ``forced_all`` mode detection is skipped:
every object is forced and its score is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.exceptions import DeepDiscError, ModelError, TileSetError
from rail.deepdisc.inference.match import DEFAULT_IOU_THRESHOLD, _match_boxes
from rail.deepdisc.inference.photoz import PhotoZChunk, empty_chunk
from rail.deepdisc.mixture import MEDIAN_TOLERANCE, Mixture, _combine, _mean, _median, _mode
from rail.deepdisc.model.artifact import check_compatible
from rail.deepdisc.tileset.format import TileSet, _check_objects

__all__ = [
    "InferenceSettings",
    "EnsemblePredictor",
    "check_input",
    "model_from_artifact",
]

log = logging.getLogger(__name__)

#: Smallest side of a catalog box fed to the redshift head, pixels (a degenerate box has no RoI to pool).
MIN_BOX_SIZE_PX = 1.0


@dataclass(frozen=True)
class InferenceSettings:
    """Options of the estimator's inference (built once by the stage or the CLI).

    Parameters
    ----------
    iou_threshold : float
        Minimum IoU, in (0, 1], for a detection to match a catalog box.
    score_threshold : float
        Detections below this confidence, in [0, 1], are dropped before matching.
    forced_all : bool
        Skip detection: every object's redshift comes from its catalog box.
    batch_size : int
        Tiles per forward pass.
    zmin, zmax : float
        Redshift range of the ``zmode`` grid.
    nzbins : int
        Points of the ``zmode`` grid ``linspace(zmin, zmax, nzbins)``.
    channels_last : bool
        Run the networks in the ``channels_last`` memory layout (oneDNN's fast path for the backbone's
        convolutions on CPU; the outputs agree with the default layout to float rounding).
    """

    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    score_threshold: float = 0.05
    forced_all: bool = False
    batch_size: int = 8
    zmin: float = ZMIN
    zmax: float = ZMAX
    nzbins: int = NZBINS
    channels_last: bool = True

    def __post_init__(self):
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not self.zmax > self.zmin:
            raise ValueError(f"zmax must exceed zmin, got zmin={self.zmin!r}, zmax={self.zmax!r}")
        if self.nzbins < 2:
            raise ValueError(f"nzbins must be >= 2, got {self.nzbins!r}")

    @property
    def zgrid(self) -> np.ndarray:
        """The ``zmode`` grid, shape (nzbins,)."""
        return np.linspace(self.zmin, self.zmax, self.nzbins)


def model_from_artifact(artifact: dict, member: int, *, device="cpu"):
    """Build ensemble member ``member`` of an artifact (eval mode, weights loaded) on ``device``.

    The one place where the estimator constructs a network: it defers to
    :func:`rail.deepdisc.model.network.model_from_artifact`.

    Parameters
    ----------
    artifact : dict
        A loaded model artifact.
    member : int
        Index into ``artifact["members"]``.
    device : str or torch.device
        Where to put the network.

    Returns
    -------
    torch.nn.Module
        A network with ``encode``, ``detect`` and ``redshift``.
    """
    from rail.deepdisc.model.network import model_from_artifact as build

    return build(artifact, member, device=device)


@dataclass(frozen=True)
class _ChunkPlan:
    """Per-tile inputs shared by every member: catalog boxes and the primary objects' output rows."""

    boxes: list[np.ndarray]  # per tile: (n_t, 4) catalog boxes of all appearances
    primary: list[np.ndarray]  # per tile: indices into boxes[t] of the primary appearances
    out_rows: list[np.ndarray]  # per tile: output rows (0-based within the chunk) of those primaries
    ebv: list[np.ndarray]  # per tile: E(B-V) of the primaries (mag), 0 where the catalog has none
    n_primary: int
    n_ebv_missing: int  # primaries without a finite E(B-V)


def _plan_chunk(tiles: TileSet) -> _ChunkPlan:
    obj = tiles.objects
    boxes_all = np.stack([obj["bbox_x0"], obj["bbox_y0"], obj["bbox_x1"], obj["bbox_y1"]], axis=1)
    boxes_all = boxes_all.astype(np.float64)
    primary_all = obj["primary"].astype(bool)
    out_row = np.cumsum(primary_all) - 1
    ebv_all = np.asarray(obj["ebv"], dtype=np.float64)
    ebv_missing = primary_all & ~np.isfinite(ebv_all)
    ebv_all = np.where(ebv_missing, 0.0, ebv_all)
    plan = _ChunkPlan([], [], [], [], int(primary_all.sum()), int(ebv_missing.sum()))
    for t in range(tiles.n_tiles):
        sl = tiles.object_slice(t)
        local_primary = np.flatnonzero(primary_all[sl])
        plan.boxes.append(boxes_all[sl])
        plan.primary.append(local_primary)
        plan.out_rows.append(out_row[sl][local_primary])
        plan.ebv.append(ebv_all[sl][local_primary])
    return plan


def _forced_boxes(boxes: np.ndarray) -> np.ndarray:
    """Catalog boxes widened, where needed, to `MIN_BOX_SIZE_PX` about their centres."""
    out = boxes.copy()
    for lo, hi in ((0, 2), (1, 3)):
        centre = 0.5 * (boxes[:, lo] + boxes[:, hi])
        half = 0.5 * np.maximum(boxes[:, hi] - boxes[:, lo], MIN_BOX_SIZE_PX)
        out[:, lo], out[:, hi] = centre - half, centre + half
    return out


@dataclass
class _MemberResult:
    mixture: Mixture
    matched: np.ndarray  # (N,) bool
    score: np.ndarray  # (N,) float, 0 where unmatched


def _tile_boxes(plan: _ChunkPlan, t: int, detection: dict | None, settings: InferenceSettings):
    """Boxes of tile t's primary objects: matched detection box or catalog box; also matched flags, scores."""
    primary = plan.primary[t]
    boxes = _forced_boxes(plan.boxes[t][primary])
    matched = np.zeros(len(primary), dtype=bool)
    score = np.zeros(len(primary))
    if detection is None or len(primary) == 0:
        return boxes, matched, score
    det_boxes = detection["boxes"].detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
    det_scores = detection["scores"].detach().cpu().numpy().astype(np.float64).reshape(-1)
    keep = det_scores >= settings.score_threshold
    matches = _match_boxes(plan.boxes[t], det_boxes[keep], det_scores[keep], settings.iou_threshold)
    idx = matches.detection[primary]
    matched = idx >= 0
    boxes[matched] = det_boxes[keep][idx[matched]]
    score[matched] = det_scores[keep][idx[matched]]
    return boxes, matched, score


def _run_member(model, tiles: TileSet, plan: _ChunkPlan, settings: InferenceSettings, device
                ) -> _MemberResult:
    import torch

    n = plan.n_primary
    result = None
    matched_all = np.zeros(n, dtype=bool)
    score_all = np.zeros(n)
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    model.to(memory_format=layout)  # 4-d weights only; a no-op when they already are in this layout
    for a in range(0, tiles.n_tiles, settings.batch_size):
        b = min(a + settings.batch_size, tiles.n_tiles)
        images = torch.from_numpy(np.ascontiguousarray(tiles.images[a:b], dtype=np.float32)).to(device)
        images = images.contiguous(memory_format=layout)
        enc = model.encode(images)
        detections = [None] * (b - a) if settings.forced_all else model.detect(enc)
        boxes, ebvs, rows = [], [], []
        for i, t in enumerate(range(a, b)):
            tb, tm, ts = _tile_boxes(plan, t, detections[i], settings)
            boxes.append(torch.as_tensor(tb, dtype=torch.float32, device=device))
            ebvs.append(torch.as_tensor(plan.ebv[t], dtype=torch.float32, device=device))
            rows.append(plan.out_rows[t])
            matched_all[plan.out_rows[t]] = tm
            score_all[plan.out_rows[t]] = ts
        rows = np.concatenate(rows)
        if len(rows) == 0:
            continue
        params = model.redshift(enc, boxes, ebvs)
        arrays = [p.detach().to("cpu", torch.float64).numpy()
                  for p in (params.weights, params.means, params.stds)]
        if result is None:
            result = [np.zeros((n, arrays[0].shape[1])) for _ in range(3)]
        for dst, src in zip(result, arrays):
            dst[rows] = src
    return _MemberResult(Mixture(*result), matched_all, score_all)


class EnsemblePredictor:
    """The ensemble's member networks, built once, applied chunk by chunk.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Member networks with the inference methods ``encode``, ``detect`` and ``redshift`` (eval mode).
    weights : sequence of float
        Ensemble weight per member (normalised to sum to 1).
    bands : sequence of str
        Bands the networks were trained on, in channel order.
    pixel_scale : float
        Pixel scale the networks were trained at, arcsec/pix.
    device : torch.device or str
        Where the networks live; input tiles are moved there batch by batch.
    name : str
        How messages refer to the model (e.g. its file).
    """

    def __init__(self, models: Sequence, weights: Sequence[float], *, bands: Sequence[str],
                 pixel_scale: float, device="cpu", name: str = "model"):
        w = np.asarray(weights, dtype=np.float64)
        if len(models) == 0 or w.shape != (len(models),):
            raise ModelError(f"{name}: need one weight per member, got {len(models)} members and {w.size} "
                             f"weights")
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ModelError(f"{name}: member weights must be finite, >= 0 and not all zero, got "
                             f"{w.tolist()}")
        self.models = list(models)
        self.weights = w / w.sum()
        self.bands = tuple(bands)
        self.pixel_scale = float(pixel_scale)
        self.device = device
        self.name = name

    @classmethod
    def from_artifact(cls, artifact: dict, *, device: str = "auto", members: Sequence[int] | None = None,
                      name: str = "model") -> EnsemblePredictor:
        """Build the members of a loaded artifact (see `rail.deepdisc.model.artifact.load_artifact`).

        Parameters
        ----------
        artifact : dict
            The model artifact.
        device : str
            ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        members : sequence of int, optional
            Use only these members (their weights renormalised); all by default.
        name : str
            How messages refer to the model.

        Notes
        -----
        The members' widths are multiplied by the factor calibrating the mixture of exactly these members
        (`rail.deepdisc.training.calibration.ensemble_std_scale`; 1 for artifacts without calibration records).

        Returns
        -------
        EnsemblePredictor
        """
        from rail.deepdisc.devices import resolve_device
        from rail.deepdisc.training.calibration import ensemble_std_scale

        dev = resolve_device(device)
        n_members = len(artifact["members"])
        chosen = list(range(n_members)) if members is None else list(members)
        if not chosen or any(not 0 <= k < n_members for k in chosen):
            raise ModelError(f"{name}: members {chosen} not in the artifact's 0..{n_members - 1}")
        try:
            models = [model_from_artifact(artifact, k, device=dev) for k in chosen]
            weights = [float(artifact["members"][k]["weight"]) for k in chosen]
            scale, n_cal = ensemble_std_scale([artifact["members"][k] for k in chosen], name=name)
        except DeepDiscError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            raise ModelError(f"{name}: the members do not fit the network config ({type(err).__name__}: {err}); "
                             f"the file is damaged or was not written by pz-rail-deepdisc") from None
        if n_cal:  # artifacts without calibration records keep the members' widths untouched
            for model in models:
                model.redshift_head.std_scale.mul_(scale)
        cfg = artifact["config"]
        log.info("%s: %d member(s) on %s%s", name, len(models), dev,
                 f", widths x {scale:.3f} (fitted on {n_cal} calibration objects)" if n_cal else "")
        return cls(models, weights, bands=cfg["bands"], pixel_scale=cfg["pixel_scale"], device=dev, name=name)

    def check_compatible(self, bands: Sequence[str], pixel_scale: float, *, data_name: str = "data") -> None:
        """Raise `ModelError` if the data's bands or pixel scale differ from the model's."""
        config = {"bands": self.bands, "pixel_scale": self.pixel_scale}
        check_compatible({"config": config}, bands, pixel_scale, model_name=self.name, data_name=data_name)

    def predict(self, tiles: TileSet, settings: InferenceSettings) -> PhotoZChunk:
        """Photo-z mixtures and point estimates of every primary object of a chunk of tiles.

        Parameters
        ----------
        tiles : TileSet
            A chunk of whole tiles (e.g. from `rail.deepdisc.tileset.io.iter_tileset`).
        settings : InferenceSettings
            Matching, batching and point-estimate options.

        Returns
        -------
        PhotoZChunk
            One row per primary object of ``tiles``, in file order.

        Raises
        ------
        ModelError
            If the tiles' bands or pixel scale differ from the model's.
        """
        self.check_compatible(tiles.bands, tiles.pixel_scale, data_name=tiles.source)
        return self._predict(tiles, settings)

    def _predict(self, tiles: TileSet, settings: InferenceSettings) -> PhotoZChunk:
        import torch

        plan = _plan_chunk(tiles)
        if plan.n_primary == 0:
            return empty_chunk()
        with torch.inference_mode():
            results = [_run_member(m, tiles, plan, settings, self.device) for m in self.models]
        return _assemble(tiles, plan, results, self.weights, settings)


def _assemble(tiles: TileSet, plan: _ChunkPlan, results: list[_MemberResult], weights: np.ndarray,
              settings: InferenceSettings) -> PhotoZChunk:
    primary = tiles.primary_objects()
    mixture = _combine([r.mixture for r in results], weights)
    matched_any = np.any([r.matched for r in results], axis=0)
    unmatched = 0 if settings.forced_all else sum(
        1 for rows in plan.out_rows if len(rows) and not matched_any[rows].any())
    kind = np.asarray(tiles.tiles["kind"]).astype(str)
    return PhotoZChunk(
        mixture=mixture,
        object_id=np.asarray(primary["object_id"], dtype=np.int64),
        zmode=_mode(mixture, settings.zgrid),
        zmean=_mean(mixture),
        zmedian=_median(mixture, MEDIAN_TOLERANCE),
        detected=matched_any.astype(np.int8),
        forced=(~matched_any).astype(np.int8),
        recentred=(kind[np.asarray(primary["tile"], dtype=np.int64)] == "recentred").astype(np.int8),
        score=np.sum([w * r.score for w, r in zip(weights, results)], axis=0),
        tiles_unmatched=unmatched,
        ebv_missing=plan.n_ebv_missing,
    )


def check_input(predictor: EnsemblePredictor, tiles) -> int:
    """Check a TileSet before any inference: structure, object table, bands, pixel scale, not empty.

    Parameters
    ----------
    predictor : EnsemblePredictor
        The model that will run.
    tiles : str, Path or TileSet
        The input file (read without loading its pixels) or an in-memory set.

    Returns
    -------
    int
        Number of primary objects (output rows).

    Raises
    ------
    TileSetError
        If the file is missing, not a TileSet, malformed, or holds no primary object.
    ModelError
        If its bands or pixel scale differ from the model's.
    """
    if isinstance(tiles, TileSet):
        source, bands, pixel_scale = tiles.source, tiles.bands, tiles.pixel_scale
        n_tiles, objects = tiles.n_tiles, tiles.objects
    else:
        from rail.deepdisc.tileset.io import _open_checked, _read_columns, _reading

        source = str(tiles)
        f, bands, pixel_scale, _ = _open_checked(tiles, source)
        with f, _reading(source):
            n_tiles = f["images"].shape[0]
            objects = _read_columns(f["objects"], names=["object_id", "tile", "primary"])
    _check_objects(source, n_tiles, objects)
    predictor.check_compatible(bands, pixel_scale, data_name=source)
    n_primary = int(np.count_nonzero(objects["primary"]))
    if n_primary == 0:
        raise TileSetError(f"{source}: holds no primary objects ({n_tiles} tiles); nothing to estimate: "
                           f"check that the file was written completely")
    return n_primary
