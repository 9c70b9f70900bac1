"""pz-rail-deepdisc: image-based photometric redshifts for JWST deep fields (DeepDISC) as a RAIL plugin.

The library lives in one module per concern (``tiles``, ``tileio``, ``presets``, ``artifact``, ...); this
package re-exports the public API. The RAIL stages (`DeepDiscInformer`, `DeepDiscEstimator`, ...) are imported
lazily, so ``import rail.deepdisc`` stays light.
"""

from __future__ import annotations

import importlib
import logging

from rail.deepdisc.evaluation.binned import detection_completeness, metrics_table
from rail.deepdisc.evaluation.coverage import (
    CREDIBILITY_LEVELS,
    CoverageResult,
    calibration_error,
    central_interval_coverage,
    coverage_from_pit,
    ensemble_moments,
    ensemble_quantiles,
    gridded_ensemble,
    pit_values,
)
from rail.deepdisc.evaluation.directory import compare_evaluations, evaluate_files, load_evaluation, read_loss_curves
from rail.deepdisc.evaluation.evaluate import EvaluationResult, EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable, read_photoz, read_truth, with_ancil
from rail.deepdisc.evaluation.metrics import (
    PointMetrics,
    normalised_residuals,
    outlier_fraction,
    photoz_bias,
    point_metrics,
    sigma_iqr,
)
from rail.deepdisc.evaluation.som import SOMSettings, flag_catalogs, spec_represented
from rail.deepdisc.exceptions import (
    ConfigError,
    DeepDiscError,
    DeepDiscWarning,
    DustMapError,
    ModelError,
    NoDetectionsWarning,
    PrepError,
    PrepWarning,
    TileSetError,
)
from rail.deepdisc.presets import FILTER_PRESETS, get_preset, resolve_bands
from rail.deepdisc.tileset.contract import empty_objects, object_columns
from rail.deepdisc.tileset.format import TileSet, concatenate_tilesets
from rail.deepdisc.tileset.io import iter_tileset, plan_chunks, read_tileset, write_tileset
from rail.deepdisc.tileset.validation import TileSetSummary, validate_tileset
from rail.deepdisc.tileset.writer import TileSetWriter

try:
    from rail.deepdisc._version import version as __version__
except ImportError:  # pragma: no cover - running from a source tree without an install
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> module holding it; imported on first access (module-level __getattr__, PEP 562)
_LAZY = {
    "DeepDiscInformer": "rail.estimation.algos.deepdisc",
    "DeepDiscEstimator": "rail.estimation.algos.deepdisc",
    "DeepDiscSOMFlagger": "rail.estimation.algos.deepdisc_som",
    "DeepDiscTruthMatcher": "rail.evaluation.deepdisc_evaluators",
    "DeepDiscCoverageEvaluator": "rail.evaluation.deepdisc_evaluators",
    "DeepDiscMetricsEvaluator": "rail.evaluation.deepdisc_evaluators",
    "DeepDiscDistToPointEvaluator": "rail.evaluation.deepdisc_evaluators",
    "EazyInformer": "rail.estimation.algos.deepdisc_eazy",
    "EazyEstimator": "rail.estimation.algos.deepdisc_eazy",
    "NIRCamBPZInformer": "rail.estimation.algos.deepdisc_bpz",
    "NIRCamBPZEstimator": "rail.estimation.algos.deepdisc_bpz",
    "NIRCamFlexZBoostInformer": "rail.estimation.algos.deepdisc_ml",
    "NIRCamFlexZBoostEstimator": "rail.estimation.algos.deepdisc_ml",
    "NIRCamKNNInformer": "rail.estimation.algos.deepdisc_ml",
    "NIRCamKNNEstimator": "rail.estimation.algos.deepdisc_ml",
    "CatalogMdnInformer": "rail.estimation.algos.deepdisc_ml",
    "CatalogMdnEstimator": "rail.estimation.algos.deepdisc_ml",
    "TileSetToCatalog": "rail.tools.deepdisc_catalog",
    "DeepDiscPrep": "rail.tools.deepdisc_prep",
    "DeepDiscSimulator": "rail.creation.engines.deepdisc_simulator",
    "SimulationSettings": "rail.deepdisc.simulation",
    "simulate_tileset": "rail.deepdisc.simulation",
    "simulate_mosaics": "rail.deepdisc.simulation",
    "TileSetHandle": "rail.deepdisc.tileset.handles",
    "DeepDiscModelHandle": "rail.deepdisc.tileset.handles",
    "DeepDiscPretrainer": "rail.estimation.algos.deepdisc_pretrain",
    "pretrain_from_options": "rail.deepdisc.pretraining.run",
    "pretrain_model": "rail.deepdisc.pretraining.loop",
    "PretrainSettings": "rail.deepdisc.pretraining.settings",
    "NuisanceRanges": "rail.deepdisc.pretraining.randomise",
    "SimulatedChunks": "rail.deepdisc.pretraining.randomise",
    "FileChunks": "rail.deepdisc.pretraining.randomise",
    "load_pretrained": "rail.deepdisc.training.finetune",
    "pretrain_backbone": "rail.deepdisc.pretraining.backbone",
    "NetworkConfig": "rail.deepdisc.model.config",
    "DeepDiscRCNN": "rail.deepdisc.model.network",
    "build_model": "rail.deepdisc.model.network",
    "model_from_artifact": "rail.deepdisc.model.network",
    "MixtureParams": "rail.deepdisc.model.redshift_head",
    "train_from_options": "rail.deepdisc.training.run",
    "merge_artifacts": "rail.deepdisc.training.ensemble",
    "TrainSettings": "rail.deepdisc.training.settings",
    "EnsembleSettings": "rail.deepdisc.training.settings",
    "EnsemblePredictor": "rail.deepdisc.inference.predictor",
    "InferenceSettings": "rail.deepdisc.inference.predictor",
    "PhotoZChunk": "rail.deepdisc.inference.photoz",
    "match_boxes": "rail.deepdisc.inference.match",
    "box_iou": "rail.deepdisc.inference.match",
    "Mixture": "rail.deepdisc.mixture",
    "combine_members": "rail.deepdisc.mixture",
    "PrepInputs": "rail.deepdisc.prep.prepare",
    "PrepSettings": "rail.deepdisc.prep.prepare",
    "prepare_tilesets": "rail.deepdisc.prep.prepare",
    "SpeczFormat": "rail.deepdisc.prep.specz_tables",
    "SPECZ_FORMATS": "rail.deepdisc.prep.specz_tables",
    "CompileSettings": "rail.deepdisc.prep.specz",
    "read_specz": "rail.deepdisc.prep.specz_tables",
    "compile_specz": "rail.deepdisc.prep.specz",
    "read_photometry": "rail.deepdisc.prep.catalog",
    "sfd_ebv": "rail.deepdisc.dust",
    "open_mosaics": "rail.deepdisc.prep.mosaics",
    "open_segmentation": "rail.deepdisc.prep.segmentation",
    "build_report": "rail.deepdisc.evaluation.report",
    "SpooledOutputMixin": "rail.deepdisc.inference.spooled",
    "split_band_list": "rail.deepdisc.presets",
    "ConsensusInformer": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusEstimator": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusInformer3": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusEstimator3": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusInformer4": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusEstimator4": "rail.estimation.algos.deepdisc_consensus",
    "ConsensusSettings": "rail.deepdisc.consensus.model",
    "ConsensusModel": "rail.deepdisc.consensus.model",
}

#: Modules holding the package's RAIL stages. RAIL's ``import_and_attach_all`` imports only ``rail.deepdisc``,
#: so `import_stages` (called at the end of this module) imports them; they keep torch and plotting imports lazy.
STAGE_MODULES = (
    "rail.creation.engines.deepdisc_simulator",
    "rail.estimation.algos.deepdisc_pretrain",
    "rail.estimation.algos.deepdisc",
    "rail.estimation.algos.deepdisc_som",
    "rail.estimation.algos.deepdisc_eazy",
    "rail.estimation.algos.deepdisc_bpz",
    "rail.estimation.algos.deepdisc_ml",
    "rail.estimation.algos.deepdisc_consensus",
    "rail.evaluation.deepdisc_evaluators",
    "rail.tools.deepdisc_catalog",
    "rail.tools.deepdisc_prep",
)

__all__ = [
    "ConfigError",
    "DeepDiscError",
    "DeepDiscWarning",
    "DustMapError",
    "ModelError",
    "NoDetectionsWarning",
    "PrepError",
    "PrepWarning",
    "TileSetError",
    "FILTER_PRESETS",
    "get_preset",
    "resolve_bands",
    "TileSet",
    "TileSetSummary",
    "TileSetWriter",
    "concatenate_tilesets",
    "empty_objects",
    "object_columns",
    "iter_tileset",
    "plan_chunks",
    "read_tileset",
    "validate_tileset",
    "write_tileset",
    "CREDIBILITY_LEVELS",
    "CoverageResult",
    "calibration_error",
    "central_interval_coverage",
    "coverage_from_pit",
    "ensemble_moments",
    "ensemble_quantiles",
    "gridded_ensemble",
    "pit_values",
    "compare_evaluations",
    "evaluate_files",
    "load_evaluation",
    "read_loss_curves",
    "PhotoZTable",
    "TruthTable",
    "read_photoz",
    "read_truth",
    "with_ancil",
    "EvaluationResult",
    "EvaluationSettings",
    "evaluate_photoz",
    "PointMetrics",
    "detection_completeness",
    "metrics_table",
    "normalised_residuals",
    "outlier_fraction",
    "photoz_bias",
    "point_metrics",
    "sigma_iqr",
    "SOMSettings",
    "flag_catalogs",
    "spec_represented",
    "import_stages",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def import_stages() -> None:
    """Import every module of the package that defines RAIL stages (so RAIL can attach them)."""
    for module in STAGE_MODULES:
        importlib.import_module(module)


import_stages()
