"""NIRCam point-spread functions: an obscured Airy pattern of the 6.5 m aperture, broadened by jitter.

Per band, the PSF is galsim's Airy for the band's pivot wavelength with a central obscuration, convolved with
a Gaussian for pointing jitter and charge diffusion, and dilated by ``psf_fwhm_scale``. Its FWHM rises from
0.035" (F090W) to 0.145" (F444W). Rendering uses its Fourier transform times the pixel response on the
sub-pixel k-grid of each object's stamp; those transfer functions are cached per stamp size.
"""

from __future__ import annotations

from functools import lru_cache

import galsim
import numpy as np

from rail.deepdisc.filters import pivot_wavelength

__all__ = ["psf_profile", "psf_fwhm", "PsfTransfer"]

FWHM_IMAGE_SCALE_FRACTION = 0.05  # sampling of the image used to measure the intended FWHM, in FWHMs
FWHM_IMAGE_SIZE = 128
AIRY_FWHM_LAMBDA_OVER_D = 1.03  # FWHM of an unobscured Airy pattern, in lambda / D
ARCSEC_PER_RAD = 206264.80624709636
ANGSTROM_PER_NM = 10.0


def psf_profile(band: str, settings) -> galsim.GSObject:
    """Return the continuous PSF of a band (galsim object, arcsec units, unit flux; no pixel response)."""
    return _airy_psf(band, *_psf_parameters(settings))


def _psf_parameters(settings) -> tuple[float, float, float, float]:
    return (
        settings.telescope_diameter_m,
        settings.psf_obscuration,
        settings.psf_jitter_arcsec,
        settings.psf_fwhm_scale,
    )


def _airy_psf(band: str, diameter_m: float, obscuration: float, jitter_arcsec: float, scale: float):
    airy = galsim.Airy(
        lam=pivot_wavelength(band) / ANGSTROM_PER_NM,
        diam=diameter_m,
        obscuration=obscuration,
        scale_unit=galsim.arcsec,
    )
    if jitter_arcsec > 0:
        airy = galsim.Convolve(airy, galsim.Gaussian(sigma=jitter_arcsec))
    return airy.dilate(scale)


@lru_cache(maxsize=256)
def _fwhm(band: str, diameter_m: float, obscuration: float, jitter_arcsec: float, scale: float) -> float:
    prof = _airy_psf(band, diameter_m, obscuration, jitter_arcsec, scale)
    rough = AIRY_FWHM_LAMBDA_OVER_D * pivot_wavelength(band) * 1e-10 / diameter_m * ARCSEC_PER_RAD * scale
    img = prof.drawImage(
        nx=FWHM_IMAGE_SIZE, ny=FWHM_IMAGE_SIZE, scale=rough * FWHM_IMAGE_SCALE_FRACTION, method="no_pixel"
    )
    return float(img.calculateFWHM())


def psf_fwhm(band: str, settings) -> float:
    """Return the intended FWHM of a band's PSF (no pixel), arcsec, measured on a finely sampled image."""
    return _fwhm(band, *_psf_parameters(settings))


class PsfTransfer:
    """Optical transfer functions (PSF x pixel) of every band, on the k-grids of square stamps.

    Parameters
    ----------
    settings : SimulationSettings
        Bands, PSF parameters, pixel scale and oversampling.
    extra_profiles : dict of str -> galsim.GSObject, optional
        Further named PSFs (e.g. the detection-stack PSF) tabulated alongside the bands.
    """

    def __init__(self, settings, extra_profiles: dict | None = None):
        self.pixel_scale = settings.pixel_scale
        self.oversampling = settings.oversampling
        pixel = galsim.Pixel(settings.pixel_scale)
        profiles = {b: psf_profile(b, settings) for b in settings.bands}
        profiles.update(extra_profiles or {})
        self.names = tuple(profiles)
        self._profiles = [galsim.Convolve(p, pixel) for p in profiles.values()]
        self._cache: dict[int, np.ndarray] = {}

    def k_step(self, stamp_pixels: int) -> float:
        """k-grid step (radians per arcsec) of a stamp of ``stamp_pixels`` native pixels."""
        return 2.0 * np.pi / (stamp_pixels * self.pixel_scale)

    def transfer(self, stamp_pixels: int) -> np.ndarray:
        """Return the transfer functions, complex (P, N, N), N = stamp_pixels x oversampling, k = 0 first."""
        got = self._cache.get(stamp_pixels)
        if got is None:
            n = stamp_pixels * self.oversampling
            dk = self.k_step(stamp_pixels)
            got = np.stack(
                [np.fft.ifftshift(p.drawKImage(nx=n, ny=n, scale=dk).array) for p in self._profiles]
            )
            self._cache[stamp_pixels] = got
        return got
