"""Speed and memory of the evaluation (evaluate_photoz) on synthetic Gaussian-mixture ensembles.

Run on a quiet machine, e.g.::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_evaluate.py --objects 1000 20000 100000
    PYTHONPATH=src python benchmarks/bench_evaluate.py --objects 20000 --labelled 0.1 --evaluate-only

Prints one row per size: wall time of each step and the peak resident memory of ``evaluate_photoz`` (VmHWM,
reset before each size on Linux; otherwise the process's peak so far). ``--labelled`` gives a truth redshift to
that fraction of the objects (a spec-z sample; 1 = a simulation's true redshifts); ``--evaluate-only`` skips
the separately timed steps (which grid every PDF themselves).
"""

import argparse
import time

import numpy as np
import qp

from rail.deepdisc.evaluation.coverage import ensemble_quantiles, gridded_ensemble, pit_values
from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable
from rail.deepdisc.memory import peak_rss_mb, reset_peak


def peak_rss_gb(reset: bool = False) -> float:
    """This process's peak RSS (VmHWM), GB; ``reset`` starts a new peak (Linux)."""
    if reset:
        reset_peak()
    return peak_rss_mb() * 2**20 / 1e9


def synthetic(n, k, seed=0, labelled=1.0):
    rng = np.random.default_rng(seed)
    z = rng.gamma(2.5, 0.8, n)
    means = z[:, None] + rng.normal(0, 0.05, (n, k)) * (1 + z[:, None])
    stds = np.full((n, k), 0.05) * (1 + z[:, None])
    ens = qp.Ensemble(qp.mixmod, data=dict(means=means, stds=stds, weights=np.full((n, k), 1 / k)))
    detected = rng.uniform(size=n) < 0.9
    ens.set_ancil(dict(object_id=np.arange(n), zmode=means.mean(axis=1), detected=detected, forced=~detected))
    ztrue = np.where(rng.uniform(size=n) < labelled, z, np.nan)
    truth = TruthTable({"object_id": np.arange(n), "redshift_true": ztrue, "mag_F444W": rng.uniform(22, 30, n)},
                       ("F444W",))
    return ens, truth


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--components", type=int, default=50, help="mixture components per object")
    parser.add_argument("--labelled", type=float, default=1.0, help="fraction of objects with a truth redshift")
    parser.add_argument("--evaluate-only", action="store_true", help="time evaluate_photoz alone")
    args = parser.parse_args()
    settings = EvaluationSettings()
    print(f"{'objects':>8} {'comp':>5} {'quantiles s':>12} {'PIT s':>8} {'grid s':>8} {'total s':>8} "
          f"{'peak RSS GB':>12}")
    for n in args.objects:
        ens, truth = synthetic(n, args.components, labelled=args.labelled)
        tq = tp = tg = float("nan")
        if not args.evaluate_only:
            tq = timed(lambda: ensemble_quantiles(ens, [0.16, 0.84]))
            tp = timed(lambda: pit_values(ens, truth.columns["redshift_true"]))
            tg = timed(lambda: gridded_ensemble(ens, settings.zgrid))
        peak_rss_gb(reset=True)
        tt = timed(lambda: evaluate_photoz(PhotoZTable(ens), truth, settings=settings))
        peak = peak_rss_gb()
        print(f"{n:>8} {args.components:>5} {tq:>12.2f} {tp:>8.2f} {tg:>8.2f} {tt:>8.2f} {peak:>12.2f}")


if __name__ == "__main__":
    main()
