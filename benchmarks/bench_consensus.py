"""Cost and (synthetic) accuracy of the consensus photo-z (`rail.deepdisc.consensus`, ``deepdisc combine``).

Two parts, each printing a table:

* ``cost``: objects/s of the combine step for N objects x M methods on the 1201-point grid, chunked (memory
  stays at one chunk): a DeepDISC-like 5-component Gaussian mixture tabulated in closed form and M - 1 grid PDFs
  (EAZY/BPZ-like), calibrated, mixed with the bad term, multiplied, normalised, point estimates and the
  ``qp.interp`` chunk built. ``--files N`` also times `write_consensus` end to end from qp files (read,
  tabulate, combine, write) on N objects.
* ``accuracy``: a SYNTHETIC benchmark (not the realistic accuracy benchmark of the issue): three simulated
  methods with different failure modes -- a network sound inside its bright, z < 4 training domain and lost
  outside it (pulled towards its training mean, over-confident), a template fit that is sharp, somewhat
  over-confident and catastrophically wrong on a magnitude-dependent fraction (Lyman/Balmer-break
  degeneracy), and a second template fit whose failures are correlated with the first -- and spec-z labels
  selected as in a real survey (bright objects, rarely z > 4). The consensus is fitted on the labelled objects
  and evaluated on the others: sigma_IQR, eta (|dz|/(1+z) > 0.15, zmode) and 68%/95% coverage per F444W bin.

Run::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_consensus.py cost --objects 100000 --methods 3
    PYTHONPATH=src python benchmarks/bench_consensus.py accuracy --objects 20000
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import qp

from rail.deepdisc.consensus import ConsensusModel, combine_ensembles, fit_sources
from rail.deepdisc.consensus.fit import combine_pdfs
from rail.deepdisc.consensus.grid import grid_point_estimates, pdfs_on_grid
from rail.deepdisc.consensus.io import consensus_ensemble
from rail.deepdisc.constants import redshift_grid
from rail.deepdisc.evaluation.coverage import coverage_from_pit, pit_values
from rail.deepdisc.evaluation.metrics import outlier_fraction, sigma_iqr
from rail.deepdisc.memory import peak_rss_mb

ZGRID = redshift_grid()


def own_peak_rss_gb():
    """Peak resident memory of this process image (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    return peak_rss_mb() * 2**20 / 1e9


def gaussian_rows(means, sigmas, weights=None):
    """Normalised (mixtures of) Gaussians on the grid: means/sigmas/weights (N,) or (N, K)."""
    means, sigmas = np.atleast_2d(means.T).T, np.atleast_2d(sigmas.T).T
    weights = np.ones_like(means) if weights is None else np.atleast_2d(weights.T).T
    out = np.zeros((len(means), len(ZGRID)))
    for k in range(means.shape[1]):
        x = (ZGRID[None, :] - means[:, k:k + 1]) / sigmas[:, k:k + 1]
        out += weights[:, k:k + 1] * np.exp(-0.5 * x * x) / sigmas[:, k:k + 1]
    return out / np.trapezoid(out, ZGRID, axis=1)[:, None]


def mixture_ensemble(n, rng, k=5):
    z = rng.gamma(2.0, 0.9, n) + 0.1
    means = z[:, None] + rng.normal(0, 0.05, (n, k)) * (1 + z[:, None])
    stds = np.full((n, k), 0.05) * (1 + z[:, None])
    return qp.Ensemble(qp.mixmod, data=dict(means=means, stds=stds, weights=np.full((n, k), 1.0 / k))), z


def cost_model(n_methods):
    return ConsensusModel(methods=tuple(f"m{j}" for j in range(n_methods)), temperature=np.linspace(1.0, 2.5,
                          n_methods), bad_fraction=np.full((n_methods, 3), 0.05),
                          bad_fraction_all=np.full(n_methods, 0.05), beta=1.3, mag_band="F444W",
                          mag_edges=np.array([25.0, 27.0]))


def run_cost(args):
    model = cost_model(args.methods)
    rng = np.random.default_rng(0)
    times = {"tabulate": 0.0, "combine": 0.0, "output": 0.0}
    for start in range(0, args.objects, args.chunk):
        n = min(args.chunk, args.objects - start)
        mix, z = mixture_ensemble(n, rng)
        grids = [gaussian_rows(z + rng.normal(0, 0.03, n) * (1 + z), 0.03 * (1 + z))
                 for _ in range(args.methods - 1)]  # EAZY/BPZ-like inputs, already on the grid (not timed)
        mag = rng.uniform(22, 30, n)
        t = time.perf_counter()
        pdfs = [pdfs_on_grid(mix, ZGRID), *grids]
        times["tabulate"] += time.perf_counter() - t
        t = time.perf_counter()
        combined = combine_pdfs(model, pdfs, mag)
        times["combine"] += time.perf_counter() - t
        t = time.perf_counter()
        consensus_ensemble(ZGRID, combined, {"object_id": np.arange(start, start + n)})
        times["output"] += time.perf_counter() - t
    total = sum(times.values())
    print(f"combine step: {args.objects} objects x {args.methods} methods x {len(ZGRID)} grid points, "
          f"chunks of {args.chunk}")
    print(f"{'step':>24} {'seconds':>9} {'objects/s':>10}")
    labels = {"tabulate": "tabulate mixtures", "combine": "calibrate+HB product", "output": "point est.+qp chunk"}
    for key, label in labels.items():
        print(f"{label:>24} {times[key]:>9.2f} {args.objects / times[key]:>10.0f}")
    print(f"{'total':>24} {total:>9.2f} {args.objects / total:>10.0f}")
    print(f"peak RSS {own_peak_rss_gb():.2f} GB")
    if args.files:
        run_files(args)  # the child process rebuilds the same model


def run_files(args):
    rng = np.random.default_rng(1)
    n = args.files
    with tempfile.TemporaryDirectory(prefix="bench-consensus-") as tmp:
        paths = []
        mix, z = mixture_ensemble(n, rng)
        mix.set_ancil(dict(object_id=np.arange(n)))
        paths.append(Path(tmp) / "m0.hdf5")
        mix.write_to(str(paths[0]))
        for j in range(1, args.methods):
            ens = qp.Ensemble(qp.interp, data=dict(xvals=ZGRID, yvals=gaussian_rows(
                z + rng.normal(0, 0.03, n) * (1 + z), 0.03 * (1 + z))))
            ens.set_ancil(dict(object_id=np.arange(n)))
            paths.append(Path(tmp) / f"m{j}.hdf5")
            ens.write_to(str(paths[j]))
        np.save(Path(tmp) / "mag.npy", rng.uniform(22, 30, n))
        # a fresh process, so that its peak RSS is the combine's own (not the synthetic inputs')
        code = ("import sys, time, numpy as np; sys.path.insert(0, sys.argv[1]); "
                "from bench_consensus import cost_model, own_peak_rss_gb; "
                "from rail.deepdisc.consensus import write_consensus; "
                "t = time.perf_counter(); "
                "write_consensus(sys.argv[3:], cost_model(len(sys.argv) - 3), sys.argv[2] + '/out.hdf5', "
                f"np.load(sys.argv[2] + '/mag.npy'), chunk_size={args.chunk}); "
                "print(time.perf_counter() - t, own_peak_rss_gb())")
        done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), tmp, *map(str, paths)],
                              capture_output=True, text=True, check=True)
        dt, rss = map(float, done.stdout.split()[-2:])
    print(f"end to end from files (read, tabulate, combine, write), own process: {n} objects in {dt:.2f} s = "
          f"{n / dt:.0f} objects/s; peak RSS {rss:.2f} GB")


# ------------------------------------------------------------------------------------------------------
# synthetic accuracy


def population(n, rng):
    z = np.clip(rng.gamma(2.0, 0.9, n) + 0.15, 0.05, 10.5)
    mag = np.clip(rng.normal(26.5, 1.4, n) + 0.6 * np.log1p(z) - 0.6, 21.0, 30.0)
    noise = 10 ** (0.4 * (mag - 27.0))  # relative flux error ~ 1 at 27 mag
    return z, mag, noise


def degenerate(z, rng):
    """The Lyman/Balmer-break confusion: the other solution (1 + z) x or / (1216 / 3646)."""
    ratio = 3646.0 / 1216.0
    low, high = (1 + z) / ratio - 1, (1 + z) * ratio - 1
    pick = np.where(z > 2.5, low, np.where(high < 10.5, high, low))
    return np.clip(pick + rng.normal(0, 0.05, len(z)) * (1 + pick), 0.02, 11.5)


def network(z, mag, noise, rng):
    """Sound inside its training domain (bright, z < 4); outside, pulled to its training mean, over-confident."""
    inside = (z < 4.0) & (mag < 26.5)
    sigma = 0.04 * (1 + z) * (1 + noise)
    centre = z + rng.normal(0, 1, len(z)) * sigma
    lost = ~inside
    pull = np.clip((z - 4.0) / 3.0, 0, 1) * 0.6 + np.clip((mag - 26.5) / 2.0, 0, 1) * 0.3
    centre = np.where(lost, centre - pull * (centre - 1.8), centre)
    reported = np.where(lost, 0.6 * sigma, sigma)
    comps = centre[:, None] + np.array([-0.5, 0.0, 0.5])[None] * reported[:, None]
    stds = np.repeat(reported[:, None] * 0.85, 3, axis=1)
    ens = qp.Ensemble(qp.mixmod, data=dict(means=comps, stds=stds, weights=np.full((len(z), 3), 1 / 3)))
    return ens


def template(z, mag, noise, rng, outlier=None, sharp=0.025, confidence=0.7):
    """Sharp, over-confident grid PDFs with a degenerate second solution; outliers put most weight there."""
    n = len(z)
    sigma = sharp * (1 + z) * (1 + 2 * noise)
    centre = z + rng.normal(0, 1, n) * sigma
    p_out = np.clip(0.04 + 0.2 * np.clip(noise - 0.3, 0, 1), 0, 0.3)
    if outlier is None:
        outlier = rng.uniform(size=n) < p_out
    other = degenerate(z, rng)
    main = np.where(outlier, other, centre)
    second = np.where(outlier, centre, other)
    w2 = np.where(outlier, 0.15, 0.08)
    rep = confidence * sigma
    pdfs = gaussian_rows(np.stack([main, second], 1), np.stack([rep, rep * (1 + other) / (1 + z)], 1),
                         np.stack([1 - w2, w2], 1))
    ens = qp.Ensemble(qp.interp, data=dict(xvals=ZGRID, yvals=pdfs))
    return ens, outlier


def metrics(ens, zphot, z, sel):
    pit = pit_values(ens[np.flatnonzero(sel)], z[sel])
    cov = coverage_from_pit(pit, [0.68, 0.95]).coverage
    return {"n": int(sel.sum()), "sigma_iqr": sigma_iqr(zphot[sel], z[sel]),
            "eta": outlier_fraction(zphot[sel], z[sel]), "cov68": cov[0], "cov95": cov[1]}


def zmode_of(ens):
    if ens.ancil and "zmode" in ens.ancil:
        return np.asarray(ens.ancil["zmode"]).ravel()
    return grid_point_estimates(ZGRID, pdfs_on_grid(ens, ZGRID))["zmode"]


def run_accuracy(args):
    rng = np.random.default_rng(args.seed)
    n = args.objects
    z, mag, noise = population(n, rng)
    ids = np.arange(n)
    net = network(z, mag, noise, rng)
    eazy, out_eazy = template(z, mag, noise, rng)
    correlated = np.where(rng.uniform(size=n) < 0.7, out_eazy, rng.uniform(size=n) < 0.08)
    bpz, _ = template(z, mag, noise, rng, outlier=correlated, sharp=0.035, confidence=0.8)
    methods = {"network": net, "template A": eazy, "template B": bpz}
    for ens in methods.values():
        ens.set_ancil(dict(object_id=ids))
    p_label = 0.35 / (1 + np.exp((mag - 25.3) / 0.45)) * np.where(z > 4, 0.2, 1.0)
    labelled = rng.uniform(size=n) < p_label
    truth = {"object_id": ids, "redshift": np.where(labelled, z, np.nan), "mag_F444W": mag}
    t = time.perf_counter()
    model = fit_sources(list(methods.values()), list(methods), truth)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    consensus = combine_ensembles(list(methods.values()), model, mag)
    comb_s = time.perf_counter() - t
    print(f"SYNTHETIC benchmark: {n} objects, {labelled.sum()} labelled (bright-selected, median F444W "
          f"{np.median(mag[labelled]):.1f} vs {np.median(mag):.1f}); evaluated on the {(~labelled).sum()} "
          f"unlabelled objects; fit {fit_s:.1f} s, combine {comb_s:.1f} s")
    print("model: " + "; ".join(f"{m} T={t:.2f} f_bad={np.round(f, 3).tolist()}" for m, t, f in
                                zip(model.methods, model.temperature, model.bad_fraction))
          + f"; mag edges {model.mag_edges.tolist()}; beta={model.beta:.2f}")
    bins = [("all", ~labelled), ("F444W<25", ~labelled & (mag < 25)),
            ("25-27", ~labelled & (mag >= 25) & (mag < 27)), ("27-28", ~labelled & (mag >= 27) & (mag < 28)),
            ("F444W>=28", ~labelled & (mag >= 28)), ("<27 all", ~labelled & (mag < 27))]
    print(f"| {'estimator':<12} | {'F444W bin':<10} | {'n':>6} | {'sigma_IQR':>9} | {'eta':>6} | {'cov68':>5} | "
          f"{'cov95':>5} |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, ens in [*methods.items(), ("consensus", consensus)]:
        zphot = zmode_of(ens)
        for label, sel in bins:
            m = metrics(ens, zphot, z, sel)
            print(f"| {name:<12} | {label:<10} | {m['n']:>6} | {m['sigma_iqr']:>9.4f} | {m['eta']:>6.3f} | "
                  f"{m['cov68']:>5.2f} | {m['cov95']:>5.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    cost = sub.add_parser("cost", help="objects/s of the combine step")
    cost.add_argument("--objects", type=int, default=100_000)
    cost.add_argument("--methods", type=int, default=3)
    cost.add_argument("--chunk", type=int, default=10_000)
    cost.add_argument("--files", type=int, default=0, help="also time write_consensus from files on N objects")
    acc = sub.add_parser("accuracy", help="synthetic accuracy: inputs vs consensus")
    acc.add_argument("--objects", type=int, default=20_000)
    acc.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    (run_cost if args.part == "cost" else run_accuracy)(args)


if __name__ == "__main__":
    main()
