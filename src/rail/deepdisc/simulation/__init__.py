"""A JWST/NIRCam deep-field simulator with known redshifts: the package's built-in data.

JAGUAR-like in spirit (Williams et al. 2018), simplified: COSMOS templates with dust and IGM (`seds`), an
empirical population (`population`, `morphology`), obscured-Airy PSFs (`psf`), Fourier-space rendering with
segmentation from the noiseless model (`render`), footprint photometry (`photometry`), biased spectroscopic
labels (`labels`), and writers for TileSets (`tiling`) and JADES-format mosaics and catalogs (`mosaics`,
`catalogs`). Departures from Merz et al. (2025), who used real JADES data: everything here is simulated.
"""

from rail.deepdisc.simulation.field import FieldContext, SimulatedField, make_wcs, simulate_field
from rail.deepdisc.simulation.mosaics import simulate_mosaics
from rail.deepdisc.simulation.psf import psf_fwhm
from rail.deepdisc.simulation.settings import DEFAULT_DEPTHS, GOODS_S_CENTRE, SimulationSettings
from rail.deepdisc.simulation.tiling import ID_STRIDE, cut_field, simulate_tileset

__all__ = [
    "SimulationSettings",
    "DEFAULT_DEPTHS",
    "GOODS_S_CENTRE",
    "simulate_tileset",
    "simulate_mosaics",
    "simulate_field",
    "cut_field",
    "make_wcs",
    "psf_fwhm",
    "FieldContext",
    "SimulatedField",
    "ID_STRIDE",
]
