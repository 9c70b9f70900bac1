"""DeepDISC's peers inside RAIL, on the same objects: template fitting (EAZY, BPZ) and catalog machine learning.

The library half lives here, one concern per module; the RAIL stages are thin adapters elsewhere:
`rail.estimation.algos.deepdisc_eazy` (`EazyInformer`, `EazyEstimator`), `rail.estimation.algos.deepdisc_bpz`
(`NIRCamBPZInformer`, `NIRCamBPZEstimator`), `rail.estimation.algos.deepdisc_ml` (FlexZBoost, kNN and the catalog
MDN: `NIRCamFlexZBoostInformer`/`Estimator`, `NIRCamKNNInformer`/`Estimator`, `CatalogMdnInformer`/`Estimator`)
and `rail.tools.deepdisc_catalog` (`TileSetToCatalog`).

=====================  =====================================================================================
module                 holds
=====================  =====================================================================================
``templates``          template sets (BPZ lists, eazy ``.param`` files, folders), red extension, IGM,
                       redshifted band fluxes
``photometry``         TileSet -> catalog, aperture photometry, Milky-Way dereddening, fluxes and magnitudes
``eazy_paths``         eazy-photoz folders: the packaged eazy-py defaults, ``templates_root``, ``.param`` files
``eazy_files``         eazy's input files (FILTER.RES, translate, templates list, prior)
``eazy_grid``          eazy's template grid, integrated as eazy does without its Python loops
``eazy_fit``           eazy settings (eazy-py's defaults) and the runner that fits catalog chunks
``eazy_model``         what the EAZY informer learns (zero points, template error, prior)
``eazy_train``         zero points, template error amplitude, magnitude prior
``bpz_setup``          BPZ data folder and NIRCam options, corrected zero-point offsets
``bpz_inputs``         BPZ's default template set (COSMOS) and broad types, fluxes in BPZ's units
``catalog_ml``         options and inputs of the catalog machine-learning peers (FlexZBoost, kNN)
``catalog_mdn``        the catalog MDN (DeepDISC's redshift head on catalog colours): options, features,
                       mixtures, its weights-only model file (imports torch; not re-exported here)
``catalog_mdn_train``  its training: DeepDISC's members, selection and width calibration on catalog features
``pdfs``               grid PDFs and point estimates (eazy's ``zml``)
``model_io``           pickle-free ``.npz`` model files (nested dicts of plain arrays)
``stage_options``      ceci options the peers' stages share (input table, photometry, output PDF grid)
``capture``            eazy/BPZ prints routed into logging
=====================  =====================================================================================
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
