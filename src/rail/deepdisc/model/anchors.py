"""RPN anchors of a `NetworkConfig`, and how well they cover a set of object boxes.

Level ``l`` of the feature pyramid (strides 4, 8, 16, 32, 64 px: levels ``0``-``3`` and ``pool``) carries anchors
of side ``anchor_sizes[l] * s`` for every ``s`` in ``anchor_scales``, each at every aspect ratio, centred on the
level's grid. The RPN calls an anchor positive when its IoU with an object box is at least
``rpn_fg_iou_threshold``; an object with no such anchor still gets its single best anchor (torchvision's
low-quality match), but then trains the RPN through one poorly aligned anchor.

Why the defaults changed (issue 18): anchors one per level, as large as the level's stride (4-64 px), left 95-100% of
the catalogued objects of a simulated JADES field without any anchor at IoU >= 0.7 (median best IoU 0.33-0.41 in
every magnitude bin; ``benchmarks/README.md``, "Detection completeness"): the grid of a level is as coarse as its
anchors, so an object between two grid points or between two sizes overlaps every anchor poorly. Four sizes per
level (x 1, sqrt 2, 2, 2 sqrt 2) put an anchor at IoU >= 0.5 on 91-100% of the F444W 20-28 objects.
`anchor_coverage` measures this for any config and set of boxes (the trainer logs it).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

__all__ = ["LEVEL_STRIDES", "level_anchor_sizes", "anchor_generator", "tile_anchors", "best_anchor_iou",
           "anchor_coverage", "describe_anchor_coverage", "FLAGGED_MIN_SIDE", "POOR_COVERAGE"]

#: Strides (px) of the pyramid levels ``0``, ``1``, ``2``, ``3`` and ``pool`` of the ResNet-FPN backbones.
LEVEL_STRIDES = (4, 8, 16, 32, 64)


def level_anchor_sizes(config) -> tuple[tuple[float, ...], ...]:
    """Anchor sides (px) per pyramid level: ``anchor_sizes[l] * s`` for each ``s`` of ``anchor_scales``."""
    return tuple(tuple(float(size) * float(s) for s in config.anchor_scales) for size in config.anchor_sizes)


def anchor_generator(config) -> AnchorGenerator:
    """Torchvision's `AnchorGenerator` of ``config`` (`level_anchor_sizes` at every aspect ratio)."""
    sizes = level_anchor_sizes(config)
    return AnchorGenerator(sizes=sizes, aspect_ratios=(tuple(float(a) for a in config.aspect_ratios),) * len(sizes))


def tile_anchors(config, tile_shape: tuple[int, int]) -> torch.Tensor:
    """Every anchor (xyxy px) of a tile of ``tile_shape`` (H, W), as the ResNet-FPN backbones lay them out."""
    h, w = (int(n) for n in tile_shape)
    images = ImageList(torch.zeros(1, 1, h, w), [(h, w)])
    # the FPN levels of a ResNet: ceil(side / stride) cells (torchvision's conv arithmetic with padding)
    maps = [torch.zeros(1, 1, -(-h // s), -(-w // s)) for s in LEVEL_STRIDES]
    return anchor_generator(config)(images, maps)[0]


def best_anchor_iou(config, boxes, tile_shape: tuple[int, int]) -> np.ndarray:
    """Largest IoU of each box (n, 4 xyxy px) with any anchor of a ``tile_shape`` tile under ``config``."""
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    if len(boxes) == 0:
        return np.zeros(0)
    return box_iou(boxes, tile_anchors(config, tile_shape)).max(dim=1).values.numpy().astype(np.float64)


def anchor_coverage(config, boxes, tile_shape: tuple[int, int], *,
                    size_edges=(0.0, 8.0, 16.0, 32.0, 64.0, np.inf)) -> list[dict]:
    """How many boxes of each size have a positive RPN anchor (IoU >= ``config.rpn_fg_iou_threshold``).

    Parameters
    ----------
    config : NetworkConfig
        The anchors and the RPN's foreground IoU threshold.
    boxes : array_like (n, 4)
        Object boxes xyxy (px) in tiles of ``tile_shape``.
    tile_shape : (int, int)
        Tile height and width, px.
    size_edges : sequence of float
        Bins of the box side (the larger of width and height, px).

    Returns
    -------
    list of dict
        Per non-empty size bin: ``lo``, ``hi``, ``n``, ``positive`` (fraction with an anchor at or above the
        threshold) and ``median_iou`` (median best anchor IoU).

    Examples
    --------
    >>> from rail.deepdisc.model.config import NetworkConfig
    >>> old = NetworkConfig(bands=("F444W",), pixel_scale=0.03, anchor_scales=(1.0,), rpn_fg_iou_threshold=0.7)
    >>> anchor_coverage(old, [[10, 10, 110, 110]], (128, 128))[0]["positive"]
    0.0
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    best = best_anchor_iou(config, boxes, tile_shape)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    rows = []
    for lo, hi in zip(size_edges[:-1], size_edges[1:]):
        sel = (side >= lo) & (side < hi)
        if sel.any():
            rows.append({"lo": float(lo), "hi": float(hi), "n": int(sel.sum()),
                         "positive": float(np.mean(best[sel] >= config.rpn_fg_iou_threshold)),
                         "median_iou": float(np.median(best[sel]))})
    return rows


#: `describe_anchor_coverage` flags box sizes from this side (px) up where fewer than `POOR_COVERAGE` of the boxes
#: have a positive anchor (smaller boxes cannot be matched well on a stride-4 grid by any anchor).
FLAGGED_MIN_SIDE = 8.0
POOR_COVERAGE = 0.5


def describe_anchor_coverage(config, boxes, tile_shape: tuple[int, int]) -> tuple[str, bool]:
    """One line on `anchor_coverage` by box side, and whether large boxes are poorly covered.

    Poorly covered: some size bin from `FLAGGED_MIN_SIDE` px up has fewer than `POOR_COVERAGE` of its boxes with
    a positive anchor.
    """
    rows = anchor_coverage(config, boxes, tile_shape)
    text = ", ".join(f"{r['lo']:g}-{r['hi']:g} px {r['positive']:.0%} of {r['n']}" for r in rows)
    poor = any(r["lo"] >= FLAGGED_MIN_SIDE and r["positive"] < POOR_COVERAGE for r in rows)
    return (f"boxes with an RPN anchor at IoU >= {config.rpn_fg_iou_threshold:g} by side: {text}", poor)
