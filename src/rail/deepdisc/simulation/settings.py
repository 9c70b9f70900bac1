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
from rail.deepdisc.options import PROGRESS_BAR, Option, OptionSet, check_fields, option
from rail.deepdisc.presets import BANDS
from rail.deepdisc.simulation.sed_library import parse_sed_library

__all__ = ["SimulationSettings", "SIMULATION_OPTIONS", "MOSAIC_DIR", "DEFAULT_DEPTHS", "GOODS_S_CENTRE"]

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
#: How catalogs and segmentation maps are made (`SimulationSettings.detection`).
DETECTIONS = ("model", "photutils")


def _depth_value(value):
    """A depth option as stored: a number, a sequence aligned with the bands, or sorted ``(band, depth)`` pairs."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k).upper(), float(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


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
    sed_library : str
        Galaxy SED families (`rail.deepdisc.simulation.sed_library`): ``cosmos`` (pz-rail-base's 31 COSMOS
        templates, the default), ``fsps`` (random non-negative combinations of eazy-py's 12 FSPS templates,
        the EAZY peer's own set), ``cww`` (BPZ's CWWSB4 set, interpolated), or several joined by ``+``
        (``cosmos+cww``: each galaxy draws one; ``mixed`` = ``cosmos+fsps``). Spelled canonically.
    sed_mismatch : float
        Template mismatch: the galaxies' SEDs depart from their library's templates by a smooth random factor,
        this many times EAZY's template error function (`rail.deepdisc.simulation.sed_mismatch`; 0 = the
        templates exactly, 1 = the error function at face value).
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
    photon_noise : bool
        Add source photon noise: Poisson electrons with the gain at which the sky background's own photon noise
        is the depth's pixel sigma (`rail.deepdisc.simulation.noise`).
    sky_background_scale : float
        Multiplies the sky surface brightness that sets that gain (> 1: relatively less source noise).
    bulge_disc : bool
        Draw galaxies as a de Vaucouleurs bulge with a passive SED plus an exponential disc with the rest of
        the light (`rail.deepdisc.simulation.components`); False: one Sersic profile with one SED.
    detection : str
        ``model``: segmentation of the noiseless detection stack (below); ``photutils``: `detect_sources` and
        `deblend_sources` on the PSF-smoothed noisy detection stack, as JADES does, so blends, spurious and
        missed sources occur (`rail.deepdisc.simulation.detection`).
    detection_threshold : float
        ``photutils``: detection level in units of the smoothed stack's noise (``min_pixels`` connected pixels).
    deblend_levels, deblend_contrast : int, float
        ``photutils``: deblending levels and minimum flux fraction of a deblended component.
    detection_bands : tuple of str
        Bands stacked for detection and segmentation (those present; all bands if none is).
    detection_snr : float
        ``model``: minimum isophotal signal-to-noise in the detection stack for an object to enter the catalog.
    segmentation_threshold : float
        ``model``: noiseless detection-stack level, in units of its pixel noise, above which pixels belong to an
        object.
    min_pixels : int
        Minimum footprint size of a catalogued object, pixels.
    label_fraction : float
        Expected fraction of catalogued galaxies with a spectroscopic redshift.
    label_bias_mag : float
        Brightness bias of the spectroscopic selection: the selection odds fall by e per this many
        magnitudes (F444W); ``inf`` = unbiased.
    label_z_scale : float
        Redshift dependence of the spectroscopic success: odds fall by e per this many units of redshift
        (``inf`` = none).
    label_desert_success : float
        Relative spectroscopic success in the redshift desert 1.5 < z < 2.5, where no strong line falls in
        the optical windows (1 = no desert).
    wrong_label_fraction : float
        Fraction of spectroscopic labels that are wrong (line confusion or failures).
    oversampling : int
        Sub-pixels per pixel side used when rendering (resolves the undersampled short-wavelength PSFs).
    field_size : int or None
        Side of the mosaic written by `simulate_mosaics`, pixels (None: the area of ``n_tiles`` tiles).
    """

    n_tiles: int = option(36, "number of tiles to simulate", low=1, stage="n_samples", flag="tiles")
    tile_size: int = option(128, "tile side, pixels", low=16, flag="size")
    bands: str | tuple[str, ...] = BANDS.as_field()
    pixel_scale: float = option(0.03, "arcsec per pixel", low=0, low_open=True)
    seed: int = option(42, "random seed (the same seed gives identical files)", low=0)
    depth: float | Mapping[str, float] | tuple[float, ...] | None = option(
        None, "5-sigma AB depth: one value for every band, or per band as {F444W: 29.5} (missing: JADES deep)",
        type=dict, optional=True, empty={}, convert=_depth_value, flag_type=float)
    depth_offset: float = option(0.0, "magnitudes added to every 5-sigma depth (> 0 deeper)")
    depth_aperture_arcsec: float = option(0.2, "diameter of the depth aperture, arcsec", low=0, low_open=True)
    density: float = option(0.8, "galaxies per arcsec^2 brighter than mag_limit (F444W)", low=0, low_open=True)
    mag_limit: float = option(30.8, "faintest F444W AB magnitude drawn", low=20, high=40, low_open=True,
                              high_open=True)
    z_max: float = option(ZMAX, "highest galaxy redshift", low=0, low_open=True)
    nz_shape: float = option(3.0, "Gamma shape of the drawn N(z)", low=0, low_open=True)
    nz_scale: float = option(1.1, "Gamma scale of the drawn N(z)", low=0, low_open=True)
    star_fraction: float = option(0.03, "fraction of objects that are stars or brown dwarfs", low=0, high=1)
    brown_dwarf_fraction: float = option(0.3, "fraction of stars that are brown dwarfs", low=0, high=1)
    passive_fraction: float = option(0.25, "passive-galaxy fraction at z = 0", low=0, high=1)
    passive_z_max: float = option(5.0, "no passive galaxies above this redshift", low=0, low_open=True)
    starburst_weight: float = option(1.0, "multiplies the share of starburst templates (SED-mix nuisance)", low=0,
                                     low_open=True)
    sed_library: str = option("cosmos", "galaxy SED families: cosmos (COSMOS templates), fsps (random combinations "
                              "of eazy-py's 12 FSPS templates), cww (BPZ's CWWSB4, interpolated), or several joined "
                              "by + (each galaxy draws one; mixed = cosmos+fsps)", convert=parse_sed_library)
    sed_mismatch: float = option(0.0, "galaxy SEDs depart smoothly from their library's templates by this many times "
                                 "EAZY's template error function (0 = the templates exactly)", low=0)
    emission_line_scale: float = option(1.0, "multiplies every H-alpha equivalent width (0 = no nebular lines)",
                                        low=0)
    ebv_internal_mean: float = option(0.15, "mean internal Calzetti E(B-V) of star-forming galaxies, mag", low=0)
    ebv_internal_max: float = option(1.0, "largest internal E(B-V), mag", low=0, low_open=True)
    ebv_mw_mean: float = option(0.008, "mean Milky-Way E(B-V) of the smooth field, mag", low=0)
    ebv_mw_variation: float = option(0.2, "relative amplitude of the Milky-Way E(B-V) field", low=0)
    dustmap_dir: str | None = option(None, "directory of the SFD dust maps, dustmaps format (empty: smooth "
                                     "Milky-Way field)", type=str, optional=True, empty="")
    psf_fwhm_scale: float = option(1.0, "multiplies every PSF width", low=0, low_open=True)
    psf_jitter_arcsec: float = option(0.006, "Gaussian jitter sigma convolved with the Airy PSF, arcsec", low=0)
    psf_obscuration: float = option(0.11, "central obscuration of the Airy pupil", low=0, high=1, high_open=True)
    telescope_diameter_m: float = option(6.5, "aperture diameter, m", low=0, low_open=True)
    size_scale: float = option(1.0, "multiplies every galaxy half-light radius", low=0, low_open=True)
    noise_correlation_px: float = option(0.0, "noise correlation sigma, pixels (0 = white)", low=0,
                                         flag="noise-correlation")
    photon_noise: bool = option(True, "add source photon (Poisson) noise; gain from the sky background and depth")
    sky_background_scale: float = option(1.0, "multiplies the sky background that sets the photon-noise gain "
                                         "(> 1: less source noise)", low=0, low_open=True)
    bulge_disc: bool = option(True, "galaxies as a passive de Vaucouleurs bulge plus an exponential disc, each "
                              "with its own SED (colour gradients)")
    detection: str = option("model", "catalog and segmentation from the noiseless 'model' or from 'photutils' "
                            "detection and deblending on the noisy detection stack", choices=DETECTIONS)
    detection_threshold: float = option(3.5, "photutils: detection level of the PSF-smoothed detection stack, in "
                                        "units of its noise", low=0, low_open=True)
    deblend_levels: int = option(32, "photutils: multi-thresholding levels of the deblending", low=1)
    deblend_contrast: float = option(0.001, "photutils: minimum flux fraction of a deblended component", low=0,
                                     high=1)
    detection_bands: tuple[str, ...] = option(_JADES_DETECTION, "bands stacked for detection", item=str)
    detection_snr: float = option(5.0, "minimum isophotal S/N in the detection stack to be catalogued", low=0,
                                  low_open=True)
    segmentation_threshold: float = option(2.0, "noiseless detection-stack level (noise units) of footprints",
                                           low=0, low_open=True)
    min_pixels: int = option(5, "minimum footprint size, pixels", low=1)
    label_fraction: float = option(0.1, "expected fraction of catalogued galaxies with spec-z", low=0, high=1)
    label_bias_mag: float = option(1.5, "spec-z selection odds fall by e per this many F444W magnitudes (inf = "
                                   "unbiased)", low=0, low_open=True, finite=False)
    label_z_scale: float = option(math.inf, "spec-z success odds fall by e per this many units of redshift "
                                  "(inf = no redshift dependence)", low=0, low_open=True, finite=False)
    label_desert_success: float = option(1.0, "relative spec-z success in the redshift desert 1.5 < z < 2.5 "
                                         "(1 = no desert)", low=0, high=1)
    wrong_label_fraction: float = option(0.01, "fraction of wrong spec-z labels", low=0, high=1)
    oversampling: int = option(2, "sub-pixels per pixel side when rendering", low=1)
    field_size: int | None = option(None, "mosaic side, pixels, with mosaic_dir (0 or unset: the area of the "
                                    "tiles)", type=int, optional=True, empty=0, low=16)

    def __post_init__(self):
        check_fields(self, "SimulationSettings")
        object.__setattr__(self, "detection_bands", tuple(b.strip().upper() for b in self.detection_bands))
        self._resolve_depth()  # validates

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


#: Where ``deepdisc simulate`` and `DeepDiscSimulator` also write JADES-format mosaics.
MOSAIC_DIR = Option("mosaic_dir", "", "also write JADES-format mosaics, segmentation and catalogs here; the TileSet "
                    "is then cut from that mosaic")
#: The options of ``deepdisc simulate`` and `DeepDiscSimulator`.
SIMULATION_OPTIONS = OptionSet(SimulationSettings, MOSAIC_DIR, PROGRESS_BAR)
