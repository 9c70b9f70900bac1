"""examples/demo.py (``make demo``): progress stage by stage, a summary table and the report path, quietly."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _demo():
    spec = importlib.util.spec_from_file_location("deepdisc_demo", ROOT / "examples" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_of_the_checked_in_pipeline():
    stages, epochs = _demo()._pipeline_plan(Path("examples/pipelines/main_JADES9.yml"))
    assert stages[:4] == ["simulate_train", "simulate_test", "inform_deepdisc", "estimate_deepdisc"]
    assert "pit_deepdisc" in stages and epochs == 2 * 6  # DEMO_SIZE: 2 members x 6 epochs


def test_summary_table_has_a_line_per_preset():
    rows = [{"label": f"DeepDISC {p}", "n_with_truth": 100 + k, "bias": 0.01, "sigma_iqr": 0.1,
             "outlier_fraction": 0.2, "calibration_mean_abs": 0.03, "pit_ks": 0.05, "cde_loss": -1.5}
            for k, p in enumerate(("JADES9", "NEXUS6"))]
    table = _demo().summary_table(rows, {"DeepDISC JADES9": 61.0}).splitlines()
    assert len(table) == 4 and table[0].split()[:3] == ["run", "N", "bias"]
    assert table[2].split()[:3] == ["DeepDISC", "JADES9", "100"] and table[2].endswith("61s")
    assert table[3].endswith("nans") and math.isnan(float(table[3].split()[-1][:-1]))
    assert max(map(len, table)) <= 100  # one screen wide


@pytest.mark.slow
def test_tiny_demo_shows_progress_table_and_report(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--outdir", str(tmp_path),
                           "--presets", "NEXUS6", "--tiny"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    stage_lines = [line for line in lines if line.startswith("[NEXUS6] ") and line.rstrip().endswith(" s")]
    assert len(stage_lines) == 8 and "inform_deepdisc" in stage_lines[2]
    assert any(line.startswith("DeepDISC NEXUS6") for line in lines)
    report = Path(lines[-1].removeprefix("report: "))
    assert lines[-1].startswith("report: ") and report.is_file()
    assert "NEXUS6 training" in done.stderr  # the epoch bar
    assert "Inserting handle into data store" not in done.stdout + done.stderr
