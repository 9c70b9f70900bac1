"""Template-fitting peers of DeepDISC inside RAIL: EAZY (eazy-py) and BPZ (pz-rail-bpz), on the same objects.

The library half lives here, one concern per module; the RAIL stages are thin adapters elsewhere:
`rail.estimation.algos.deepdisc_eazy` (`EazyInformer`, `EazyEstimator`), `rail.estimation.algos.deepdisc_bpz`
(`NIRCamBPZInformer`, `NIRCamBPZEstimator`) and `rail.tools.deepdisc_catalog` (`TileSetToCatalog`).

==================  =====================================================================================
module              holds
==================  =====================================================================================
``templates``       template sets (default CWWSB4, not the simulator's COSMOS set), red extension, IGM,
                    redshifted band fluxes
``photometry``      TileSet -> catalog, aperture photometry, Milky-Way dereddening, magnitude/flux conventions
``eazy_files``      eazy's input files (FILTER.RES, translate, templates, template error, prior)
``eazy_fit``        eazy settings and the runner that fits catalog chunks
``eazy_model``      what the EAZY informer learns (zero points, template error, prior)
``eazy_train``      zero points, template error amplitude, magnitude prior
``bpz_setup``       BPZ data folder and NIRCam options, corrected zero-point offsets
``pdfs``            grid PDFs and point estimates
``model_io``        pickle-free ``.npz`` model files (nested dicts of plain arrays)
``stage_options``   ceci options both peers' stages share (input table, output PDF grid)
``capture``         eazy/BPZ prints routed into logging
==================  =====================================================================================
"""

from rail.deepdisc.peers.bpz_setup import (
    BPZPriorWarning,
    bpz_zero_point_offsets,
    nircam_bpz_options,
    write_bpz_data_dir,
)
from rail.deepdisc.peers.eazy_fit import EazyRunner, EazySettings
from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.eazy_train import EazyTrainSettings, train_eazy
from rail.deepdisc.peers.pdfs import point_estimates
from rail.deepdisc.peers.photometry import (
    ApertureSettings,
    aperture_photometry,
    deredden,
    magnitudes_to_fluxes,
    tileset_to_catalog,
)
from rail.deepdisc.peers.templates import DEFAULT_TEMPLATES, TemplateSet, load_template_set, template_fluxes

__all__ = [
    "BPZPriorWarning",
    "bpz_zero_point_offsets",
    "nircam_bpz_options",
    "write_bpz_data_dir",
    "EazyModel",
    "EazyRunner",
    "EazySettings",
    "EazyTrainSettings",
    "train_eazy",
    "point_estimates",
    "ApertureSettings",
    "aperture_photometry",
    "deredden",
    "magnitudes_to_fluxes",
    "tileset_to_catalog",
    "DEFAULT_TEMPLATES",
    "TemplateSet",
    "load_template_set",
    "template_fluxes",
]
