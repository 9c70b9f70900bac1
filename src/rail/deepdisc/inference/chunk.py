"""The ensemble's work on one chunk of tiles: plan the boxes, run each member, combine the members.

`plan_chunk` collects the catalog boxes of every tile (all appearances) and the primary objects' output rows;
`run_member` runs one network batch by batch (backbone once, detections above ``score_threshold`` matched
one-to-one to the catalog boxes, a forced catalog box where none matched, one batched redshift call; or, given
another member's result (``shared_detection``), that member's boxes, without detecting or matching);
`assemble_chunk` combines the members' mixtures (`rail.deepdisc.mixture.Mixture.combine`) and computes the
point estimates and flags. :class:`rail.deepdisc.inference.predictor.EnsemblePredictor` drives them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.inference.match import match_box_arrays
from rail.deepdisc.inference.photoz import PhotoZChunk
from rail.deepdisc.mixture import MEDIAN_TOLERANCE, Mixture
from rail.deepdisc.tileset.format import TileSet

__all__ = [
    "MIN_BOX_SIZE_PX",
    "ChunkPlan",
    "MemberResult",
    "plan_chunk",
    "forced_boxes",
    "tile_boxes",
    "run_member",
    "assemble_chunk",
]

#: Smallest side of a catalog box fed to the redshift head, pixels (a degenerate box has no RoI to pool).
MIN_BOX_SIZE_PX = 1.0


@dataclass(frozen=True)
class ChunkPlan:
    """Per-tile inputs shared by every member: catalog boxes and the primary objects' output rows."""

    boxes: list[np.ndarray]  # per tile: (n_t, 4) catalog boxes of all appearances
    primary: list[np.ndarray]  # per tile: indices into boxes[t] of the primary appearances
    out_rows: list[np.ndarray]  # per tile: output rows (0-based within the chunk) of those primaries
    ebv: list[np.ndarray]  # per tile: E(B-V) of the primaries (mag), 0 where the catalog has none
    n_primary: int
    n_ebv_missing: int  # primaries without a finite E(B-V)


def plan_chunk(tiles: TileSet) -> ChunkPlan:
    """Collect every tile's catalog boxes, primary objects, their output rows and E(B-V) (0 where missing).

    Parameters
    ----------
    tiles : TileSet
        A chunk of whole tiles.

    Returns
    -------
    ChunkPlan
    """
    obj = tiles.objects
    boxes_all = np.stack([obj["bbox_x0"], obj["bbox_y0"], obj["bbox_x1"], obj["bbox_y1"]], axis=1)
    boxes_all = boxes_all.astype(np.float64)
    primary_all = obj["primary"].astype(bool)
    out_row = np.cumsum(primary_all) - 1
    ebv_all = np.asarray(obj["ebv"], dtype=np.float64)
    ebv_missing = primary_all & ~np.isfinite(ebv_all)
    ebv_all = np.where(ebv_missing, 0.0, ebv_all)
    plan = ChunkPlan([], [], [], [], int(primary_all.sum()), int(ebv_missing.sum()))
    for t in range(tiles.n_tiles):
        sl = tiles.object_slice(t)
        local_primary = np.flatnonzero(primary_all[sl])
        plan.boxes.append(boxes_all[sl])
        plan.primary.append(local_primary)
        plan.out_rows.append(out_row[sl][local_primary])
        plan.ebv.append(ebv_all[sl][local_primary])
    return plan


def forced_boxes(boxes: np.ndarray) -> np.ndarray:
    """Catalog boxes widened, where needed, to `MIN_BOX_SIZE_PX` about their centres."""
    out = boxes.copy()
    for lo, hi in ((0, 2), (1, 3)):
        centre = 0.5 * (boxes[:, lo] + boxes[:, hi])
        half = 0.5 * np.maximum(boxes[:, hi] - boxes[:, lo], MIN_BOX_SIZE_PX)
        out[:, lo], out[:, hi] = centre - half, centre + half
    return out


@dataclass
class MemberResult:
    """One member's output for a chunk: mixtures, whether a detection matched, its score (0 if none), boxes."""

    mixture: Mixture
    matched: np.ndarray  # (N,) bool
    score: np.ndarray  # (N,) float, 0 where unmatched
    boxes: list[np.ndarray]  # per tile: (n_t, 4) float64 box of each primary object the redshift head read


def tile_boxes(plan: ChunkPlan, t: int, detection: dict | None, settings):
    """Boxes of tile t's primary objects: the matched detection box, else the (forced) catalog box.

    A core matched inside a large catalog box (`rail.deepdisc.inference.match.Matches.contained`) counts as
    detected but keeps its catalog box, as the redshift head was trained on.

    Parameters
    ----------
    plan : ChunkPlan
        The chunk's boxes.
    t : int
        Tile row within the chunk.
    detection : dict or None
        The detector's ``boxes`` and ``scores`` for the tile (torch tensors); None in ``forced_all`` mode.
    settings : InferenceSettings
        ``score_threshold`` and ``iou_threshold``.

    Returns
    -------
    boxes : ndarray (n, 4)
        One box per primary object.
    matched : ndarray of bool (n,)
        A detection matched the object.
    score : ndarray (n,)
        The matched detection's score, 0 where unmatched.
    """
    primary = plan.primary[t]
    boxes = forced_boxes(plan.boxes[t][primary])
    matched = np.zeros(len(primary), dtype=bool)
    score = np.zeros(len(primary))
    if detection is None or len(primary) == 0:
        return boxes, matched, score
    det_boxes = detection["boxes"].detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
    det_scores = detection["scores"].detach().cpu().numpy().astype(np.float64).reshape(-1)
    keep = det_scores >= settings.score_threshold
    matches = match_box_arrays(plan.boxes[t], det_boxes[keep], det_scores[keep], settings.iou_threshold)
    idx = matches.detection[primary]
    matched = idx >= 0
    use = matched & ~matches.contained[primary]  # a core matched inside a large box keeps the catalog box
    boxes[use] = det_boxes[keep][idx[use]]
    score[matched] = det_scores[keep][idx[matched]]
    return boxes, matched, score


def run_member(model, tiles: TileSet, plan: ChunkPlan, settings, device, *,
               shared: MemberResult | None = None) -> MemberResult:
    """Run one member network over a chunk, batch by batch: encode, detect, match, one batched redshift call.

    Parameters
    ----------
    model : torch.nn.Module
        A member with ``encode``, ``detect`` and ``redshift`` (eval mode).
    tiles : TileSet
        The chunk.
    plan : ChunkPlan
        Its boxes (`plan_chunk`).
    settings : InferenceSettings
        Batching, layout, matching options.
    device : torch.device or str
        Where the member lives.
    shared : MemberResult, optional
        Another member's result for this chunk: take its boxes, ``matched`` and ``score`` instead of detecting
        and matching (``shared_detection``; only the backbone and the redshift head run).

    Returns
    -------
    MemberResult
    """
    import torch

    n = plan.n_primary
    result = None
    matched_all = np.zeros(n, dtype=bool)
    score_all = np.zeros(n)
    boxes_all: list[np.ndarray] = []
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    model.to(memory_format=layout)  # 4-d weights only; a no-op when they already are in this layout
    for a in range(0, tiles.n_tiles, settings.batch_size):
        b = min(a + settings.batch_size, tiles.n_tiles)
        images = torch.from_numpy(np.ascontiguousarray(tiles.images[a:b], dtype=np.float32)).to(device)
        images = images.contiguous(memory_format=layout)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            enc = model.encode(images)
        if settings.bf16:  # detection and the redshift head read float32 features (boxes keep float32 coordinates)
            enc = type(enc)(enc.images, type(enc.features)((k, v.float()) for k, v in enc.features.items()))
        skip = settings.forced_all or shared is not None
        detections = [None] * (b - a) if skip else model.detect(enc)
        boxes, ebvs, rows = [], [], []
        for i, t in enumerate(range(a, b)):
            if shared is None:
                tb, tm, ts = tile_boxes(plan, t, detections[i], settings)
            else:
                tb, tm, ts = shared.boxes[t], shared.matched[plan.out_rows[t]], shared.score[plan.out_rows[t]]
            boxes_all.append(tb)
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
    return MemberResult(Mixture(*result), matched_all, score_all, boxes_all)


def assemble_chunk(tiles: TileSet, plan: ChunkPlan, results: list[MemberResult], weights: np.ndarray,
                   settings) -> PhotoZChunk:
    """Combine the members' results into the chunk's photo-z mixtures, point estimates and flags.

    Parameters
    ----------
    tiles : TileSet
        The chunk.
    plan : ChunkPlan
        Its boxes.
    results : list of MemberResult
        One per member.
    weights : ndarray (M,)
        Normalised member weights.
    settings : InferenceSettings
        ``forced_all`` and the ``zmode`` grid.

    Returns
    -------
    PhotoZChunk
    """
    primary = tiles.primary_objects()
    mixture = Mixture.combine([r.mixture for r in results], weights)
    matched_any = np.any([r.matched for r in results], axis=0)
    unmatched = 0 if settings.forced_all else sum(
        1 for rows in plan.out_rows if len(rows) and not matched_any[rows].any())
    kind = np.asarray(tiles.tiles["kind"]).astype(str)
    return PhotoZChunk(
        mixture=mixture,
        object_id=np.asarray(primary["object_id"], dtype=np.int64),
        zmode=mixture.mode(settings.zgrid),
        zmean=mixture.mean(),
        zmedian=mixture.median(MEDIAN_TOLERANCE),
        detected=matched_any.astype(np.int8),
        forced=(~matched_any).astype(np.int8),
        recentred=(kind[np.asarray(primary["tile"], dtype=np.int64)] == "recentred").astype(np.int8),
        score=np.sum([w * r.score for w, r in zip(weights, results)], axis=0),
        tiles_unmatched=unmatched,
        ebv_missing=plan.n_ebv_missing,
    )
