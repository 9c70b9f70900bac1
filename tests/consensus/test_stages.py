"""The consensus stages end to end on small files (in memory and on disk)."""

import pytest
import qp

from rail.deepdisc.consensus import load_consensus_model
from rail.deepdisc.exceptions import ConfigError
from rail.estimation.algos.deepdisc_consensus import (
    ConsensusEstimator,
    ConsensusEstimator3,
    ConsensusInformer,
    ConsensusInformer3,
)
from tests.helpers.consensus_helpers import check_output


def test_stages_in_memory(inputs):
    ens = inputs["ensembles"]
    inform = ConsensusInformer.make_stage(name="consensus_inform_mem", methods=["deepdisc", "eazy"],
                                          output_mode="return")
    model = inform.inform(ens["deepdisc"], ens["eazy"], truth=inputs["ts"])
    estimate = ConsensusEstimator.make_stage(name="consensus_estimate_mem", output_mode="return")
    out = estimate.estimate(model, ens["deepdisc"], ens["eazy"], tiles=inputs["ts"]).data
    check_output(out, inputs["ids"])


def test_three_method_stages_on_files(inputs, tmp_path):
    paths = inputs["paths"]
    inform = ConsensusInformer3.make_stage(name="consensus_inform_files", methods=["deepdisc", "eazy", "bpz"],
                                           model=str(tmp_path / "model.npz"))
    handle = inform.inform(*(str(paths[k]) for k in ("deepdisc", "eazy", "bpz")), truth=str(inputs["tiles"]))
    model = load_consensus_model(handle.path)
    assert model.methods == ("deepdisc", "eazy", "bpz") and model.n_labelled > 10
    estimate = ConsensusEstimator3.make_stage(name="consensus_estimate_files", output=str(tmp_path / "c.hdf5"),
                                              chunk_size=17)
    out = estimate.estimate(handle.path, *(str(paths[k]) for k in ("deepdisc", "eazy", "bpz")),
                            tiles=str(inputs["tiles"]))
    check_output(qp.read(out.path), inputs["ids"])


def test_stage_options_are_checked(inputs):
    with pytest.raises(ConfigError, match="did you mean 'min_per_bin'"):
        ConsensusInformer.make_stage(name="consensus_bad", min_per_bins=3)
    inform = ConsensusInformer.make_stage(name="consensus_bad_methods", methods=["a"])
    ens = inputs["ensembles"]
    with pytest.raises(ConfigError, match="methods must be 2 distinct names"):
        inform.inform(ens["deepdisc"], ens["eazy"], truth=inputs["ts"])
    with pytest.raises(ConfigError, match="use ConsensusInformer3 for 3 methods"):
        inform.inform(ens["deepdisc"], ens["eazy"], ens["bpz"], truth=inputs["ts"])
