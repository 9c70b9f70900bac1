"""RAIL creation stage `DeepDiscSimulator`: write a simulated JWST/NIRCam TileSet (and JADES-format mosaics).

A thin adapter over :mod:`rail.deepdisc.simulation`: its options mirror `SimulationSettings` (``n_samples`` is
the number of tiles), it needs no model input, and it checks options strictly.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ceci.config import StageParameter as Param
from rail.core.stage import RailStage
from rail.creation.engine import Creator

from rail.deepdisc.options import check_stage_options
from rail.deepdisc.presets import split_band_list
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics, simulate_tileset
from rail.deepdisc.tileset.handles import TileSetHandle
from rail.deepdisc.tileset.io import read_tileset

__all__ = ["DeepDiscSimulator"]

_DEFAULT = SimulationSettings()
#: Settings fields set from other options (n_samples, seed) or typed differently here.
_SPECIAL = {"n_tiles", "seed", "bands", "depth", "dustmap_dir", "field_size", "detection_bands"}
_MSG = {
    "tile_size": "tile side, pixels",
    "pixel_scale": "arcsec per pixel",
    "depth_offset": "magnitudes added to every 5-sigma depth (> 0 deeper)",
    "depth_aperture_arcsec": "diameter of the depth aperture, arcsec",
    "density": "galaxies per arcsec^2 brighter than mag_limit (F444W)",
    "mag_limit": "faintest F444W AB magnitude drawn",
    "z_max": "highest galaxy redshift",
    "nz_shape": "Gamma shape of the drawn N(z)",
    "nz_scale": "Gamma scale of the drawn N(z)",
    "star_fraction": "fraction of objects that are stars or brown dwarfs",
    "brown_dwarf_fraction": "fraction of stars that are brown dwarfs",
    "passive_fraction": "passive-galaxy fraction at z = 0",
    "passive_z_max": "no passive galaxies above this redshift",
    "starburst_weight": "multiplies the share of starburst templates (SED-mix nuisance)",
    "emission_line_scale": "multiplies every H-alpha equivalent width (0 = no nebular lines)",
    "ebv_internal_mean": "mean internal Calzetti E(B-V) of star-forming galaxies, mag",
    "ebv_internal_max": "largest internal E(B-V), mag",
    "ebv_mw_mean": "mean Milky-Way E(B-V) of the smooth field, mag",
    "ebv_mw_variation": "relative amplitude of the Milky-Way E(B-V) field",
    "psf_fwhm_scale": "multiplies every PSF width",
    "psf_jitter_arcsec": "Gaussian jitter sigma convolved with the Airy PSF, arcsec",
    "psf_obscuration": "central obscuration of the Airy pupil",
    "telescope_diameter_m": "aperture diameter, m",
    "size_scale": "multiplies every galaxy half-light radius",
    "noise_correlation_px": "noise correlation sigma, pixels (0 = white)",
    "detection_snr": "minimum isophotal S/N in the detection stack to be catalogued",
    "segmentation_threshold": "noiseless detection-stack level (noise units) of footprints",
    "min_pixels": "minimum footprint size, pixels",
    "label_fraction": "expected fraction of catalogued galaxies with spec-z",
    "label_bias_mag": "spec-z selection odds fall by e per this many F444W magnitudes",
    "wrong_label_fraction": "fraction of wrong spec-z labels",
    "oversampling": "sub-pixels per pixel side when rendering",
}


def _settings_params() -> dict:
    params = {}
    for f in fields(SimulationSettings):
        if f.name in _SPECIAL:
            continue
        value = getattr(_DEFAULT, f.name)
        params[f.name] = Param(type(value), value, msg=_MSG[f.name])
    params.update(
        bands=Param(str, "JADES9", msg="filter preset name or comma-separated band list"),
        depth=Param(dict, {}, msg="5-sigma AB depth per band, e.g. {F444W: 29.5} (missing: JADES deep)"),
        dustmap_dir=Param(str, "", msg="directory of the SFD dust maps (empty: smooth Milky-Way field)"),
        detection_bands=Param(list, list(_DEFAULT.detection_bands), msg="bands stacked for detection"),
        field_size=Param(int, 0, msg="mosaic side, pixels, with mosaic_dir (0: the area of n_samples tiles)"),
        mosaic_dir=Param(
            str,
            "",
            msg="also write JADES-format mosaics and catalogs here; the TileSet is then cut from that mosaic",
        ),
        progress_bar=Param(bool, True, msg="show a progress bar"),
    )
    return params


class DeepDiscSimulator(Creator):
    """Simulate JWST/NIRCam deep-field tiles with known redshifts (output: a TileSet).

    ``n_samples`` is the number of tiles. Objects carry spectroscopic labels for a
    brightness-biased subset (``redshift``), the true redshift of every object
    (``redshift_true``) and other ``true_*`` columns.
    """

    name = "DeepDiscSimulator"
    entrypoint_function = "sample"
    interactive_function = "deepdisc_simulator"
    config_options = Creator.config_options.copy()
    config_options.update(
        n_samples=Param(int, _DEFAULT.n_tiles, msg="number of tiles to simulate"),
        seed=Param(int, _DEFAULT.seed, msg="random seed (the same seed gives identical files)"),
    )
    config_options.update(_settings_params())
    inputs = []
    outputs = [("output", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        RailStage.__init__(self, args, **kwargs)  # Creator.__init__ would open a model input we do not have
        self.model = None

    def settings(self) -> SimulationSettings:
        """Build the `SimulationSettings` described by this stage's configuration."""
        cfg = self.config
        kw = {f.name: cfg[f.name] for f in fields(SimulationSettings) if f.name not in _SPECIAL}
        bands = cfg["bands"]
        kw.update(
            n_tiles=int(cfg["n_samples"]),
            seed=int(cfg["seed"]),
            bands=split_band_list(bands),
            depth=dict(cfg["depth"]) or None,
            dustmap_dir=cfg["dustmap_dir"] or None,
            field_size=cfg["field_size"] or None,
            detection_bands=tuple(cfg["detection_bands"]),
        )
        return SimulationSettings(**kw)

    def sample(self, n_samples: int | None = None, seed: int | None = None, **kwargs: Any) -> TileSetHandle:
        """Simulate a TileSet (interactive use; a pipeline calls ``run``).

        Parameters
        ----------
        n_samples : int, optional
            Number of tiles (default: the stage's ``n_samples`` option).
        seed : int, optional
            Random seed (default: the stage's ``seed`` option).
        **kwargs : Any
            Other options of this stage, updating its configuration (checked like
            ``make_stage``'s).

        Returns
        -------
        TileSetHandle
            The simulated TileSet (``output``).
        """
        check_stage_options(self, {}, kwargs)
        if n_samples is not None:
            self.config["n_samples"] = n_samples
        if seed is not None:
            self.config["seed"] = seed
        self.config.update(**{k: v for k, v in kwargs.items() if k in self.config_options})
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        """Simulate and register the TileSet as ``output``."""
        settings = self.settings()
        if self.config["mosaic_dir"]:
            mosaic_dir = Path(self.config["mosaic_dir"])
            out = simulate_mosaics(
                settings,
                mosaic_dir,
                tileset_path=mosaic_dir / "simulated_tiles.h5",
                progress_bar=self.config["progress_bar"],
            )
            tileset = read_tileset(out["tileset"])
        else:
            tileset = simulate_tileset(settings, progress_bar=self.config["progress_bar"])
        self.add_data("output", tileset)
