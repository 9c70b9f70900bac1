"""The redshift head's direct pixel path: brightness-free colours and patches of each box (`pixel_features`).

Departure from Merz et al. (2025): by default the head also sees two brightness-free summaries of the box's
input pixels (``NetworkConfig.pixel_pool_size=0`` gives the paper's head). The pixels, in flux units, are
RoI-aligned to ``s x s`` per band; from them come (1) colours: ``asinh(f_b / soft) - mean_b(...)`` of the
per-band box-mean fluxes ``f_b``, softened at `COLOUR_SOFTENING` times the object's brightest band (log-flux
differences for detected bands, bounded for noise-dominated ones), and (2) the ``s x s`` patch of every band
divided by the object's total absolute flux (SED shape and profile, not brightness). These are a direct path
for the colours that carry most of the redshift information: with a few hundred labels the MLP learns photo-z
from them in a few hundred steps, where it cannot separate them from the backbone's features in z-scored pixels
(a bright object's pixels are thousands of sky sigmas, a faint one's ~0). They depend only on flux ratios
between bands, so they do not depend on the zero point or the pixel statistics of the training set, provided
the flux is measured from the sky level.

What the flux is measured from (``NetworkConfig.pixel_zero``, `head_pixel_features`):

- ``"tile_sky"`` (default): each tile's sky level per band (`tile_sky`: the median after 3-sigma clipping,
  within 0.12 sky sigma of the true sky in 95% of the JADES9 benchmark's tiles, the plain median within 0.24),
  and every pixel of the box averaged
  (adaptive ``roi_align`` sampling);
- ``"mean"`` (model files written before the option): the normaliser's centre, which for the default ``zscore``
  normalisation is the mean of all training pixels, sources included (0.5-1 sky sigma above the sky on the
  JADES9 benchmark), and 2 x 2 bilinear samples per patch cell (8 x 8 per box whatever its size). Subtracting
  a per-pixel flux that large from a box mean biased and scattered the colours: against the true colours of
  the benchmark's galaxies, F150W-F444W scattered by 0.21 / 0.35 mag (calibration / test field) at F444W < 26
  and 0.68 / 1.55 mag at 26-28, against 0.05 / 0.06 and 0.11 / 0.18 mag measured from the tile's sky over every
  pixel (the catalog's: 0.02 / 0.03 and 0.08 / 0.14 mag). The same head trained on the 280 benchmark spec-z
  with these colours alone reached sigma_IQR / eta 0.066 / 0.158 at F444W < 27 on the test field instead of
  0.107 / 0.270 (``benchmarks/bench_head_inputs.py``, ``benchmarks/README.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_align

from rail.deepdisc.model.config import PIXEL_ZEROS

__all__ = ["COLOUR_SOFTENING", "PIXEL_ZEROS", "LEGACY_SAMPLING", "pixel_features", "tile_sky", "head_pixel_features"]

#: Colour softening flux, as a fraction of the object's largest absolute band flux (see `pixel_features`).
COLOUR_SOFTENING = 0.05
#: Bilinear samples per patch cell and axis of the ``"mean"`` pixel path (models written before ``pixel_zero``).
LEGACY_SAMPLING = 2
#: Clipping of `tile_sky`: pixels further than this many robust sigmas from the median are left out.
SKY_CLIP = 3.0
SKY_ITERATIONS = 3
_MAD_TO_SIGMA = 1.4826
_TINY_FLUX = 1e-12


def pixel_features(
    flux: Tensor, boxes: list[Tensor], *, pool_size: int, sampling_ratio: int = LEGACY_SAMPLING
) -> Tensor:
    """Brightness-free colour and shape features of boxes (see the module docstring).

    Parameters
    ----------
    flux : Tensor (B, C, H, W)
        Pixels in flux units, sky (or any per-band constant close to it) subtracted.
    boxes : list of B Tensor (n_i, 4)
        Float xyxy tile pixels.
    pool_size : int
        Side ``s`` of the RoI-aligned patch.
    sampling_ratio : int
        Bilinear samples per patch cell and axis (``roi_align``); 0 = adaptive (every pixel of the box).

    Returns
    -------
    Tensor (sum n_i, C + C * s * s)
        Per box: C softened log-flux colours (mean zero over bands), then the C x s x s patch divided by
        its total absolute flux (times ``C * s * s``, so values are of order one).
    """
    patch = roi_align(
        flux, boxes, output_size=pool_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True
    )
    mean_flux = patch.mean(dim=(2, 3))
    soft = (COLOUR_SOFTENING * mean_flux.abs().amax(dim=1, keepdim=True)).clamp_min(_TINY_FLUX)
    log_flux = torch.asinh(mean_flux / soft)
    colours = log_flux - log_flux.mean(dim=1, keepdim=True)
    flat = patch.flatten(start_dim=1)
    shape = flat / flat.abs().sum(dim=1, keepdim=True).clamp_min(_TINY_FLUX) * flat.shape[1]
    return torch.cat([colours, shape], dim=1)


@torch.no_grad()
def tile_sky(flux: Tensor, *, clip: float = SKY_CLIP, iterations: int = SKY_ITERATIONS) -> Tensor:
    """Sky level of every tile and band: the median of the pixels within ``clip`` robust sigmas, iterated.

    Parameters
    ----------
    flux : Tensor (B, C, H, W)
        Pixels in flux units.

    Returns
    -------
    Tensor (B, C)

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> sky = 2.0 + torch.randn(1, 1, 64, 64, generator=g)
    >>> sky[..., :16, :16] += 50.0  # a bright source on 6% of the tile
    >>> round(float(tile_sky(sky)), 1)
    2.0
    """
    x = flux.flatten(start_dim=2).float()
    for _ in range(iterations):
        median = torch.nanmedian(x, dim=2, keepdim=True).values
        sigma = _MAD_TO_SIGMA * torch.nanmedian((x - median).abs(), dim=2, keepdim=True).values
        x = torch.where((x - median).abs() <= clip * sigma, x, torch.full_like(x, float("nan")))
    return torch.nanmedian(x, dim=2).values.to(flux.dtype)


def head_pixel_features(raw: Tensor, center: Tensor, boxes: list[Tensor], *, pool_size: int, zero: str) -> Tensor:
    """The pixel features the redshift head reads, measured from the sky (``"tile_sky"``) or ``center`` (``"mean"``).

    Parameters
    ----------
    raw : Tensor (B, C, H, W)
        Pixels in flux units (the normaliser's inverse of the network input).
    center : Tensor (C,)
        The normaliser's per-band centre.
    boxes : list of B Tensor (n_i, 4)
    pool_size : int
    zero : {"tile_sky", "mean"}
        See the module docstring.
    """
    if zero == "mean":
        return pixel_features(raw - center[None, :, None, None], boxes, pool_size=pool_size)
    if zero != "tile_sky":
        raise ValueError(f"pixel zero must be one of {', '.join(PIXEL_ZEROS)}, got {zero!r}")
    flux = raw - tile_sky(raw)[:, :, None, None]
    return pixel_features(flux, boxes, pool_size=pool_size, sampling_ratio=0)
