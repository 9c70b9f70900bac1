"""The main job on the built-in simulator: simulate -> train -> estimate -> evaluate -> report.

For each filter preset, the checked-in ceci pipeline ``examples/pipelines/main_<PRESET>.yml`` simulates a
training field and an independent test field, trains a DeepDISC ensemble on the training field's spec-z, runs
it on the test field and evaluates it with RAIL's evaluators, our coverage and the paper's metrics. The photo-z
of every preset are then evaluated in full (``deepdisc evaluate``) and written into one report with a table per
preset (``deepdisc report``).

Progress is shown stage by stage (a bar per preset, a line per finished stage, a bar over the training
epochs), then a summary table with one row per preset and the report's path. ``-v`` also shows ceci's and
RAIL's own output.

    python examples/demo.py --outdir demo_output                  # all presets (what `make demo` runs)
    python examples/demo.py --outdir demo_output --presets JADES9
    python examples/demo.py --outdir /tmp/demo --tiny             # tiny fields, one epoch: a smoke test
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from rail.deepdisc.evaluation.directory import compare_evaluations, evaluate_files, load_evaluation
from rail.deepdisc.evaluation.report import build_report
from rail.deepdisc.logs import set_rail_log_level

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("JADES9", "NEXUS6", "COSMOSWEB4")
TRAIN_STAGE = "inform_deepdisc"
_EXECUTING = re.compile(r"^Executing (\S+)")
_COMPLETED = re.compile(r"^Job (\S+) has completed successfully")
_POLL_S = 0.5

log = logging.getLogger("demo")


def pipeline_file(preset: str, outdir: Path, tiny: bool) -> Path:
    """The checked-in pipeline of ``preset``, or (``tiny``) a tiny version written into ``outdir``."""
    if not tiny:
        return Path("examples/pipelines") / f"main_{preset}.yml"
    from rail.deepdisc.pipelines import TEST_SIZE, DeepDiscMainPipeline, write_pipeline

    return write_pipeline(DeepDiscMainPipeline(preset, TEST_SIZE), outdir / "pipelines" / f"main_{preset}.yml",
                          output_dir=str(outdir / preset))


def _pipeline_plan(yml: Path) -> tuple[list[str], int]:
    """Stage names of a pipeline YAML, and the number of training epochs (members x epochs) it runs."""
    pipe = yaml.safe_load((ROOT / yml).read_text())
    stages = [s["name"] for s in pipe["stages"]]
    config = yaml.safe_load((ROOT / pipe["config"]).read_text())
    train = config.get(TRAIN_STAGE, {})
    return stages, int(train.get("members", 1)) * int(train.get("epochs", 1))


class _EpochBar:
    """Counts the training epochs of a running pipeline by the rewrites of its per-member checkpoints."""

    def __init__(self, checkpoint_dir: Path, total: int, preset: str):
        self.dir, self.seen = checkpoint_dir, {}
        self.bar = tqdm(total=total, desc=f"{preset} training", unit="epoch", leave=False)

    def poll(self) -> None:
        for path in self.dir.glob("member_*.pt"):
            mtime = path.stat().st_mtime_ns
            if self.seen.get(path) != mtime:
                self.seen[path] = mtime
                if self.bar.n < self.bar.total:
                    self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def run_pipeline(preset: str, yml: Path, outdir: Path, *, verbose: bool = False) -> list[tuple[str, float]]:
    """Run a pipeline YAML with ceci, its outputs in ``outdir``, showing its progress stage by stage.

    Returns
    -------
    list of (str, float)
        Each finished stage and its run time in seconds.
    """
    stages, n_epochs = _pipeline_plan(yml)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # ceci starts `python3`
    ceci = [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())"]  # `ceci`
    cmd = [*ceci, str(yml), f"output_dir={outdir}", f"log_dir={outdir}/logs"]
    log.info("running ceci %s (output in %s)", yml, outdir)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    tail: deque = deque(maxlen=200)
    done: list[tuple[str, float]] = []
    bar = tqdm(total=len(stages), desc=preset, unit="stage")
    epochs, started = None, time.perf_counter()
    try:
        while True:
            try:
                line = lines.get(timeout=_POLL_S)
            except queue.Empty:
                line = ""
            if line is None:
                break
            tail.append(line)
            if verbose and line:
                tqdm.write(line)
            if m := _EXECUTING.match(line):
                bar.set_postfix_str(m.group(1))
                started = time.perf_counter()
                if m.group(1) == TRAIN_STAGE:
                    epochs = _EpochBar(outdir / f"model_{TRAIN_STAGE}_checkpoints", n_epochs, preset)
            elif m := _COMPLETED.match(line):
                seconds = time.perf_counter() - started
                done.append((m.group(1), seconds))
                if m.group(1) == TRAIN_STAGE and epochs is not None:
                    epochs.close()
                    epochs = None
                bar.update(1)
                tqdm.write(f"[{preset}] {len(done):2d}/{len(stages)} {m.group(1):<22s} {seconds:7.1f} s")
            if epochs is not None:
                epochs.poll()
    finally:
        if epochs is not None:
            epochs.close()
        bar.close()
    if proc.wait() != 0:
        sys.stderr.write("\n".join(tail) + "\n")
        raise SystemExit(f"pipeline {yml} failed (logs in {outdir}/logs)")
    return done


def summary_table(rows: list[dict], seconds: dict[str, float]) -> str:
    """One line per preset: objects, the paper's metrics, calibration, RAIL's PIT and CDE loss, run time."""
    head = (f"{'run':<20s} {'N':>6s} {'bias':>8s} {'sigma_IQR':>9s} {'outliers':>8s} {'cov.err':>7s} "
            f"{'PIT KS':>7s} {'CDE loss':>9s} {'time':>7s}")
    out = [head, "-" * len(head)]
    for row in rows:
        out.append(f"{row['label']:<20s} {row['n_with_truth']:>6d} {row['bias']:>8.4f} {row['sigma_iqr']:>9.4f} "
                   f"{row['outlier_fraction']:>8.3f} {row['calibration_mean_abs']:>7.3f} {row['pit_ks']:>7.3f} "
                   f"{row['cde_loss']:>9.3f} {seconds.get(row['label'], math.nan):>6.0f}s")
    return "\n".join(out)


def main(argv=None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, default=Path("demo_output"), help="output folder")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS, help="filter presets")
    parser.add_argument("--tiny", action="store_true", help="tiny fields and one epoch (a smoke test)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show ceci's and RAIL's output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    set_rail_log_level(logging.INFO if args.verbose else logging.WARNING)
    outdir = args.outdir.resolve()
    evaldirs, seconds = [], {}
    for preset in args.presets:
        start = time.perf_counter()
        run = outdir / preset
        run_pipeline(preset, pipeline_file(preset, outdir, args.tiny), run, verbose=args.verbose)
        label = f"DeepDISC {preset}"
        tqdm.write(f"[{preset}] evaluating and plotting")
        evaldirs.append(evaluate_files(
            run / "output_estimate_deepdisc.hdf5", run / "output_simulate_test.h5", run / "eval",
            spec_tiles=run / "output_simulate_train.h5", loss_curves=run / "model_inform_deepdisc_loss.json",
            label=label))
        seconds[label] = time.perf_counter() - start
    page = build_report(evaldirs, outdir / "report")
    table = summary_table(compare_evaluations([load_evaluation(d) for d in evaldirs]), seconds)
    sys.stdout.write(f"\n{table}\n\nreport: {page}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
