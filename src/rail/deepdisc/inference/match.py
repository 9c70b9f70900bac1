"""Matching detections to catalog boxes: intersection over union and an optimal one-to-one assignment.

Each catalog object of a tile can be claimed by at most one detection and each detection by at most one
object. Among the detection-object pairs with IoU >= ``iou_threshold`` we take the assignment of largest
total IoU (``scipy.optimize.linear_sum_assignment``), not a greedy pass, so two detections never share an
object and a detection is never "used up" by a weaker overlap. On exact IoU ties the detection of higher score
wins. Unmatched detections (no catalog counterpart) are dropped; unmatched objects get forced redshifts
downstream. Boxes are ``(x0, y0, x1, y1)`` in tile pixels with ``x1``/``y1`` exclusive, as in the TileSet and
torchvision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from rail.deepdisc.constants import IOU_THRESHOLD

__all__ = ["DEFAULT_IOU_THRESHOLD", "Matches", "box_iou", "match_boxes", "match_box_arrays"]

#: Minimum IoU for a detection to count as an object's counterpart (the estimator's default).
DEFAULT_IOU_THRESHOLD = IOU_THRESHOLD
#: Weight of the detection score in the assignment objective: breaks exact IoU ties only (scores lie in
#: [0, 1], so the term stays far below any meaningful IoU difference).
_SCORE_TIE_BREAK = 1e-9


class Matches(NamedTuple):
    """Result of `match_boxes` for one tile.

    ``detection`` (n_objects,) int: index of the matched detection per catalog box, -1 if none;
    ``iou`` (n_objects,) float: IoU of that match, NaN if none.
    """

    detection: np.ndarray
    iou: np.ndarray

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


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(catalog_boxes, detection_boxes, detection_scores=None, *,
                iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> Matches:
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

    Returns
    -------
    Matches
        Per catalog box, the matched detection index (-1 if none) and the IoU.

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
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    cat = _as_boxes(catalog_boxes, "catalog_boxes")
    det = _as_boxes(detection_boxes, "detection_boxes")
    scores = np.zeros(len(det)) if detection_scores is None else np.asarray(detection_scores, np.float64)
    if scores.shape != (len(det),) or not np.all(np.isfinite(scores)):
        raise ValueError(f"detection_scores must be {len(det)} finite values, got shape {scores.shape}")
    return match_box_arrays(cat, det, scores, iou_threshold)


def match_box_arrays(cat: np.ndarray, det: np.ndarray, scores: np.ndarray, iou_threshold: float) -> Matches:
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

    Returns
    -------
    Matches
    """
    detection = np.full(len(cat), -1, dtype=np.int64)
    iou_out = np.full(len(cat), np.nan)
    if len(cat) == 0 or len(det) == 0:
        return Matches(detection, iou_out)
    iou = _box_iou(cat, det)
    eligible = iou >= iou_threshold
    if not eligible.any():
        return Matches(detection, iou_out)
    gain = np.where(eligible, iou + _SCORE_TIE_BREAK * np.clip(scores, 0.0, 1.0)[None, :], 0.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    keep = eligible[rows, cols]
    detection[rows[keep]] = cols[keep]
    iou_out[rows[keep]] = iou[rows[keep], cols[keep]]
    return Matches(detection, iou_out)
