"""ceci pipelines built with RAIL's pipeline classes (the checked-in YAMLs under ``examples/pipelines``).

========================== ===================================================================================
class                      stages
========================== ===================================================================================
`DeepDiscMainPipeline`     simulate (train and test fields) -> inform -> estimate -> evaluate: RAIL's PIT and
                           CDE loss on the estimator's grid, our coverage and the paper's metrics (truth
                           ``redshift_true``)
`DeepDiscEstimatePipeline` estimate (MPI, ``nprocess`` ranks) -> evaluate, with an existing model on new tiles
`DeepDiscComparePipeline`  the main pipeline plus EAZY, BPZ, FlexZBoost, kNN and the catalog MDN on the same
                           objects (same labels) and the consensus of DeepDISC, BPZ and EAZY (calibrated on the test
                           field's spec-z), each evaluated alike
========================== ===================================================================================

`write_pipeline` turns one of them into a pipeline YAML and its stage-configuration YAML, which the ``ceci``
command runs (``ceci main_JADES9.yml``; ``output_dir=...`` on the command line moves the outputs).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rail.core.stage import RailPipeline

from rail.creation.engines.deepdisc_simulator import DeepDiscSimulator
from rail.deepdisc.presets import get_preset
from rail.estimation.algos.deepdisc import DeepDiscEstimator, DeepDiscInformer
from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
from rail.estimation.algos.deepdisc_consensus import ConsensusEstimator3, ConsensusInformer3
from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer
from rail.estimation.algos.deepdisc_ml import (
    CatalogMdnEstimator,
    CatalogMdnInformer,
    NIRCamFlexZBoostEstimator,
    NIRCamFlexZBoostInformer,
    NIRCamKNNEstimator,
    NIRCamKNNInformer,
)
from rail.evaluation.deepdisc_evaluators import (
    DeepDiscCoverageEvaluator,
    DeepDiscDistToPointEvaluator,
    DeepDiscMetricsEvaluator,
    DeepDiscTruthMatcher,
)
from rail.tools.deepdisc_catalog import TileSetToCatalog

__all__ = [
    "DemoSize",
    "DEMO_SIZE",
    "TEST_SIZE",
    "DeepDiscMainPipeline",
    "DeepDiscEstimatePipeline",
    "DeepDiscComparePipeline",
    "write_pipeline",
    "PIPELINES",
]

#: Names of the methods the compare pipeline's consensus combines (the order of its inputs).
CONSENSUS_METHODS = ("deepdisc", "bpz", "eazy")
#: RAIL distribution-to-point metrics run on every photo-z output, on the estimator's redshift grid (PIT and
#: CDE loss; the PIT's KS/CvM/AD statistics are in the metrics JSON, from RAIL's ``OldEvaluator``).
RAIL_METRICS = ["cdeloss", "pit"]


@dataclass(frozen=True)
class DemoSize:
    """How big a simulated run is: fields, labels and training effort."""

    train_tiles: int = 100
    test_tiles: int = 40
    tile_size: int = 128
    label_fraction: float = 0.5
    members: int = 2
    epochs: int = 6
    train_seed: int = 1
    test_seed: int = 2

    def __post_init__(self):
        for name in ("train_tiles", "test_tiles", "tile_size", "members", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction!r}")


#: The size of the README demo (a few CPU minutes per preset).
DEMO_SIZE = DemoSize()
#: A tiny size for tests.
TEST_SIZE = DemoSize(train_tiles=8, test_tiles=4, tile_size=64, label_fraction=0.8, members=1, epochs=1)


def _simulators(pipe: RailPipeline, preset: str, size: DemoSize) -> None:
    common = dict(bands=preset, tile_size=size.tile_size, progress_bar=False)
    pipe.simulate_train = DeepDiscSimulator.build(n_samples=size.train_tiles, seed=size.train_seed,
                                                  label_fraction=size.label_fraction, **common)
    # the test field: another seed, spec-z as in a real survey (evaluation uses redshift_true)
    pipe.simulate_test = DeepDiscSimulator.build(n_samples=size.test_tiles, seed=size.test_seed, **common)


def _evaluators(pipe: RailPipeline, name: str, estimator, tiles, label: str, *, grid_stage=None) -> None:
    """RAIL's PIT/CDE loss on the objects with truth, our coverage and the paper's metrics.

    ``estimator`` is the stage whose ``output`` is evaluated: RAIL's metrics run on its redshift grid
    (``zmin``, ``zmax``, ``nzbins``), read from ``grid_stage`` when given (the consensus estimator takes its
    grid from its informer's model). ``tiles`` is the truth TileSet: an upstream stage's output, or the name
    of an overall pipeline input.
    """
    photoz = estimator.io.output
    grid_config = (grid_stage or estimator).config
    grid = {key: grid_config[key] for key in ("zmin", "zmax", "nzbins")}

    def inputs(**given):
        if isinstance(tiles, str):
            return dict(connections=given, aliases=dict(truth=tiles))
        return dict(connections=dict(given, truth=tiles))

    matcher = DeepDiscTruthMatcher.build(**inputs(input=photoz), truth_column="auto")
    setattr(pipe, f"truth_{name}", matcher)
    setattr(pipe, f"pit_{name}", DeepDiscDistToPointEvaluator.build(
        connections=dict(input=matcher.io.output, truth=matcher.io.truth_table),
        metrics=RAIL_METRICS, force_exact=True, hdf5_groupname="", **grid))
    setattr(pipe, f"coverage_{name}", DeepDiscCoverageEvaluator.build(**inputs(input=photoz)))
    setattr(pipe, f"metrics_{name}", DeepDiscMetricsEvaluator.build(**inputs(input=photoz), label=label))


class DeepDiscMainPipeline(RailPipeline):
    """Simulate a training and a test field, train an ensemble, estimate photo-z and evaluate them.

    Parameters
    ----------
    preset : str
        Filter preset of the simulated tiles (``JADES9``, ``NEXUS6``, ``COSMOSWEB4``).
    size : DemoSize
        Field sizes, labels and training effort.
    """

    default_input_dict: dict[str, str] = {}

    def __init__(self, preset: str = "JADES9", size: DemoSize = DEMO_SIZE) -> None:
        RailPipeline.__init__(self)
        get_preset(preset)
        _simulators(self, preset, size)
        self.inform_deepdisc = DeepDiscInformer.build(
            connections=dict(input=self.simulate_train.io.output), members=size.members, epochs=size.epochs,
            progress_bar=False)
        self.estimate_deepdisc = DeepDiscEstimator.build(
            connections=dict(input=self.simulate_test.io.output, model=self.inform_deepdisc.io.model),
            progress_bar=False)
        _evaluators(self, "deepdisc", self.estimate_deepdisc, self.simulate_test.io.output, f"DeepDISC {preset}")


class DeepDiscEstimatePipeline(RailPipeline):
    """Estimate photo-z with an existing model on a TileSet over MPI ranks, then evaluate them.

    Inputs ``model`` (a DeepDISC artifact) and ``tiles`` (a TileSet) are given in the pipeline YAML.
    """

    default_input_dict: dict[str, str] = {"model": "model.pt", "tiles": "tiles.h5"}

    def __init__(self) -> None:
        RailPipeline.__init__(self)
        self.estimate_deepdisc = DeepDiscEstimator.build(aliases=dict(input="tiles"), progress_bar=False)
        _evaluators(self, "deepdisc", self.estimate_deepdisc, "tiles", "DeepDISC")


class DeepDiscComparePipeline(RailPipeline):
    """DeepDISC and its peers on the same simulated objects, each trained on the same labels and evaluated alike.

    The peers read the catalog photometry of the TileSets (``TileSetToCatalog``: fluxes and magnitudes): the
    template fitters EAZY (eazy-py's FSPS templates) and BPZ (COSMOS SEDs, prior fitted to the labels), and the
    catalog machine-learning peers FlexZBoost, kNN and the catalog MDN (DeepDISC's redshift head on catalog
    colours), informed on the labelled objects' photometry (see ``rail.deepdisc.peers``). The consensus of
    DeepDISC, BPZ and EAZY (``rail.deepdisc.consensus``) is calibrated on the test field's spec-z objects (10% of
    the catalogue, none used in training). Each estimator gets the same evaluators: metrics by magnitude and
    redshift, PIT, coverage.
    """

    default_input_dict: dict[str, str] = {}

    def __init__(self, preset: str = "JADES9", size: DemoSize = DEMO_SIZE) -> None:
        RailPipeline.__init__(self)
        bands = list(get_preset(preset))
        _simulators(self, preset, size)
        train, test = self.simulate_train.io.output, self.simulate_test.io.output
        self.inform_deepdisc = DeepDiscInformer.build(connections=dict(input=train), members=size.members,
                                                      epochs=size.epochs, progress_bar=False)
        self.estimate_deepdisc = DeepDiscEstimator.build(
            connections=dict(input=test, model=self.inform_deepdisc.io.model), progress_bar=False)
        self.catalog_train = TileSetToCatalog.build(connections=dict(input=train))
        self.catalog_test = TileSetToCatalog.build(connections=dict(input=test))
        estimates = {"deepdisc": self.estimate_deepdisc}
        for name, informer, estimator, options, inform_only in (
            ("bpz", NIRCamBPZInformer, NIRCamBPZEstimator, dict(nircam_bands=bands, hdf5_groupname=""), {}),
            ("eazy", EazyInformer, EazyEstimator, dict(bands=bands), {}),
            ("flexzboost", NIRCamFlexZBoostInformer, NIRCamFlexZBoostEstimator, dict(nircam_bands=bands), {}),
            ("knn", NIRCamKNNInformer, NIRCamKNNEstimator, dict(nircam_bands=bands), {}),
            ("catalog_mdn", CatalogMdnInformer, CatalogMdnEstimator, {},  # the model records its bands
             dict(nircam_bands=bands, members=size.members, progress_bar=False)),
        ):
            inform = informer.build(connections=dict(input=self.catalog_train.io.output), **options, **inform_only)
            setattr(self, f"inform_{name}", inform)
            setattr(self, f"estimate_{name}", estimator.build(
                connections=dict(input=self.catalog_test.io.output, model=inform.io.model), **options))
            estimates[name] = getattr(self, f"estimate_{name}")  # the built stage
        methods = dict(input_1=self.estimate_deepdisc.io.output, input_2=self.estimate_bpz.io.output,
                       input_3=self.estimate_eazy.io.output)
        # the consensus is calibrated on the test field's spec-z (never used in training), applied to all of it
        self.inform_consensus = ConsensusInformer3.build(connections=dict(methods, truth=test),
                                                         methods=list(CONSENSUS_METHODS), prior_without_labels=True)
        self.estimate_consensus = ConsensusEstimator3.build(
            connections=dict(methods, model=self.inform_consensus.io.model, tiles=test),
            methods=list(CONSENSUS_METHODS))
        estimates["consensus"] = self.estimate_consensus
        for name, stage in estimates.items():
            _evaluators(self, name, stage, test, f"{name} {preset}",
                        grid_stage=self.inform_consensus if name == "consensus" else None)


#: Stages that run torch and get every core of the machine (ceci gives each process one thread by default).
THREADED_STAGES = ("inform_deepdisc", "estimate_deepdisc")
DEFAULT_THREADS = 2


def write_pipeline(pipe: RailPipeline, path: str | os.PathLike, *, output_dir: str = "output",
                   inputs: dict[str, str] | None = None, nprocess: dict[str, int] | None = None,
                   threads: int = DEFAULT_THREADS) -> Path:
    """Write a pipeline YAML (and ``<name>_config.yml`` beside it) for the ``ceci`` command.

    Parameters
    ----------
    pipe : RailPipeline
        A built pipeline (e.g. ``DeepDiscMainPipeline("NEXUS6")``).
    path : str or Path
        Pipeline YAML to write.
    output_dir : str
        Where ``ceci`` puts the outputs (relative to where it runs; ``output_dir=...`` overrides it).
    inputs : dict, optional
        Overall inputs (tag -> file) for pipelines that read existing files.
    nprocess : dict, optional
        MPI processes per stage name (stages run with ``--mpi`` when more than one).
    threads : int
        Threads per process of the torch stages (`THREADED_STAGES`) when they run as one process.

    Returns
    -------
    Path
        The pipeline YAML.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_config = dict(output_dir=output_dir, log_dir=f"{output_dir}/logs", resume=False)
    pipe.initialize(dict(inputs or pipe.default_input_dict), run_config, None)
    nprocess = nprocess or {}
    for stage in pipe.stage_names:
        execution = pipe.get_stage_execution_config(stage)
        n = int(nprocess.get(stage, 1))
        execution.nprocess = n
        if stage in THREADED_STAGES and n == 1:
            execution.threads_per_process = int(threads)
        site = execution.site.config
        site["max_threads"] = max(int(site.get("max_threads", 1)), n * execution.threads_per_process)
    pipe.save(str(path), stagefile=str(path.with_name(path.stem + "_config.yml")))
    return path


def size_dict(size: DemoSize) -> dict:
    """Plain-data view of a `DemoSize` (for logs and provenance)."""
    return asdict(size)


#: The checked-in pipelines: file stem -> (pipeline factory, write_pipeline keywords). ``examples/
#: build_pipelines.py`` writes them; a test checks that the files in the repository match.
PIPELINES = {
    **{f"main_{preset}": (lambda preset=preset, size=DEMO_SIZE: DeepDiscMainPipeline(preset, size),
                          dict(output_dir=f"demo_output/{preset}"))
       for preset in ("JADES9", "NEXUS6", "COSMOSWEB4")},
    "estimate_mpi": (lambda size=None: DeepDiscEstimatePipeline(),
                     dict(output_dir="estimate_output", inputs={"model": "demo_output/JADES9/model_inform_deepdisc.pt",
                                                                "tiles": "demo_output/JADES9/output_simulate_test.h5"},
                          nprocess={"estimate_deepdisc": 2})),
    "compare_JADES9": (lambda size=DEMO_SIZE: DeepDiscComparePipeline("JADES9", size),
                       dict(output_dir="compare_output/JADES9")),
}
