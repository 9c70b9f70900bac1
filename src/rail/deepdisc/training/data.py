"""Training data from a TileSet: per-tile targets, train/validation partitions, augmented batches.

Targets of a tile (`tile_targets`): one row per object appearance with a usable box (``bbox_*`` columns
clipped to the tile, at least `MIN_BOX_PX` wide and high): the box (xyxy, tile pixels), ``object_id`` (its
mask is ``segmap == object_id``; an object absent from the segmentation map gets its box filled instead),
``redshift`` (NaN = no spec-z: trains detection only) and ``ebv``.

Augmentation (`Augmentation`): a random element of the dihedral group (90-degree rotations and flips; only
flips for non-square tiles), optional Gaussian pixel noise in units of each band's sky noise, optional
E(B-V) jitter, and optional jitter of the boxes the redshift head sees. Every random draw comes from a
generator passed in, so a batch is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.model.pixels import tile_sky
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.training.settings import Augmentation

__all__ = [
    "MemberData",
    "MIN_BOX_PX",
    "targets_to_device",
    "tile_targets",
    "partition_tiles",
    "hide_labels",
    "make_batch",
    "dim_image",
    "labelled_tiles",
    "dihedral",
    "jitter_boxes",
]

#: Boxes narrower or lower than this (pixels, after clipping to the tile) are not used as targets.
MIN_BOX_PX = 1.0
_N_DIHEDRAL = 8
_N_FLIPS = 4


@dataclass
class MemberData:
    """The arrays one member trains on.

    Attributes
    ----------
    images : ndarray (N, C, H, W)
        Raw pixels of every tile.
    segmaps : ndarray (N, H, W)
    targets : list of N dict
        From `rail.deepdisc.training.data.tile_targets` with validation labels hidden in training tiles.
    train, val : ndarray of int
        Tile indices.
    sky_sigma : ndarray (C,)
        Per-band sky noise (flux units), for the noise augmentation.
    """

    images: np.ndarray
    segmaps: np.ndarray
    targets: list
    train: np.ndarray
    val: np.ndarray
    sky_sigma: np.ndarray


def tile_targets(tileset: TileSet) -> list[dict[str, np.ndarray]]:
    """Compute the detection and redshift targets of every tile.

    Parameters
    ----------
    tileset : TileSet
        The data.

    Returns
    -------
    list of dict, one per tile
        ``boxes`` (n, 4) float32 xyxy tile pixels, ``object_id`` (n,) int64, ``redshift`` (n,) float32 (NaN =
        none), ``ebv`` (n,) float32 (non-finite values set to 0).
    """
    h, w = tileset.tile_shape
    obj = tileset.objects
    boxes = np.stack([obj["bbox_x0"], obj["bbox_y0"], obj["bbox_x1"], obj["bbox_y1"]], axis=1).astype(
        np.float64
    )
    boxes = np.clip(boxes, 0.0, [w, h, w, h])
    usable = (
        np.isfinite(boxes).all(axis=1)
        & (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_PX)
        & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_PX)
    )
    ebv = np.where(np.isfinite(obj["ebv"]), obj["ebv"], 0.0)
    out = []
    for t in range(tileset.n_tiles):
        sl = tileset.object_slice(t)
        keep = usable[sl]
        out.append(
            {
                "boxes": boxes[sl][keep].astype(np.float32),
                "object_id": np.asarray(obj["object_id"][sl][keep], dtype=np.int64),
                "redshift": np.asarray(obj["redshift"][sl][keep], dtype=np.float32),
                "ebv": ebv[sl][keep].astype(np.float32),
            }
        )
    return out


def labelled_tiles(targets: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Return the tiles holding at least one object with a spec-z (and a usable box).

    Parameters
    ----------
    targets : list of dict
        Per-tile training targets (`tile_targets`), each with a ``redshift`` array (NaN = no spec-z).

    Returns
    -------
    ndarray of int64
        Tile indices, increasing.
    """
    return np.array([k for k, t in enumerate(targets) if np.isfinite(t["redshift"]).any()], dtype=np.int64)


def partition_tiles(
    n_tiles: int, labelled: np.ndarray, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split tiles into training and validation sets (validation only from labelled tiles).

    Parameters
    ----------
    n_tiles : int
        Number of tiles.
    labelled : ndarray of int
        Indices of the tiles with spec-z (at least 2).
    val_fraction : float
        Fraction of the labelled tiles held out, in (0, 1); at least one tile is held out and one kept.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    train, val : ndarray of int
        Sorted tile indices; every unlabelled tile is in ``train``.

    Raises
    ------
    TileSetError
        With fewer than 2 labelled tiles.
    """
    if len(labelled) < 2:
        raise TileSetError(
            f"need spec-z labels in at least 2 tiles to make a train/validation split, found {len(labelled)}"
        )
    n_val = int(np.clip(round(val_fraction * len(labelled)), 1, len(labelled) - 1))
    val = np.sort(np.random.default_rng(seed).permutation(labelled)[:n_val])
    train = np.setdiff1d(np.arange(n_tiles), val)
    return train, val


def hide_labels(
    targets: list[dict[str, np.ndarray]], train: np.ndarray, val: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Copy of ``targets`` where training-tile appearances of validation objects have no spec-z.

    An object can appear in two tiles (a duplicate near a tile edge); hiding its label in the training tile
    keeps validation objects out of the redshift loss while still training detection on them.

    Parameters
    ----------
    targets : list of dict
        Per-tile training targets (`tile_targets`) with ``object_id`` and ``redshift``.
    train, val : ndarray of int
        Training and validation tile indices (`partition_tiles`).

    Returns
    -------
    list of dict
        New targets; only the changed ``redshift`` arrays are copies.
    """
    val_ids = np.unique(np.concatenate([targets[k]["object_id"] for k in val] or [np.zeros(0, np.int64)]))
    out = list(targets)
    for k in train:
        t = targets[k]
        hidden = np.isin(t["object_id"], val_ids)
        if hidden.any():
            out[k] = {**t, "redshift": np.where(hidden, np.float32(np.nan), t["redshift"])}
    return out


def make_batch(
    images: np.ndarray,
    segmaps: np.ndarray,
    targets: list[dict[str, np.ndarray]],
    indices: np.ndarray,
    *,
    augment: Augmentation | None,
    rng: np.random.Generator | None,
    sky_sigma: np.ndarray | None = None,
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Assemble (and optionally augment) a batch of tiles for `DeepDiscRCNN.forward`.

    Parameters
    ----------
    images : ndarray (N, C, H, W)
        Raw pixels of all tiles.
    segmaps : ndarray (N, H, W)
        Segmentation maps.
    targets : list of dict
        From `tile_targets` (possibly through `hide_labels`).
    indices : ndarray of int (B,)
        Tiles of the batch.
    augment : Augmentation or None
        Random transformations (None = none).
    rng : numpy Generator or None
        Source of the random draws (required with ``augment``).
    sky_sigma : ndarray (C,), optional
        Per-band sky noise (flux units), required when ``augment.noise_sigma > 0`` or ``augment.dim_mag > 0``.

    Returns
    -------
    images : Tensor (B, C, H, W) float32
    targets : list of B dict
        ``boxes``, ``labels``, ``masks`` (n, H, W) uint8, ``redshift``, ``ebv`` (see `DeepDiscRCNN.forward`),
        and ``redshift_boxes`` (n, 4) when ``augment.box_jitter > 0``.
    """
    batch_images, batch_targets = [], []
    for k in indices:
        image, masks, boxes, ebv = _tile_arrays(images[k], segmaps[k], targets[k])
        if augment is not None:
            image, masks, boxes, ebv = _augment(image, masks, boxes, ebv, augment, rng, sky_sigma)
        batch_images.append(np.ascontiguousarray(image, dtype=np.float32))
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
            "labels": torch.ones(len(boxes), dtype=torch.int64),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "redshift": torch.from_numpy(targets[k]["redshift"].copy()),
            "ebv": torch.from_numpy(ebv.astype(np.float32)),
        }
        if augment is not None and augment.box_jitter > 0:
            jittered = jitter_boxes(boxes, augment.box_jitter, rng, image.shape[-2:])
            target["redshift_boxes"] = torch.from_numpy(jittered.astype(np.float32))
        batch_targets.append(target)
    return torch.from_numpy(np.stack(batch_images)), batch_targets


def _tile_arrays(image, segmap, target):
    boxes = target["boxes"]
    masks = (segmap[None, :, :] == target["object_id"][:, None, None]).astype(np.uint8)
    for j in np.flatnonzero(~masks.any(axis=(1, 2))):
        x0, y0, x1, y1 = boxes[j]
        masks[j, int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = 1
    return image, masks, boxes.copy(), target["ebv"]


def _augment(image, masks, boxes, ebv, augment: Augmentation, rng: np.random.Generator, sky_sigma):
    if augment.dihedral:
        h, w = image.shape[-2:]
        element = int(rng.integers(_N_DIHEDRAL if h == w else _N_FLIPS))
        image, masks, boxes = dihedral(image, masks, boxes, element)
    if augment.dim_mag > 0:
        image = dim_image(image, float(rng.uniform(0.0, augment.dim_mag)), sky_sigma, rng)
    if augment.noise_sigma > 0:
        scale = augment.noise_sigma * np.asarray(sky_sigma, dtype=np.float32)[:, None, None]
        image = image + (rng.standard_normal(image.shape, dtype=np.float32) * scale)
    if augment.ebv_sigma > 0:
        ebv = np.maximum(ebv + augment.ebv_sigma * rng.standard_normal(len(ebv)), 0.0)
    return image, masks, boxes, ebv


def dim_image(image: np.ndarray, dm: float, sky_sigma, rng: np.random.Generator) -> np.ndarray:
    """Make every source of a tile ``dm`` magnitudes fainter at the same noise level.

    Parameters
    ----------
    image : ndarray (C, H, W)
        Raw pixels.
    dm : float
        Dimming, magnitudes (>= 0).
    sky_sigma : array_like (C,)
        Per-band sky noise of the data set (flux units).
    rng : numpy.random.Generator
        Source of the added noise.

    Returns
    -------
    ndarray (C, H, W) float32
        ``median + s (image - median) + sqrt(1 - s^2) sky_sigma N(0, 1)`` per band, ``s = 10**(-0.4 dm)`` and
        ``median`` the band's sky level over the tile (`rail.deepdisc.model.pixels.tile_sky`, the estimate the
        redshift head's colours use): the sky noise, scaled down by ``s``, is
        topped up to its old level, so only the sources' signal-to-noise falls.
    """
    if dm <= 0:
        return image
    s = np.float32(10.0 ** (-0.4 * dm))
    sigma = np.asarray(sky_sigma, dtype=np.float32)[:, None, None]
    sky = tile_sky(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None])[0].numpy()[:, None, None]
    top_up = np.float32(np.sqrt(1.0 - s * s)) * sigma
    return sky + s * (image - sky) + top_up * rng.standard_normal(image.shape, dtype=np.float32)


def jitter_boxes(
    boxes: np.ndarray, fraction: float, rng: np.random.Generator, shape: tuple[int, int]
) -> np.ndarray:
    """Randomly shift and rescale boxes (xyxy pixels), keeping them inside a tile of ``shape`` (H, W).

    Centres move by Normal(0, ``fraction`` x size) along each axis and sizes are multiplied by
    exp(Normal(0, ``fraction``)); results are clipped to the tile and kept at least `MIN_BOX_PX` wide.

    Parameters
    ----------
    boxes : ndarray, shape (n, 4)
        ``x0, y0, x1, y1`` in pixels.
    fraction : float
        Jitter scale, as a fraction of the box size (0 = none).
    rng : numpy.random.Generator
        Random numbers (seeded by the caller).
    shape : (int, int)
        Tile height and width, pixels.

    Returns
    -------
    ndarray, shape (n, 4)
        The jittered boxes.
    """
    h, w = shape
    size = boxes[:, 2:] - boxes[:, :2]
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:]) + fraction * size * rng.standard_normal(size.shape)
    half = 0.5 * np.maximum(size * np.exp(fraction * rng.standard_normal(size.shape)), MIN_BOX_PX)
    lo = np.clip(centre - half, 0.0, [w - MIN_BOX_PX, h - MIN_BOX_PX])
    hi = np.clip(np.maximum(centre + half, lo + MIN_BOX_PX), 0.0, [w, h])
    return np.concatenate([lo, hi], axis=1)


def dihedral(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, element: int):
    """Apply dihedral-group element ``element`` (0-7) to a tile, its masks and boxes.

    Bit 0 flips x, bit 1 flips y, bit 2 transposes (x <-> y, square tiles only) after the flips; 0 is the
    identity.

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
        The tile.
    masks : ndarray, shape (n, H, W)
        Object masks.
    boxes : ndarray, shape (n, 4)
        ``x0, y0, x1, y1`` in pixels.
    element : int
        Group element, 0 to 7.

    Returns
    -------
    image, masks, boxes : ndarray
        The transformed arrays, with the shapes given (H and W swapped by a transpose).
    """
    h, w = image.shape[-2:]
    boxes = boxes.copy()
    if element & 1:
        image, masks = image[..., ::-1], masks[..., ::-1]
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    if element & 2:
        image, masks = image[..., ::-1, :], masks[..., ::-1, :]
        boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
    if element & 4:
        image, masks = np.swapaxes(image, -1, -2), np.swapaxes(masks, -1, -2)
        boxes = boxes[:, [1, 0, 3, 2]]
    return image, masks, boxes


def targets_to_device(targets: list[dict], device: torch.device) -> list[dict]:
    """The same per-tile target dicts with every tensor moved to ``device``."""
    return [{k: v.to(device) for k, v in t.items()} for t in targets]
