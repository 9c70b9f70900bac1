"""Per-band input normalisation of the network, computed from training pixels and stored with the model.

Two kinds (``NORMALISATIONS``):

``zscore`` (Merz et al. 2025)
    ``(x - center) / scale`` with ``center``, ``scale`` the per-band mean and standard deviation of the
    training pixels.
``asinh``
    ``asinh((x - center) / scale)`` with ``center`` the per-band sky median and ``scale`` the per-band sky
    noise (1.4826 x MAD of the pixels outside every segment): faint structure stays linear, bright cores are
    compressed. Departure from the paper, offered for data sets with a large dynamic range.

`band_statistics` is the pure function (arrays in, arrays out); `InputNormaliser` is the ``nn.Module`` whose
buffers hold the statistics, so they travel in every member's ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.config import NORMALISATIONS

__all__ = ["NORMALISATIONS", "BandStatistics", "band_statistics", "InputNormaliser"]

#: MAD -> Gaussian standard deviation.
MAD_TO_SIGMA = 1.4826
#: Pixels sampled per band when computing statistics (keeps memory flat for large TileSets).
MAX_PIXELS_PER_BAND = 4_000_000
_MIN_SCALE = 1e-12


@dataclass(frozen=True)
class BandStatistics:
    """Per-band statistics of training pixels (flux units of the TileSet).

    Attributes
    ----------
    mean, std : ndarray (C,)
        Mean and standard deviation of all pixels.
    sky_median, sky_sigma : ndarray (C,)
        Median and robust standard deviation (1.4826 MAD) of the sky pixels (segmap 0).
    """

    mean: np.ndarray
    std: np.ndarray
    sky_median: np.ndarray
    sky_sigma: np.ndarray

    def center_scale(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """``(center, scale)`` for a normalisation kind (see the module docstring)."""
        if kind == "zscore":
            return self.mean, self.std
        if kind == "asinh":
            return self.sky_median, self.sky_sigma
        raise ConfigError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {kind!r}")


def band_statistics(images: np.ndarray, segmaps: np.ndarray, *, seed: int = 0) -> BandStatistics:
    """Per-band pixel statistics of a stack of tiles.

    Parameters
    ----------
    images : ndarray (N, C, H, W)
        Pixel values.
    segmaps : ndarray (N, H, W)
        Segmentation maps (0 = sky).
    seed : int
        Seed of the pixel subsample used when a band has more than `MAX_PIXELS_PER_BAND` pixels.

    Returns
    -------
    BandStatistics
        Scales are floored at a tiny positive value (a constant band does not divide by zero).
    """
    n, c = images.shape[:2]
    flat = np.moveaxis(np.asarray(images), 1, 0).reshape(c, -1)
    sky = (np.asarray(segmaps) == 0).reshape(-1)
    if flat.shape[1] > MAX_PIXELS_PER_BAND:
        pick = np.sort(np.random.default_rng(seed).choice(flat.shape[1], MAX_PIXELS_PER_BAND, replace=False))
        flat, sky = flat[:, pick], sky[pick]
    flat = flat.astype(np.float64)
    mean = flat.mean(axis=1)
    std = np.maximum(flat.std(axis=1), _MIN_SCALE)
    sky_pixels = flat[:, sky] if sky.any() else flat
    sky_median = np.median(sky_pixels, axis=1)
    mad = np.median(np.abs(sky_pixels - sky_median[:, None]), axis=1)
    sky_sigma = np.maximum(MAD_TO_SIGMA * mad, _MIN_SCALE)
    sky_sigma = np.where(mad > 0, sky_sigma, std)
    return BandStatistics(mean=mean, std=std, sky_median=sky_median, sky_sigma=sky_sigma)


class InputNormaliser(nn.Module):
    """Raw pixels (B, C, H, W) -> normalised network input, with per-band ``center``/``scale`` buffers.

    Parameters
    ----------
    n_bands : int
        Number of bands C.
    kind : {"zscore", "asinh"}
        Normalisation (see the module docstring).
    """

    def __init__(self, n_bands: int, *, kind: str = "zscore") -> None:
        super().__init__()
        if kind not in NORMALISATIONS:
            raise ConfigError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {kind!r}")
        self.kind = kind
        self.register_buffer("center", torch.zeros(n_bands))
        self.register_buffer("scale", torch.ones(n_bands))

    @torch.no_grad()
    def set_statistics(self, center, scale) -> None:
        """Set the per-band ``center`` and ``scale`` (sequences of C floats, scale > 0)."""
        self.center.copy_(torch.as_tensor(np.asarray(center, dtype=np.float64), dtype=self.center.dtype))
        self.scale.copy_(torch.as_tensor(np.asarray(scale, dtype=np.float64), dtype=self.scale.dtype))

    def forward(self, images: Tensor) -> Tensor:
        """Normalise ``images`` (B, C, H, W) in flux units."""
        x = (images - self.center[None, :, None, None]) / self.scale[None, :, None, None]
        return torch.asinh(x) if self.kind == "asinh" else x

    def inverse(self, x: Tensor) -> Tensor:
        """Undo `forward`: normalised (B, C, H, W) -> pixels in flux units."""
        y = torch.sinh(x) if self.kind == "asinh" else x
        return y * self.scale[None, :, None, None] + self.center[None, :, None, None]
