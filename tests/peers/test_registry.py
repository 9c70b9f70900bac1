"""The peers' stages are RAIL stages: discoverable, namespace-safe."""

from pathlib import Path

import rail.stages

from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer
from rail.estimation.algos.deepdisc_ml import (
    CatalogMdnEstimator,
    CatalogMdnInformer,
    NIRCamFlexZBoostEstimator,
    NIRCamFlexZBoostInformer,
    NIRCamKNNEstimator,
    NIRCamKNNInformer,
)
from rail.tools.deepdisc_catalog import TileSetToCatalog


def test_stages_attach_to_rail_stages():
    rail.stages.import_and_attach_all(silent=True)
    peers = (EazyInformer, EazyEstimator, NIRCamBPZInformer, NIRCamBPZEstimator, TileSetToCatalog)
    ml = (NIRCamFlexZBoostInformer, NIRCamFlexZBoostEstimator, NIRCamKNNInformer, NIRCamKNNEstimator,
          CatalogMdnInformer, CatalogMdnEstimator)
    for stage in peers + ml:
        assert getattr(rail.stages, stage.name) is stage


def test_no_init_files_in_rail_namespaces():
    src = Path(__file__).resolve().parents[2] / "src" / "rail"
    for sub in ("estimation", "estimation/algos", "tools"):
        assert not (src / sub / "__init__.py").exists()
