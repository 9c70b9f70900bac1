"""The main job on the built-in simulator: simulate -> train -> estimate -> evaluate -> report.

For each filter preset, the checked-in ceci pipeline ``examples/pipelines/main_<PRESET>.yml`` simulates a
training field and an independent test field, trains a DeepDISC ensemble on the training field's spec-z, runs
it on the test field and evaluates it with RAIL's evaluators, our coverage and the paper's metrics. The photo-z
of every preset are then evaluated in full (``deepdisc evaluate``) and written into one report with a table per
preset (``deepdisc report``).

    python examples/demo.py --outdir demo_output                  # all presets (what `make demo` runs)
    python examples/demo.py --outdir demo_output --presets JADES9
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from rail.deepdisc.evaluation.directory import evaluate_files
from rail.deepdisc.evaluation.report import build_report

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("JADES9", "NEXUS6", "COSMOSWEB4")

log = logging.getLogger("demo")


def run_pipeline(preset: str, outdir: Path) -> None:
    """Run ``examples/pipelines/main_<preset>.yml`` with ceci, its outputs in ``outdir``."""
    yml = Path("examples/pipelines") / f"main_{preset}.yml"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # ceci starts `python3`
    ceci = [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())"]  # `ceci`
    cmd = [*ceci, str(yml), f"output_dir={outdir}", f"log_dir={outdir}/logs"]
    log.info("running ceci %s (output in %s)", yml, outdir)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"pipeline {yml} failed (logs in {outdir}/logs)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, default=Path("demo_output"), help="output folder")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS, help="filter presets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("rail").setLevel(logging.WARNING)
    outdir = args.outdir.resolve()
    evaldirs = []
    for preset in args.presets:
        start = time.perf_counter()
        run = outdir / preset
        run_pipeline(preset, run)
        evaldirs.append(evaluate_files(
            run / "output_estimate_deepdisc.hdf5", run / "output_simulate_test.h5", run / "eval",
            spec_tiles=run / "output_simulate_train.h5", loss_curves=run / "model_inform_deepdisc_loss.json",
            label=f"DeepDISC {preset}"))
        log.info("%s: simulate, train, estimate, evaluate in %.0f s", preset, time.perf_counter() - start)
    page = build_report(evaldirs, outdir / "report")
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
