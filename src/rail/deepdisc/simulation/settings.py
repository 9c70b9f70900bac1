"""Settings of the JWST/NIRCam deep-field simulator, validated once at construction.

Every physical choice that a pretraining run may want to randomise (PSF width, depth, noise correlation, SED
mix, galaxy sizes, dust) is a field here, so data sets with other nuisance parameters are one
`dataclasses.replace` away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rail.deepdisc.constants import ZMAX
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.presets import resolve_bands

__all__ = ["SimulationSettings", "DEFAULT_DEPTHS", "GOODS_S_CENTRE"]

#: 5-sigma point-source depths (AB, 0.2" diameter aperture) of the JADES GOODS-S deep area (approximate).
DEFAULT_DEPTHS: dict[str, float] = {
    "F070W": 29.2,
    "F090W": 29.7,
    "F115W": 29.9,
    "F140M": 29.2,
    "F150W": 29.9,
    "F162M": 29.2,
    "F182M": 29.4,
    "F200W": 30.0,
    "F210M": 29.3,
    "F250M": 29.2,
    "F277W": 30.3,
    "F300M": 29.5,
    "F335M": 29.7,
    "F356W": 30.3,
    "F360M": 29.5,
    "F410M": 29.8,
    "F430M": 29.1,
    "F444W": 30.0,
    "F460M": 28.9,
    "F480M": 29.0,
}
#: Sky position of the simulated field (deg): the GOODS-S / HUDF area observed by JADES.
GOODS_S_CENTRE = (53.1, -27.8)
_JADES_DETECTION = ("F277W", "F356W", "F444W")


def _positive(name: str, value, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"SimulationSettings: {name} must be a finite number {bound}, got {value!r}")


def _fraction(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(f"SimulationSettings: {name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class SimulationSettings:
    """Everything that defines a simulated JWST/NIRCam deep field (frozen, validated).

    Parameters
    ----------
    n_tiles : int
        Tiles written by `simulate_tileset` (the mosaic field holds about as many tile areas).
    tile_size : int
        Tile side, pixels.
    bands : str or tuple of str
        Preset name (``"JADES9"``) or band list; stored resolved, as a tuple.
    pixel_scale : float
        Arcsec per pixel.
    seed : int
        Random seed; the same settings give identical outputs.
    depth : float, mapping or None
        5-sigma AB depth in a ``depth_aperture_arcsec`` diameter aperture: one value for every band, a
        ``{band: depth}`` mapping (missing bands take the default; stored as sorted ``(band, depth)`` pairs),
        a sequence aligned with ``bands``, or None (JADES deep defaults). See `depths`.
    depth_offset : float
        Magnitudes added to every band's depth (a nuisance knob: > 0 is deeper).
    depth_aperture_arcsec : float
        Diameter of the aperture the depths refer to, arcsec.
    density : float
        Galaxies per arcsec^2 brighter than ``mag_limit`` in F444W (drawn, detected or not).
    mag_limit : float
        Faintest F444W AB magnitude drawn.
    z_max : float
        Highest galaxy redshift.
    nz_shape, nz_scale : float
        Gamma-distribution shape and scale of the drawn N(z) (defaults: median 2.9; the catalogued
        objects have a median near 2.6 and about 6% above z = 6).
    star_fraction : float
        Fraction of drawn objects that are stars or brown dwarfs (z = 0).
    brown_dwarf_fraction : float
        Fraction of the stars that are brown dwarfs.
    passive_fraction : float
        Fraction of passive (elliptical/S0) galaxies at z = 0; it declines with z and vanishes above
        ``passive_z_max``.
    passive_z_max : float
        No passive galaxies above this redshift.
    starburst_weight : float
        Multiplies the share of starburst templates among star-forming galaxies (SED-mix nuisance).
    emission_line_scale : float
        Multiplies every galaxy's H-alpha equivalent width (0 = no nebular lines; SED nuisance knob).
    ebv_internal_mean : float
        Mean internal E(B-V) of star-forming galaxies at z = 0 (Calzetti law), mag; exponential draw.
    ebv_internal_max : float
        Largest internal E(B-V), mag.
    ebv_mw_mean, ebv_mw_variation : float
        Milky-Way E(B-V) of the smooth field: mean (mag) and relative amplitude of its variation.
    dustmap_dir : str or None
        Directory holding the SFD maps for `dustmaps`; when given, Milky-Way E(B-V) comes from them.
    psf_fwhm_scale : float
        Multiplies the PSF width of every band (nuisance knob).
    psf_jitter_arcsec : float
        Gaussian sigma of pointing jitter and detector diffusion convolved with the Airy PSF, arcsec.
    psf_obscuration : float
        Linear central obscuration of the Airy pupil.
    telescope_diameter_m : float
        Aperture diameter, m.
    size_scale : float
        Multiplies every galaxy half-light radius (nuisance knob).
    noise_correlation_px : float
        Gaussian sigma (pixels) of the kernel that correlates the pixel noise, as drizzling does; 0 = white.
    detection_bands : tuple of str
        Bands stacked for detection and segmentation (those present; all bands if none is).
    detection_snr : float
        Minimum isophotal signal-to-noise in the detection stack for an object to enter the catalog.
    segmentation_threshold : float
        Noiseless detection-stack level, in units of its pixel noise, above which pixels belong to an object.
    min_pixels : int
        Minimum footprint size of a catalogued object, pixels.
    label_fraction : float
        Expected fraction of catalogued galaxies with a spectroscopic redshift.
    label_bias_mag : float
        Brightness bias of the spectroscopic selection: the selection odds fall by e per this many
        magnitudes (F444W); ``inf`` = unbiased.
    wrong_label_fraction : float
        Fraction of spectroscopic labels that are wrong (line confusion or failures).
    oversampling : int
        Sub-pixels per pixel side used when rendering (resolves the undersampled short-wavelength PSFs).
    field_size : int or None
        Side of the mosaic written by `simulate_mosaics`, pixels (None: the area of ``n_tiles`` tiles).
    """

    n_tiles: int = 36
    tile_size: int = 128
    bands: str | tuple[str, ...] = "JADES9"
    pixel_scale: float = 0.03
    seed: int = 42
    depth: float | Mapping[str, float] | tuple[float, ...] | None = None
    depth_offset: float = 0.0
    depth_aperture_arcsec: float = 0.2
    density: float = 0.8
    mag_limit: float = 30.8
    z_max: float = ZMAX
    nz_shape: float = 3.0
    nz_scale: float = 1.1
    star_fraction: float = 0.03
    brown_dwarf_fraction: float = 0.3
    passive_fraction: float = 0.25
    passive_z_max: float = 5.0
    starburst_weight: float = 1.0
    emission_line_scale: float = 1.0
    ebv_internal_mean: float = 0.15
    ebv_internal_max: float = 1.0
    ebv_mw_mean: float = 0.008
    ebv_mw_variation: float = 0.2
    dustmap_dir: str | None = None
    psf_fwhm_scale: float = 1.0
    psf_jitter_arcsec: float = 0.006
    psf_obscuration: float = 0.11
    telescope_diameter_m: float = 6.5
    size_scale: float = 1.0
    noise_correlation_px: float = 0.0
    detection_bands: tuple[str, ...] = _JADES_DETECTION
    detection_snr: float = 5.0
    segmentation_threshold: float = 2.0
    min_pixels: int = 5
    label_fraction: float = 0.1
    label_bias_mag: float = 1.5
    wrong_label_fraction: float = 0.01
    oversampling: int = 2
    field_size: int | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "bands", resolve_bands(self.bands))
        for name in ("n_tiles", "tile_size", "min_pixels", "oversampling"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SimulationSettings: {name} must be a positive integer, got {value!r}")
        if self.tile_size < 16:
            raise ConfigError(f"SimulationSettings: tile_size must be >= 16 pixels, got {self.tile_size}")
        if self.field_size is not None and (not isinstance(self.field_size, int) or self.field_size < 16):
            raise ConfigError(
                f"SimulationSettings: field_size must be None or >= 16 pixels, got {self.field_size!r}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"SimulationSettings: seed must be a non-negative integer, got {self.seed!r}")
        for name in (
            "pixel_scale",
            "depth_aperture_arcsec",
            "density",
            "z_max",
            "nz_shape",
            "nz_scale",
            "starburst_weight",
            "psf_fwhm_scale",
            "telescope_diameter_m",
            "size_scale",
            "detection_snr",
            "segmentation_threshold",
            "ebv_internal_max",
            "passive_z_max",
        ):
            _positive(name, getattr(self, name))
        for name in (
            "emission_line_scale",
            "ebv_internal_mean",
            "ebv_mw_mean",
            "ebv_mw_variation",
            "psf_jitter_arcsec",
            "noise_correlation_px",
        ):
            _positive(name, getattr(self, name), allow_zero=True)
        if not (isinstance(self.label_bias_mag, (int, float)) and self.label_bias_mag > 0):
            raise ConfigError(
                f"SimulationSettings: label_bias_mag must be > 0 (inf = unbiased), "
                f"got {self.label_bias_mag!r}"
            )
        for name in (
            "star_fraction",
            "brown_dwarf_fraction",
            "passive_fraction",
            "label_fraction",
            "wrong_label_fraction",
        ):
            _fraction(name, getattr(self, name))
        if not 0.0 <= self.psf_obscuration < 1.0:
            raise ConfigError(
                f"SimulationSettings: psf_obscuration must be in [0, 1), got {self.psf_obscuration}"
            )
        if not 20.0 < self.mag_limit < 40.0:
            raise ConfigError(
                f"SimulationSettings: mag_limit must be an AB magnitude in (20, 40), got {self.mag_limit!r}"
            )
        if isinstance(self.depth, Mapping):
            set_(self, "depth", tuple(sorted((str(k).upper(), float(v)) for k, v in self.depth.items())))
        self._resolve_depth()  # validates
        set_(self, "detection_bands", tuple(str(b).upper() for b in self.detection_bands))

    def _resolve_depth(self) -> tuple[float, ...]:
        depth = self.depth
        if isinstance(depth, tuple) and depth and isinstance(depth[0], tuple):
            depth = dict(depth)
        if depth is None:
            values = [DEFAULT_DEPTHS[b] for b in self.bands]
        elif isinstance(depth, Mapping):
            unknown = sorted(set(str(k).upper() for k in depth) - set(self.bands))
            if unknown:
                raise ConfigError(
                    f"SimulationSettings: depth given for band(s) {' '.join(unknown)} that are not "
                    f"simulated (bands: {' '.join(self.bands)})"
                )
            upper = {str(k).upper(): float(v) for k, v in depth.items()}
            values = [upper.get(b, DEFAULT_DEPTHS[b]) for b in self.bands]
        elif isinstance(depth, (int, float)):
            values = [float(depth)] * len(self.bands)
        else:
            values = [float(v) for v in depth]
            if len(values) != len(self.bands):
                raise ConfigError(
                    f"SimulationSettings: depth lists {len(values)} values for {len(self.bands)} bands"
                )
        values = [v + self.depth_offset for v in values]
        bad = [v for v in values if not 15.0 < v < 40.0]
        if bad:
            raise ConfigError(
                f"SimulationSettings: depth must be 5-sigma AB magnitudes in (15, 40), got {bad[0]!r}"
            )
        return tuple(values)

    @property
    def depths(self) -> tuple[float, ...]:
        """5-sigma AB depth of each band (``depth`` resolved, plus ``depth_offset``), in band order."""
        return self._resolve_depth()

    @property
    def active_detection_bands(self) -> tuple[str, ...]:
        """Detection bands present in ``bands`` (all bands when none of ``detection_bands`` is simulated)."""
        present = tuple(b for b in self.detection_bands if b in self.bands)
        return present or self.bands

    @property
    def field_shape(self) -> tuple[int, int]:
        """Mosaic shape (rows, columns) in pixels for `simulate_mosaics`."""
        if self.field_size is not None:
            return self.field_size, self.field_size
        cols = math.ceil(math.sqrt(self.n_tiles))
        rows = math.ceil(self.n_tiles / cols)
        return rows * self.tile_size, cols * self.tile_size
