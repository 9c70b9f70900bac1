"""Pixel noise from 5-sigma depths, optionally correlated as in drizzled mosaics.

The depth of a band is the AB magnitude of 5 times the sky noise in a circular aperture (``depth_aperture``
diameter). White noise of per-pixel sigma s gives an aperture noise s sqrt(A) (A in pixels). Noise smoothed
by a normalised kernel k and rescaled to keep the per-pixel sigma s gives, for the sum over a weighted mask m,
the variance s^2 sum((m * k)^2) / sum(k^2) (`correlated_sum_variance`); for large areas this tends to
s^2 A R with R = 1 / sum(k^2) the pixels per independent noise element. The per-pixel sigma is set so the
aperture noise matches the depth exactly.

Source photon noise (`photon_gain`, `draw_photon_noise`): the deep NIRCam mosaics are background limited, so
the depth's pixel sigma is, to first order, the Poisson noise of the sky background collected in the exposure.
A band whose sky surface brightness gives ``b`` nJy per pixel then has an effective gain (electrons per nJy of
the whole exposure) g = b / sigma^2, the one exposure at which the sky's own photon noise is sigma. A source
pixel of model value m (nJy) collects Poisson(g m) electrons, so its variance m / g = sigma^2 m / b: source
noise matters where a source is as bright as the sky. The sky (`sky_background_mjysr`) is an approximate JWST
background towards GOODS-S (zodiacal light plus the observatory's thermal emission, after Rigby et al. 2023),
tabulated against wavelength; any read or other non-sky noise in the real depth would make the true gain larger
and the source noise smaller, so this is the background-limited (upper) estimate of the source noise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve1d

__all__ = [
    "AB_ZEROPOINT_NJY",
    "flux_njy",
    "correlation_kernel",
    "noise_area_factor",
    "aperture_mask",
    "correlated_sum_variance",
    "pixel_sigma",
    "draw_noise",
    "sky_background_mjysr",
    "photon_gain",
    "draw_photon_noise",
]

#: AB magnitude of 1 nJy: m = -2.5 log10(f / nJy) + 31.4.
AB_ZEROPOINT_NJY = 31.4
KERNEL_HALF_WIDTH_SIGMAS = 4.0
DEPTH_SIGMA = 5.0
APERTURE_SUBPIXELS = 7
#: Approximate JWST sky background towards GOODS-S: (pivot wavelength in micron, MJy/sr); zodiacal light
#: (scattered, falling to ~3 micron; thermal, rising beyond) plus the observatory's own thermal emission.
SKY_BACKGROUND_TABLE = ((0.6, 0.09), (1.0, 0.12), (1.5, 0.13), (2.0, 0.12), (2.7, 0.10), (3.5, 0.13),
                        (4.0, 0.17), (4.5, 0.24), (5.0, 0.33))
NJY_PER_MJY = 1e15
ARCSEC_PER_RAD = 206264.80624709636


def flux_njy(mag_ab: np.ndarray) -> np.ndarray:
    """AB magnitude to flux density.

    Parameters
    ----------
    mag_ab : array_like
        AB magnitudes.

    Returns
    -------
    ndarray
        nJy, same shape.
    """
    return 10.0 ** (-0.4 * (np.asarray(mag_ab, float) - AB_ZEROPOINT_NJY))


def correlation_kernel(correlation_px: float) -> np.ndarray:
    """Return the normalised 1-D Gaussian kernel of noise correlation.

    Parameters
    ----------
    correlation_px : float
        Kernel sigma, pixels; <= 0 means white noise.

    Returns
    -------
    ndarray (K,)
        Odd-length kernel summing to 1 (``[1.0]`` for white noise).
    """
    if correlation_px <= 0:
        return np.ones(1)
    half = max(1, int(np.ceil(KERNEL_HALF_WIDTH_SIGMAS * correlation_px)))
    x = np.arange(-half, half + 1, dtype=float)
    k = np.exp(-0.5 * (x / correlation_px) ** 2)
    return k / k.sum()


def noise_area_factor(correlation_px: float) -> float:
    """Return the pixels per independent noise element, R = 1 / sum(k2d^2) (1 for white noise).

    Parameters
    ----------
    correlation_px : float
        Sigma of the separable correlation kernel, pixels.

    Returns
    -------
    float
    """
    k = correlation_kernel(correlation_px)
    return float(1.0 / np.sum(k**2) ** 2)


def aperture_mask(diameter_px: float) -> np.ndarray:
    """Circular aperture as fractional pixel weights (7x7 sub-pixel sampling), centred on a pixel centre.

    Parameters
    ----------
    diameter_px : float
        Aperture diameter, pixels.

    Returns
    -------
    ndarray, shape (S, S)
        Weights in [0, 1], S odd.
    """
    r = 0.5 * diameter_px
    half = int(np.ceil(r)) + 1
    off = (np.arange(APERTURE_SUBPIXELS) + 0.5) / APERTURE_SUBPIXELS - 0.5
    g = np.arange(-half, half + 1)
    px = g[None, :, None, None] + off[None, None, None, :]
    py = g[:, None, None, None] + off[None, None, :, None]
    return (px**2 + py**2 <= r**2).mean(axis=(-1, -2))


def correlated_sum_variance(mask: np.ndarray, correlation_px: float) -> float:
    """Variance of the mask-weighted sum of unit-sigma noise correlated by `correlation_kernel`.

    Parameters
    ----------
    mask : ndarray (H, W)
        Pixel weights (1 inside a footprint, fractions on an aperture edge).
    correlation_px : float
        Noise correlation sigma, pixels (0 = white: the variance is ``sum(mask**2)``).

    Returns
    -------
    float
        Variance in units of the per-pixel variance.
    """
    k = correlation_kernel(correlation_px)
    m = np.asarray(mask, float)
    if len(k) == 1:
        return float(np.sum(m**2))
    m = np.pad(m, len(k) // 2)
    c = convolve1d(convolve1d(m, k, axis=0, mode="constant"), k, axis=1, mode="constant")
    return float(np.sum(c**2) / np.sum(k**2) ** 2)


def pixel_sigma(
    depths, *, pixel_scale: float, aperture_diameter: float, correlation_px: float = 0.0
) -> np.ndarray:
    """Per-pixel noise sigma (nJy) that gives 5-sigma aperture depths ``depths``.

    Parameters
    ----------
    depths : sequence of float (B,)
        5-sigma AB depths.
    pixel_scale : float
        Arcsec per pixel.
    aperture_diameter : float
        Diameter of the depth aperture, arcsec.
    correlation_px : float
        Noise correlation sigma, pixels.

    Returns
    -------
    ndarray (B,)
        Per-pixel sigma, nJy.

    Examples
    --------
    >>> s = pixel_sigma([30.0], pixel_scale=0.03, aperture_diameter=0.2)
    >>> bool(abs(s[0] * np.sqrt(np.pi * (0.1 / 0.03) ** 2) * 5 / flux_njy(30.0) - 1) < 0.01)
    True
    """
    var = correlated_sum_variance(aperture_mask(aperture_diameter / pixel_scale), correlation_px)
    sigma_ap = flux_njy(np.asarray(depths, float)) / DEPTH_SIGMA
    return sigma_ap / np.sqrt(var)


def draw_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: np.ndarray, correlation_px: float = 0.0
) -> np.ndarray:
    """Gaussian noise images (B, H, W) with per-band pixel sigma ``sigma`` (B,), optionally correlated.

    The correlated case smooths white noise with the separable `correlation_kernel` (periodic edges) and
    rescales it so the per-pixel sigma stays ``sigma``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    shape : (int, int, int)
        ``(B, H, W)``.
    sigma : ndarray (B,)
        Pixel sigma per band, nJy.
    correlation_px : float
        Sigma of the correlation kernel, pixels (0 = white).

    Returns
    -------
    ndarray, shape (B, H, W)
    """
    noise = rng.standard_normal(shape)
    k = correlation_kernel(correlation_px)
    if len(k) > 1:
        noise = convolve1d(convolve1d(noise, k, axis=-1, mode="wrap"), k, axis=-2, mode="wrap")
        noise /= np.sum(k**2)
    return noise * np.asarray(sigma, float)[:, None, None]


def sky_background_mjysr(wavelength_um) -> np.ndarray:
    """Approximate JWST sky surface brightness towards GOODS-S (`SKY_BACKGROUND_TABLE`, log-interpolated).

    Parameters
    ----------
    wavelength_um : array_like
        Pivot wavelengths, micron.

    Returns
    -------
    ndarray
        MJy/sr, same shape.
    """
    lam, sky = (np.array(c) for c in zip(*SKY_BACKGROUND_TABLE))
    return np.exp(np.interp(np.asarray(wavelength_um, float), lam, np.log(sky)))


def photon_gain(sigma: np.ndarray, sky_mjysr: np.ndarray, pixel_scale: float) -> np.ndarray:
    """Effective gain (electrons per nJy) at which the sky's photon noise is the pixel sigma: g = b / sigma^2.

    Parameters
    ----------
    sigma : ndarray (B,)
        Pixel noise sigma, nJy.
    sky_mjysr : ndarray (B,)
        Sky surface brightness, MJy/sr.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    ndarray (B,)
        Electrons per nJy (a pixel of model m nJy has Poisson variance m / g nJy^2).
    """
    sky_pixel = np.asarray(sky_mjysr, float) * NJY_PER_MJY * (pixel_scale / ARCSEC_PER_RAD) ** 2
    return sky_pixel / np.asarray(sigma, float) ** 2


def draw_photon_noise(rng: np.random.Generator, model: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Source photon noise (B, H, W), nJy: Poisson electrons of the model, less their mean, over the gain.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    model : ndarray (B, H, W)
        Noiseless images, nJy (negative ringing is treated as 0).
    gain : ndarray (B,)
        Electrons per nJy (`photon_gain`).

    Returns
    -------
    ndarray (B, H, W)
        Zero-mean noise with variance ``model / gain`` per pixel.
    """
    g = np.asarray(gain, float)[:, None, None]
    electrons = np.maximum(model, 0.0) * g
    return (rng.poisson(electrons) - electrons) / g
