"""Per-object pooled features of a trained DeepDISC network: the redshift head's inputs, one row per object.

For every primary object of a TileSet, the network's redshift head sees its box's RoI-aligned FPN features
(``fpn_channels x 7 x 7``) and, by default, brightness-free colour and shape features of its pixels
(`rail.deepdisc.model.pixels.pixel_features`). `object_features` returns both blocks for the boxes the
estimator would use: the object's catalog box (``boxes="catalog"``, as ``forced_all``) or, where a detection
matches it (IoU >= ``iou_threshold``, `rail.deepdisc.inference.match.match_boxes`), the detected box
(``boxes="matched"``, as ``deepdisc estimate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.constants import IOU_THRESHOLD
from rail.deepdisc.exceptions import ConfigError

__all__ = ["BOX_MODES", "ObjectFeatures", "object_features"]

#: Which box of each object the features are pooled in.
BOX_MODES = ("matched", "catalog")


@dataclass
class ObjectFeatures:
    """Features of N primary objects.

    Attributes
    ----------
    object_id : ndarray (N,) int64
    roi : ndarray (N, F) float32
        RoI-aligned FPN features of the box (the backbone's representation).
    pixel : ndarray (N, P) float32
        The head's pixel (colour and shape) features; P = 0 when the network has none.
    detected : ndarray (N,) bool
        Whether a detection was matched (always False with catalog boxes).
    redshift : ndarray (N,)
        True redshift (``redshift_true``) where the TileSet has it, else the spec-z (NaN = unknown).
    magnitude : ndarray (N,)
        ``mag_<band>`` of ``mag_band`` (NaN = unknown).
    head_log_density : ndarray (N,)
        Log density of the network's own redshift mixture (this member's head, with its own width factor but
        not the ensemble's) at ``redshift`` (NaN where it is unknown): the trained head as q(z | features),
        for `rail.deepdisc.analysis.information.model_information_bound`.
    """

    object_id: np.ndarray
    roi: np.ndarray
    pixel: np.ndarray
    detected: np.ndarray
    redshift: np.ndarray
    magnitude: np.ndarray
    head_log_density: np.ndarray


def object_features(model, tileset, *, boxes: str = "matched", mag_band: str | None = None, batch_size: int = 8,
                    iou_threshold: float = IOU_THRESHOLD) -> ObjectFeatures:
    """The redshift head's inputs for every primary object of ``tileset``.

    Parameters
    ----------
    model : DeepDiscRCNN
        In eval mode (`rail.deepdisc.model.network.model_from_artifact`).
    tileset : TileSet
        Tiles of the model's bands.
    boxes : {"matched", "catalog"}
        Detected box where one matches the object, else the catalog box; or always the catalog box.
    mag_band : str, optional
        Band of the magnitude column (default: the last band).
    batch_size : int
        Tiles per forward pass.
    iou_threshold : float
        Minimum IoU of a matched detection.

    Returns
    -------
    ObjectFeatures
        Rows in the order of ``tileset.primary_objects()``.
    """
    import torch

    from rail.deepdisc.inference.chunk import forced_boxes
    from rail.deepdisc.inference.match import match_boxes
    from rail.deepdisc.inference.predictor import InferenceSettings
    from rail.deepdisc.model.redshift_head import mixture_log_prob

    if boxes not in BOX_MODES:
        raise ConfigError(f"boxes must be one of {', '.join(BOX_MODES)}, got {boxes!r}")
    band = mag_band or tileset.bands[-1]
    if band not in tileset.bands:
        raise ConfigError(f"mag_band {band!r} is not a band of the tiles ({' '.join(tileset.bands)})")
    obj = tileset.objects
    primary = np.flatnonzero(obj["primary"].astype(bool))
    catalog = np.stack([obj[f"bbox_{c}"][primary] for c in ("x0", "y0", "x1", "y1")], axis=1).astype(np.float64)
    catalog = forced_boxes(catalog)  # the estimator's widening of catalog boxes
    score_threshold = InferenceSettings().score_threshold  # the estimator's detection threshold
    tile_of = obj["tile"][primary]
    n_roi = model.redshift_pool.output_size[0] * model.redshift_pool.output_size[1] * model.backbone.out_channels
    truth = np.asarray((obj["redshift_true"] if "redshift_true" in obj else obj["redshift"])[primary], np.float64)
    rows, detected, feats, log_q = [], np.zeros(len(primary), bool), [], []
    with torch.inference_mode():
        for a in range(0, tileset.n_tiles, int(batch_size)):
            b = min(a + int(batch_size), tileset.n_tiles)
            enc = model.encode(torch.from_numpy(np.ascontiguousarray(tileset.images[a:b], dtype=np.float32)))
            dets = model.detect(enc) if boxes == "matched" else [None] * (b - a)
            tile_boxes, targets, first = [], [], len(rows)
            for t, det in zip(range(a, b), dets):
                idx = np.flatnonzero(tile_of == t)
                box = catalog[idx].copy()
                if det is not None and len(idx):
                    keep = det["scores"].numpy() >= score_threshold
                    det_boxes = det["boxes"].numpy().astype(np.float64)[keep]
                    m = match_boxes(catalog[idx], det_boxes, det["scores"].numpy()[keep], iou_threshold=iou_threshold)
                    hit = m.detection >= 0
                    box[hit] = det_boxes[m.detection[hit]]
                    detected[idx[hit]] = True
                rows.append(idx)
                tile_boxes.append(torch.from_numpy(box.astype(np.float32)))
                targets.append({"boxes": tile_boxes[-1], "redshift": torch.zeros(len(idx)),
                                "ebv": torch.from_numpy(np.nan_to_num(obj["ebv"][primary][idx]).astype(np.float32))})
            inputs = model.redshift_inputs(enc, targets)
            feats.append(inputs.features.numpy())
            z = torch.from_numpy(np.nan_to_num(truth[np.concatenate(rows[first:])]))  # this batch's objects, in order
            log_q.append(mixture_log_prob(model.redshift_head(inputs.features, inputs.extra),
                                          z.to(inputs.features.dtype)).double().numpy())
    order = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    all_feats = np.concatenate(feats)[inverse].astype(np.float32)
    head_log_density = np.where(np.isfinite(truth), np.concatenate(log_q)[inverse], np.nan)
    return ObjectFeatures(
        object_id=np.asarray(obj["object_id"][primary], np.int64), roi=all_feats[:, :n_roi],
        pixel=all_feats[:, n_roi:], detected=detected, redshift=truth,
        magnitude=np.asarray(obj[f"mag_{band}"][primary], np.float64), head_log_density=head_log_density,
    )

