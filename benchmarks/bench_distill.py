"""Accuracy of a distilled student against its ensemble and one member, on one test field (issue 20).

Scores photo-z files of the same TileSet (the first is the reference, normally the full ensemble) against the
field's true redshifts: sigma_IQR and the outlier fraction eta of ``zmode`` (`rail.deepdisc.evaluation.metrics`,
through `evaluate_photoz`, as ``bench_accuracy.py`` does), the coverage of the 68% and 95% central intervals
(from the PIT), and the mean negative log-density of the true redshift. Errors: ``+-`` on a metric is its
bootstrap standard error over the objects; ``d`` columns are the difference to the reference with the paired
bootstrap standard error of that difference (the same resampled objects for both files), so "within noise"
means ``|d| <`` about 2 of them. Fidelity to the reference, object by object and without the truth: the mean
KL divergence reference || file and the median |difference| of ``zmode``. ``--photoz`` takes ``LABEL=FILE``
pairs.

The bootstrap errors say how the differences would change with other test objects, not with another training
run. ``--split-noise K`` also measures the reference ensemble's run-to-run noise, from disjoint sets of its own
members (`split_noise`; K Gaussian components per member), and prints each file's |d| in units of the expected
difference between two independently trained ensembles of the reference's size.

``--time LABEL=MODEL ...`` also times `EnsemblePredictor.predict` of each model on the test field (one torch
thread, chunks of 16 tiles held in memory, after one warm-up chunk; model loading and reading not timed),
the models interleaved, best of ``--repeats``: objects/s side by side in one process.

Making the files (the student and its distillation CPU time come from the command line)::

    OMP_NUM_THREADS=1 deepdisc distill model.pt train.h5 -o student.pt --distill-epochs 10
    OMP_NUM_THREADS=1 deepdisc estimate student.pt test.h5 -o pz_student.hdf5
    PYTHONPATH=src python benchmarks/bench_distill.py --test test.h5 \\
        --photoz "ensemble=pz_ensemble.hdf5" "member 0=pz_member0.hdf5" "student=pz_student.hdf5"
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

LEVELS = (0.68, 0.95)


def truth_nll(w: np.ndarray, m: np.ndarray, s: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Negative log-density of each object's true redshift ``z`` under its mixture (weights renormalised)."""
    dens = np.sum(w * np.exp(-0.5 * ((z[:, None] - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)), axis=1) / w.sum(1)
    return -np.log(np.maximum(dens, 1e-300))


def scored(path: str, truth) -> dict:
    """Per-object ``zphot`` (zmode), ``ztrue``, PIT and log-density of the truth of one photo-z file."""
    import qp

    from rail.deepdisc.evaluation.evaluate import evaluate_photoz
    from rail.deepdisc.evaluation.io import read_photoz

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_photoz(read_photoz(path), truth, label=path)
    obj = res.objects
    ens = qp.read(path)
    w, m, s = (np.asarray(ens.dist.objdata[k], dtype=np.float64) for k in ("weights", "means", "stds"))
    z = np.asarray(obj["ztrue"], dtype=np.float64)
    return {"zphot": np.asarray(obj["zphot"]), "ztrue": z, "pit": np.asarray(obj["pit"]),
            "nll": truth_nll(w, m, s, z), "mixture": (w / w.sum(1, keepdims=True), m, s)}


def fidelity(ref: dict, other: dict) -> dict:
    """How close ``other``'s mixtures are to ``ref``'s, object by object, without the truth: the mean KL
    divergence ref || other (Gauss-Hermite, `mixture_kl`) and the median |difference| of ``zmode``."""
    import torch

    from rail.deepdisc.model.redshift_head import MixtureParams
    from rail.deepdisc.training.distill import mixture_kl

    p, q = (MixtureParams(*(torch.from_numpy(a) for a in o["mixture"])) for o in (ref, other))
    ok = torch.isfinite(p.means).all(1) & torch.isfinite(q.means).all(1)
    p, q = (MixtureParams(*(t[ok] for t in x)) for x in (p, q))
    kl = mixture_kl(p, q)
    dz = np.abs(ref["zphot"] - other["zphot"])
    return {"kl": float(kl.mean()), "median_dzmode": float(np.nanmedian(dz)), "n": int(ok.sum())}


def metrics(o: dict, idx: np.ndarray) -> np.ndarray:
    """sigma_IQR, eta, 68% and 95% coverage, mean NLL of the objects ``idx``."""
    from rail.deepdisc.evaluation.metrics import outlier_fraction, sigma_iqr

    z, t, pit = o["zphot"][idx], o["ztrue"][idx], o["pit"][idx]
    cover = [float(np.mean(np.abs(pit - 0.5) <= level / 2)) for level in LEVELS]
    return np.array([sigma_iqr(z, t), outlier_fraction(z, t), *cover, float(np.mean(o["nll"][idx]))])


def split_noise(ref: dict, idx: np.ndarray, n_components: int, *, pairs: int, seed: int = 2) -> dict:
    """Run-to-run noise of the reference ensemble's metrics, from disjoint sets of its own members.

    The reference file's mixture holds its members' components side by side (``n_components`` each, weighted
    by the member weights), so any subset of members is an ensemble of its own (the weights renormalised:
    exactly what ``deepdisc estimate`` writes for those members). For each size n up to half the members,
    ``pairs`` random disjoint pairs of n-member ensembles give the root-mean-square difference of every metric
    between two ensembles of n independently trained members. Members are exchangeable draws of one recipe, and
    an ensemble's deviation from the recipe's infinite-member limit has a variance ``c / n``: ``c`` is fitted
    over the sizes (``n rms(n)^2 / 2``, constant when the model holds: the printed ``rms x sqrt(n)`` column
    checks it), and ``sqrt(2 c / N)`` is the expected difference between two ensembles of all N members.
    """
    from rail.deepdisc.inference.predictor import InferenceSettings
    from rail.deepdisc.mixture import Mixture

    w, m, s = (a[idx] for a in ref["mixture"])
    if w.shape[1] % n_components:
        raise SystemExit(f"--split-noise {n_components}: the reference has {w.shape[1]} components per object, "
                         f"not a multiple of {n_components}")
    n_members = w.shape[1] // n_components
    if n_members < 4:
        raise SystemExit(f"--split-noise needs >= 4 members in the reference, it has {n_members}")
    z, grid = ref["ztrue"][idx], InferenceSettings().zgrid

    def scores(members) -> np.ndarray:
        cols = (np.asarray(members)[:, None] * n_components + np.arange(n_components)).ravel()
        mix = Mixture(w[:, cols] / w[:, cols].sum(1, keepdims=True), m[:, cols], s[:, cols])
        o = {"zphot": mix.mode(grid), "ztrue": z, "pit": mix.cdf(z), "nll": truth_nll(*mix, z)}
        return metrics(o, np.arange(len(z)))

    rng = np.random.default_rng(seed)
    sizes = list(range(2, n_members // 2 + 1))
    rms = {}
    for n in sizes:
        diffs = []
        for _ in range(pairs):
            perm = rng.permutation(n_members)
            diffs.append(scores(perm[:n]) - scores(perm[n:2 * n]))
        rms[n] = np.sqrt(np.mean(np.square(diffs), axis=0))
    c = np.mean([n * rms[n] ** 2 / 2 for n in sizes], axis=0)
    return {"members": n_members, "pairs": pairs, "rms": {n: r.tolist() for n, r in rms.items()},
            "full": np.sqrt(2 * c / n_members).tolist()}


def timed(models: dict, test: str, repeats: int) -> dict:
    """Best objects/s of each model's `EnsemblePredictor.predict` over the test field (interleaved repeats)."""
    import time

    import torch

    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.tileset.io import iter_tileset

    torch.set_num_threads(1)
    chunks = list(iter_tileset(test, chunk_tiles=16))
    n = sum(int(c.objects["primary"].sum()) for c in chunks)
    settings = InferenceSettings()
    predictors = {label: EnsemblePredictor.from_artifact(load_artifact(path), device="cpu", name=path)
                  for label, path in models.items()}
    for p in predictors.values():
        p.predict(chunks[0], settings)  # warm-up
    best = dict.fromkeys(models, 0.0)
    for _ in range(repeats):
        for label, p in predictors.items():
            t0 = time.perf_counter()
            for c in chunks:
                p.predict(c, settings)
            best[label] = max(best[label], n / (time.perf_counter() - t0))
    return {label: {"objects_per_s": v, "members": len(predictors[label].members)} for label, v in best.items()}


def main(argv=None) -> None:
    from rail.deepdisc.evaluation.io import read_truth

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test", required=True, help="the test TileSet (true redshifts)")
    p.add_argument("--photoz", nargs="+", required=True, metavar="LABEL=FILE", help="reference first")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--time", nargs="*", default=[], metavar="LABEL=MODEL", help="also time these models")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the table here")
    p.add_argument("--split-noise", type=int, default=0, metavar="K",
                   help="also estimate the reference ensemble's run-to-run noise from disjoint sets of its members "
                        "(K = Gaussian components per member; 0 = off)")
    p.add_argument("--split-pairs", type=int, default=60, help="random disjoint pairs per subset size")
    args = p.parse_args(argv)
    truth = read_truth(args.test)
    files = dict(item.split("=", 1) for item in args.photoz)
    objs = {label: scored(path, truth) for label, path in files.items()}
    ref_label = next(iter(objs))
    good = np.isfinite(objs[ref_label]["ztrue"]) & np.isfinite(objs[ref_label]["pit"])
    idx_all = np.flatnonzero(good)
    boots = np.random.default_rng(1).choice(idx_all, (args.bootstrap, len(idx_all)))
    ref_boot = np.array([metrics(objs[ref_label], b) for b in boots])
    names = ("sigma_IQR", "eta", "cov68", "cov95", "NLL")
    print(f"{args.test}: {len(idx_all)} objects with a true redshift; zmode; +- bootstrap SE "
          f"({args.bootstrap} resamples); d = difference to '{ref_label}' +- paired bootstrap SE")
    print(f"{'estimator':<22}" + "".join(f"{n:>18}" for n in names))
    table = []
    for label, o in objs.items():
        value = metrics(o, idx_all)
        boot = np.array([metrics(o, b) for b in boots])
        se, d, dse = boot.std(0), value - metrics(objs[ref_label], idx_all), (boot - ref_boot).std(0)
        print(f"{label:<22}" + "".join(f"{v:>10.4f}+-{e:.4f}" for v, e in zip(value, se)))
        close = {}
        if label != ref_label:
            print(f"{'  d vs ' + ref_label:<22}" + "".join(f"{x:>+10.4f}+-{e:.4f}" for x, e in zip(d, dse)))
            close = fidelity(objs[ref_label], o)
            print(f"{'  to ' + ref_label:<22} KL {close['kl']:.4f} nats, median |d zmode| "
                  f"{close['median_dzmode']:.4f} ({close['n']} objects)")
        table.append({"estimator": label, **{n: float(v) for n, v in zip(names, value)},
                      **{f"{n}_se": float(v) for n, v in zip(names, se)},
                      **{f"d_{n}": float(v) for n, v in zip(names, d)},
                      **{f"d_{n}_se": float(v) for n, v in zip(names, dse)},
                      **{f"fidelity_{k}": v for k, v in close.items()}})
    noise = {}
    if args.split_noise:
        noise = split_noise(objs[ref_label], idx_all, args.split_noise, pairs=args.split_pairs)
        n_all = noise["members"]
        print(f"\nrun-to-run noise of '{ref_label}' ({n_all} members): rms difference between two ensembles of n "
              f"disjoint members ({noise['pairs']} random pairs per n), and x sqrt(n), which c/n noise keeps constant")
        print(f"{'n':<22}" + "".join(f"{n:>18}" for n in names))
        for n, r in noise["rms"].items():
            print(f"{n:<22}" + "".join(f"{v:>10.4f} x{v * np.sqrt(n):>6.3f}" for v in r))
        print(f"{f'two of {n_all} (c/n)':<22}" + "".join(f"{v:>18.4f}" for v in noise["full"]))
        for row in table[1:]:
            ratio = [abs(row[f"d_{n}"]) / v for n, v in zip(names, noise["full"])]
            print(f"{'  |d| / noise ' + row['estimator']:<22}" + "".join(f"{v:>18.2f}" for v in ratio))
    speed = {}
    if args.time:
        import os

        speed = timed(dict(item.split("=", 1) for item in args.time), args.test, args.repeats)
        load = os.getloadavg()
        print(f"\npredict speed, 1 thread, best of {args.repeats} interleaved (load average {load[0]:.1f})")
        for label, r in speed.items():
            print(f"{label:<22} {r['members']:>3} member(s) {r['objects_per_s']:>8.1f} objects/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"accuracy": table, "speed": speed, "run_noise": noise}, f, indent=1)


if __name__ == "__main__":
    main()
