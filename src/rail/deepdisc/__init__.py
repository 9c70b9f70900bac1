"""pz-rail-deepdisc: image-based photometric redshifts for JWST deep fields (DeepDISC) as a RAIL plugin.

The library lives in one module per concern (``tiles``, ``tileio``, ``presets``, ``artifact``, ...); this
package re-exports the public API. The RAIL stages (`DeepDiscInformer`, `DeepDiscEstimator`, ...) are imported
lazily, so ``import rail.deepdisc`` stays light.
"""

from __future__ import annotations

import importlib
import logging

from .coverage import (
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
from .evaldir import compare_evaluations, evaluate_files, load_evaluation, read_loss_curves
from .evalio import PhotoZTable, TruthTable, read_photoz, read_truth, with_ancil
from .evaluate import EvaluationResult, EvaluationSettings, evaluate_photoz
from .exceptions import (
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
from .metrics import (
    PointMetrics,
    detection_completeness,
    metrics_table,
    normalised_residuals,
    outlier_fraction,
    photoz_bias,
    point_metrics,
    sigma_iqr,
)
from .presets import FILTER_PRESETS, get_preset, resolve_bands
from .som import SOMSettings, flag_catalogs, spec_represented
from .tileio import (
    TileSetSummary,
    TileSetWriter,
    iter_tileset,
    plan_chunks,
    read_tileset,
    validate_tileset,
    write_tileset,
)
from .tiles import TileSet, concatenate_tilesets, empty_objects, object_columns

try:
    from ._version import version as __version__
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
    "EazyInformer": "rail.estimation.algos.deepdisc_eazy",
    "EazyEstimator": "rail.estimation.algos.deepdisc_eazy",
    "NIRCamBPZInformer": "rail.estimation.algos.deepdisc_bpz",
    "NIRCamBPZEstimator": "rail.estimation.algos.deepdisc_bpz",
    "TileSetToCatalog": "rail.tools.deepdisc_catalog",
    "DeepDiscPrep": "rail.tools.deepdisc_prep",
    "DeepDiscSimulator": "rail.creation.engines.deepdisc_simulator",
    "SimulationSettings": "rail.deepdisc.simulation",
    "simulate_tileset": "rail.deepdisc.simulation",
    "simulate_mosaics": "rail.deepdisc.simulation",
    "TileSetHandle": "rail.deepdisc.handles",
    "DeepDiscModelHandle": "rail.deepdisc.handles",
    "DeepDiscPretrainer": "rail.estimation.algos.deepdisc_pretrain",
    "pretrain_from_options": "rail.deepdisc.pretrainrun",
    "pretrain_model": "rail.deepdisc.pretrain",
    "PretrainSettings": "rail.deepdisc.pretrain",
    "NuisanceRanges": "rail.deepdisc.randomise",
    "SimulatedChunks": "rail.deepdisc.randomise",
    "FileChunks": "rail.deepdisc.randomise",
    "load_pretrained": "rail.deepdisc.finetune",
    "pretrain_backbone": "rail.deepdisc.backbone_pretrain",
    "NetworkConfig": "rail.deepdisc.netconfig",
    "DeepDiscRCNN": "rail.deepdisc.network",
    "build_model": "rail.deepdisc.network",
    "model_from_artifact": "rail.deepdisc.network",
    "MixtureParams": "rail.deepdisc.redshift_head",
    "train_from_options": "rail.deepdisc.trainrun",
    "merge_artifacts": "rail.deepdisc.ensemble",
    "TrainSettings": "rail.deepdisc.train",
    "EnsembleSettings": "rail.deepdisc.ensemble",
    "EnsemblePredictor": "rail.deepdisc.infer",
    "InferenceSettings": "rail.deepdisc.infer",
    "PhotoZChunk": "rail.deepdisc.photoz",
    "match_boxes": "rail.deepdisc.match",
    "box_iou": "rail.deepdisc.match",
    "Mixture": "rail.deepdisc.mixture",
    "combine_members": "rail.deepdisc.mixture",
    "PrepInputs": "rail.deepdisc.prep",
    "PrepSettings": "rail.deepdisc.prep",
    "prepare_tilesets": "rail.deepdisc.prep",
    "SpeczFormat": "rail.deepdisc.specz",
    "SPECZ_FORMATS": "rail.deepdisc.specz",
    "CompileSettings": "rail.deepdisc.specz",
    "read_specz": "rail.deepdisc.specz",
    "compile_specz": "rail.deepdisc.specz",
    "read_photometry": "rail.deepdisc.catalog",
    "sfd_ebv": "rail.deepdisc.dust",
    "open_mosaics": "rail.deepdisc.mosaics",
    "open_segmentation": "rail.deepdisc.segmentation",
    "build_report": "rail.deepdisc.report",
    "SpooledOutputMixin": "rail.deepdisc.spooled_output",
    "split_band_list": "rail.deepdisc.presets",
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
