"""ceci pipelines: the checked-in YAMLs are current, and tiny versions run under the ``ceci`` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qp
import tables_io
import yaml

from rail.deepdisc.pipelines import (
    PIPELINES,
    TEST_SIZE,
    DeepDiscComparePipeline,
    DeepDiscEstimatePipeline,
    DeepDiscMainPipeline,
    write_pipeline,
)
from rail.deepdisc.tileset.validation import validate_tileset

ROOT = Path(__file__).resolve().parents[1]
CECI_MAIN = "import sys; from ceci.main import main; sys.exit(main())"  # the `ceci` command, in this Python


def _run_ceci(yml: Path, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                        os.environ.get("PYTHONPATH")])))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run([sys.executable, "-c", CECI_MAIN, str(yml)], cwd=cwd, env=env, capture_output=True,
                          text=True)
    logs = "".join(p.read_text()[-3000:] for p in sorted(cwd.glob("out/logs/*.err")) if p.stat().st_size)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    assert "Pipeline successful" in done.stdout


def _write(pipe, tmp_path: Path, name: str, **options) -> Path:
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the YAML names its config file relative to where ceci runs
    try:
        return tmp_path / write_pipeline(pipe, f"{name}.yml", output_dir="out", **options)
    finally:
        os.chdir(cwd)


def test_checked_in_yamls_are_current(tmp_path):
    """examples/pipelines/*.yml are what examples/build_pipelines.py writes today."""
    for stem, (factory, options) in PIPELINES.items():
        new = _write(factory(), tmp_path, stem, **{k: v for k, v in options.items() if k != "output_dir"})
        old = ROOT / "examples" / "pipelines" / f"{stem}.yml"
        assert old.exists(), f"{old} is missing: run python examples/build_pipelines.py"
        new_pipe, old_pipe = yaml.safe_load(new.read_text()), yaml.safe_load(old.read_text())
        for key in ("stages", "inputs", "site"):
            assert new_pipe[key] == old_pipe[key], f"{old}: '{key}' is stale: run examples/build_pipelines.py"
        new_cfg = yaml.safe_load((tmp_path / f"{stem}_config.yml").read_text())
        old_cfg = yaml.safe_load((old.parent / f"{stem}_config.yml").read_text())
        assert new_cfg == old_cfg, f"{old.parent / f'{stem}_config.yml'} is stale: run examples/build_pipelines.py"


def test_readme_shows_the_checked_in_pipelines():
    readme = (ROOT / "README.md").read_text()
    for stem in PIPELINES:
        assert f"examples/pipelines/{stem}.yml" in readme


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("main")
    _run_ceci(_write(DeepDiscMainPipeline("NEXUS6", TEST_SIZE), tmp, "main"), tmp)
    return tmp / "out"


@pytest.mark.slow
def test_main_pipeline_runs_under_ceci(main_run):
    summary = validate_tileset(main_run / "output_simulate_test.h5")
    assert summary.bands == ("F090W", "F115W", "F150W", "F200W", "F356W", "F444W")
    pz = qp.read(str(main_run / "output_estimate_deepdisc.hdf5"))
    assert pz.npdf == summary.n_primary
    metrics = json.loads((main_run / "output_metrics_deepdisc.json").read_text())
    assert metrics["n_objects"] == summary.n_primary and metrics["n_with_truth"] == summary.n_primary
    coverage = json.loads((main_run / "output_coverage_deepdisc.json").read_text())
    assert coverage["rows"]
    pit = tables_io.read(str(main_run / "summary_pit_deepdisc.hdf5"))
    assert np.isfinite(pit["cdeloss"][0])
    assert (main_run / "model_inform_deepdisc_loss.png").exists()


@pytest.mark.slow
@pytest.mark.mpi
def test_estimate_pipeline_with_two_ranks_equals_one_process(main_run, tmp_path):
    inputs = {"model": str(main_run / "model_inform_deepdisc.pt"),
              "tiles": str(main_run / "output_simulate_test.h5")}
    yml = _write(DeepDiscEstimatePipeline(), tmp_path, "estimate", inputs=inputs,
                 nprocess={"estimate_deepdisc": 2})
    assert yaml.safe_load(yml.read_text())["stages"][0]["nprocess"] == 2
    _run_ceci(yml, tmp_path)
    two = qp.read(str(tmp_path / "out" / "output_estimate_deepdisc.hdf5"))
    one = qp.read(str(main_run / "output_estimate_deepdisc.hdf5"))
    # the one-process run used 2 torch threads and other batches: float32 sums may differ in the last bit
    # (tests/inference/test_estimate.py checks byte identity at equal thread counts)
    for key in ("means", "stds", "weights"):
        np.testing.assert_allclose(two.objdata[key], one.objdata[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(two.ancil["object_id"], one.ancil["object_id"])
    assert json.loads((tmp_path / "out" / "output_metrics_deepdisc.json").read_text())["n_objects"] == two.npdf


@pytest.mark.slow
def test_compare_pipeline_runs_every_estimator(tmp_path):
    _run_ceci(_write(DeepDiscComparePipeline("COSMOSWEB4", TEST_SIZE), tmp_path, "compare"), tmp_path)
    out = tmp_path / "out"
    n = validate_tileset(out / "output_simulate_test.h5").n_primary
    for name in ("deepdisc", "bpz", "eazy", "flexzboost", "knn", "catalog_mdn", "consensus"):
        metrics = json.loads((out / f"output_metrics_{name}.json").read_text())
        assert metrics["n_objects"] == n, name
    consensus = qp.read(str(out / "output_estimate_consensus.hdf5"))  # their consensus, row for row
    np.testing.assert_array_equal(consensus.ancil["object_id"], qp.read(str(out / "output_estimate_deepdisc.hdf5"))
                                  .ancil["object_id"])
