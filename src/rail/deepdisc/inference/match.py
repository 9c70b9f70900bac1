"""Matching detections to catalog boxes: intersection over union and an optimal one-to-one assignment.

Each catalog object of a tile can be claimed by at most one detection and each detection by at most one
object. Among the detection-object pairs with IoU >= ``iou_threshold`` we take the assignment of largest
total IoU (``scipy.optimize.linear_sum_assignment``), not a greedy pass, so two detections never share an
object and a detection is never "used up" by a weaker overlap. On exact IoU ties the detection of higher score
wins.

A second round (``contained_fraction > 0``, the default) matches what the first left over among large objects
(box side at least `CONTAINED_MIN_SIDE`): a detection lying mostly inside such an object's box (at least
``contained_fraction`` of its area) and holding the box's centre is that object's core. A bright galaxy's catalog
box is its segmentation extent, out to faint isophotes the detector cannot see in noisy pixels; its detected box
is often the bright half of that, IoU 0.1-0.3 for boxes of 64-128 px (``benchmarks/README.md``, "Detection
completeness"), so by IoU alone such galaxies counted as undetected. The second round maximises the fraction of
each object's box that its detection covers; `Matches.contained` marks its matches (the estimator then takes
their redshift from the catalog box, as it was trained).

Unmatched detections (no catalog counterpart) are dropped; unmatched objects get forced redshifts
downstream. Boxes are ``(x0, y0, x1, y1)`` in tile pixels with ``x1``/``y1`` exclusive, as in the TileSet and
torchvision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from rail.deepdisc.constants import IOU_THRESHOLD

__all__ = ["DEFAULT_IOU_THRESHOLD", "CONTAINED_FRACTION", "CONTAINED_MIN_SIDE", "Matches", "box_iou", "match_boxes",
           "match_box_arrays"]

#: Minimum IoU for a detection to count as an object's counterpart (the estimator's default).
DEFAULT_IOU_THRESHOLD = IOU_THRESHOLD
#: Second round of matching: least fraction of a left-over detection's area inside a left-over object's box (which
#: must also hold the box's centre) for the detection to count as that object's core; 0 = IoU matching only.
CONTAINED_FRACTION = 0.5
#: Smallest catalog box side (px, the larger of width and height) the second round applies to: IoU matching alone
#: left 97-100% of 16-64 px objects matched, 45% of 64-128 px ones; small blended objects keep the IoU criterion.
CONTAINED_MIN_SIDE = 32.0
#: Weight of the detection score in the assignment objective: breaks exact IoU ties only (scores lie in
#: [0, 1], so the term stays far below any meaningful IoU difference).
_SCORE_TIE_BREAK = 1e-9


class Matches(NamedTuple):
    """Result of `match_boxes` for one tile.

    ``detection`` (n_objects,) int: index of the matched detection per catalog box, -1 if none;
    ``iou`` (n_objects,) float: IoU of that match, NaN if none;
    ``contained`` (n_objects,) bool: matched in the second round (a core inside the box, IoU below threshold).
    """

    detection: np.ndarray
    iou: np.ndarray
    contained: np.ndarray | None = None

    @property
    def matched(self) -> np.ndarray:
        """Boolean mask of the catalog boxes that a detection claimed."""
        return self.detection >= 0


def _as_boxes(boxes, name: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (n, 4) as (x0, y0, x1, y1), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} hold NaN or infinite coordinates")
    return b


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Parameters
    ----------
    boxes_a : array_like (n, 4)
        Boxes ``(x0, y0, x1, y1)``, pixels.
    boxes_b : array_like (m, 4)
        Boxes ``(x0, y0, x1, y1)``, pixels.

    Returns
    -------
    ndarray (n, m)
        IoU in [0, 1]; 0 for disjoint boxes and where a box has no area.

    Examples
    --------
    >>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6]])
    array([[0.33333333, 0.        ]])
    """
    return _box_iou(_as_boxes(boxes_a, "boxes_a"), _as_boxes(boxes_b, "boxes_b"))


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return w * h


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    inter = _intersection(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(catalog_boxes, detection_boxes, detection_scores=None, *, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                contained_fraction: float = CONTAINED_FRACTION) -> Matches:
    """Match detections to catalog boxes one to one, maximising the total IoU.

    Parameters
    ----------
    catalog_boxes : array_like (n, 4)
        The tile's catalog boxes ``(x0, y0, x1, y1)``, pixels.
    detection_boxes : array_like (m, 4)
        Detected boxes, same convention.
    detection_scores : array_like (m,), optional
        Detection confidences in [0, 1]; break exact IoU ties in favour of the higher score.
    iou_threshold : float
        Minimum IoU of a match, in (0, 1].
    contained_fraction : float
        Second round: least fraction of a left-over detection inside a left-over box of `CONTAINED_MIN_SIDE` px
        or more holding its centre (see the module docstring), in [0, 1]; 0 = none.

    Returns
    -------
    Matches
        Per catalog box, the matched detection index (-1 if none), the IoU and whether the second round matched.

    Raises
    ------
    ValueError
        On malformed boxes or scores, or an ``iou_threshold`` outside (0, 1].

    Examples
    --------
    Two detections overlap the first object; the better one takes it and the other stays unmatched:

    >>> m = match_boxes([[0, 0, 10, 10], [20, 20, 30, 30]], [[1, 0, 11, 10], [0, 0, 10, 10]])
    >>> m.detection.tolist()
    [1, -1]

    The bright core of a 100 px galaxy (IoU 0.16) is matched in the second round:

    >>> m = match_boxes([[0, 0, 100, 100]], [[30, 30, 70, 70]])
    >>> m.detection.tolist(), m.contained.tolist(), match_boxes([[0, 0, 100, 100]], [[30, 30, 70, 70]],
    ...                                                          contained_fraction=0).detection.tolist()
    ([0], [True], [-1])
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    if not 0.0 <= contained_fraction <= 1.0:
        raise ValueError(f"contained_fraction must be in [0, 1], got {contained_fraction!r}")
    cat = _as_boxes(catalog_boxes, "catalog_boxes")
    det = _as_boxes(detection_boxes, "detection_boxes")
    scores = np.zeros(len(det)) if detection_scores is None else np.asarray(detection_scores, np.float64)
    if scores.shape != (len(det),) or not np.all(np.isfinite(scores)):
        raise ValueError(f"detection_scores must be {len(det)} finite values, got shape {scores.shape}")
    return match_box_arrays(cat, det, scores, iou_threshold, contained_fraction)


def match_box_arrays(cat: np.ndarray, det: np.ndarray, scores: np.ndarray, iou_threshold: float,
                     contained_fraction: float = CONTAINED_FRACTION) -> Matches:
    """`match_boxes` on arrays the caller has already checked (the estimator's inner loop).

    Parameters
    ----------
    cat : ndarray of float64 (n, 4)
        Finite catalog boxes.
    det : ndarray of float64 (m, 4)
        Finite detected boxes.
    scores : ndarray of float64 (m,)
        Finite detection scores.
    iou_threshold : float
        Minimum IoU of a match, in (0, 1].
    contained_fraction : float
        Second round (see `match_boxes`); 0 = none.

    Returns
    -------
    Matches
    """
    detection = np.full(len(cat), -1, dtype=np.int64)
    iou_out = np.full(len(cat), np.nan)
    contained = np.zeros(len(cat), dtype=bool)
    if len(cat) == 0 or len(det) == 0:
        return Matches(detection, iou_out, contained)
    iou = _box_iou(cat, det)
    tie_break = _SCORE_TIE_BREAK * np.clip(scores, 0.0, 1.0)[None, :]
    _assign(iou >= iou_threshold, iou + tie_break, detection)
    if contained_fraction > 0:
        large = np.maximum(cat[:, 2] - cat[:, 0], cat[:, 3] - cat[:, 1]) >= CONTAINED_MIN_SIDE
        free_cat, free_det = (detection < 0) & large, ~np.isin(np.arange(len(det)), detection)
        inter = _intersection(cat, det)
        area_det = np.prod(np.clip(det[:, 2:] - det[:, :2], 0, None), axis=1)
        area_cat = np.prod(np.clip(cat[:, 2:] - cat[:, :2], 0, None), axis=1)
        centre = 0.5 * (cat[:, :2] + cat[:, 2:])
        holds = ((det[None, :, 0] <= centre[:, None, 0]) & (centre[:, None, 0] < det[None, :, 2])  # x1, y1 exclusive
                 & (det[None, :, 1] <= centre[:, None, 1]) & (centre[:, None, 1] < det[None, :, 3]))
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = inter >= contained_fraction * area_det[None, :]
            covered = np.where(area_cat[:, None] > 0, inter / np.where(area_cat > 0, area_cat, 1.0)[:, None], 0.0)
        eligible = free_cat[:, None] & free_det[None, :] & holds & inside & (area_det[None, :] > 0)
        contained = _assign(eligible, covered + tie_break, detection)
    matched = detection >= 0
    iou_out[matched] = iou[np.flatnonzero(matched), detection[matched]]
    return Matches(detection, iou_out, contained)


def _assign(eligible: np.ndarray, gain: np.ndarray, detection: np.ndarray) -> np.ndarray:
    """One-to-one assignment of largest total ``gain`` among ``eligible`` pairs, written into ``detection``.

    Returns the boolean mask of the rows it assigned.
    """
    assigned = np.zeros(len(detection), dtype=bool)
    if not eligible.any():
        return assigned
    rows, cols = linear_sum_assignment(np.where(eligible, gain, 0.0), maximize=True)
    keep = eligible[rows, cols]
    detection[rows[keep]] = cols[keep]
    assigned[rows[keep]] = True
    return assigned
