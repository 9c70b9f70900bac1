"""Accuracy of DeepDISC (one member and the ensemble) against its peers on a fixed simulated benchmark set.

For each filter preset the script simulates, with fixed seeds, a *training field* and an independent *test
field* whose nuisance settings are perturbed (wider PSF, shallower depth, larger galaxies, correlated noise,
weaker emission lines), so that the test is not on the training distribution. Then:

1. ``deepdisc train`` trains an R18 ensemble (>= 3 members) on the training field's spec-z labels (its wall and
   CPU time are recorded: the benchmark is sized to train in well under 60 CPU minutes per preset);
2. ``deepdisc estimate`` runs the ensemble and its first member alone on the test field;
3. the peers are informed on the *same* training labels (catalog photometry of the training field: fluxes where
   the TileSet has them) and run on the test field's catalog (inform and estimate timed separately): the
   template fitters EAZY (eazy-py's defaults) and BPZ (COSMOS SEDs and a prior fitted to the labels; also with
   CWWSB4), and the catalog machine-learning peers FlexZBoost and kNN;
4. every estimator is scored against the test field's true redshifts with the library's evaluation
   (`rail.deepdisc.evaluation.evaluate.evaluate_photoz`: bias, sigma_IQR, outlier fraction eta, PIT KS, coverage)
   overall and per magnitude bin; completeness is DeepDISC's detection completeness (the peers fit every catalog
   object).

Prints markdown tables and writes ``accuracy.json`` and ``accuracy.md`` in ``--workdir``.

Full benchmark (defaults: 120-tile training and test fields, 3 members x 12 epochs, i.e. ~3900 tile steps per
preset, ~10-20 CPU minutes of training per preset at bench_train.py's 0.12-0.3 CPU-s per tile step on a quiet
machine; run it there)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc

Smoke run (minutes)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir /tmp/acc --presets COSMOSWEB4 \\
        --train-tiles 6 --test-tiles 4 --members 3 --epochs 1

The peers alone (no training; the same fields)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc --peers-only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

PRESETS = ("JADES9", "NEXUS6", "COSMOSWEB4")
TRAIN_SEED = 1001
TEST_SEED = 2002
TRAIN_LABEL_FRACTION = 1.0  # spec-z fraction of the training field's catalogued galaxies (~6 per tile)
#: Nuisance settings of the test field (the training field uses the simulator's defaults).
TEST_NUISANCE = {
    "--psf-fwhm-scale": "1.1",
    "--depth-offset": "-0.3",
    "--size-scale": "1.15",
    "--noise-correlation": "0.6",
    "--emission-line-scale": "0.7",
}
MAG_EDGES = (18.0, 25.0, 27.0, 28.0, 29.0, 32.0)
LEVELS = (0.68, 0.95)
TARGET_COVERAGE_TOLERANCE = 0.05
CPU_MINUTES_BUDGET = 60.0


def _cli(args: list[str], threads: int) -> tuple[float, float]:
    """Run ``deepdisc ARGS`` in a child process; return (wall s, child CPU s)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rail.deepdisc.cli", *args], env=env, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"deepdisc {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def simulate(workdir: Path, preset: str, args) -> tuple[Path, Path]:
    """The training and test fields of one preset (kept when already there: the seeds fix them)."""
    train, test = workdir / f"{preset}_train.h5", workdir / f"{preset}_test.h5"
    common = ["--preset", preset, "--size", str(args.size), "--no-progress"]
    if not train.exists():
        _cli(["simulate", "-o", str(train), "--tiles", str(args.train_tiles), "--seed", str(TRAIN_SEED),
              "--label-fraction", str(TRAIN_LABEL_FRACTION), *common], 1)
    if not test.exists():
        nuisance = [x for kv in TEST_NUISANCE.items() for x in kv]
        _cli(["simulate", "-o", str(test), "--tiles", str(args.test_tiles), "--seed", str(TEST_SEED),
              *nuisance, *common], 1)
    return train, test


def one_member(model: Path, target: Path) -> Path:
    """The artifact's first member alone (weight 1)."""
    from rail.deepdisc.model.artifact import load_artifact, save_artifact

    art = load_artifact(model)
    member = dict(art["members"][0], weight=1.0)
    return save_artifact({**art, "members": [member]}, target)


#: The peers: (name, informer, estimator, options, model file suffix, informer-only options). "EAZY prior" is
#: EAZY with the informer's magnitude prior fitted to the labels (``fit_prior``, off by default), as BPZ's is.
def _peer_specs(bands: list[str]) -> list[tuple]:
    from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
    from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer
    from rail.estimation.algos.deepdisc_ml import (
        NIRCamFlexZBoostEstimator,
        NIRCamFlexZBoostInformer,
        NIRCamKNNEstimator,
        NIRCamKNNInformer,
    )

    return [
        ("EAZY", EazyInformer, EazyEstimator, dict(bands=bands), "npz", {}),
        ("EAZY prior", EazyInformer, EazyEstimator, dict(bands=bands), "npz", dict(fit_prior=True)),
        ("BPZ", NIRCamBPZInformer, NIRCamBPZEstimator, dict(nircam_bands=bands), "npz", {}),
        ("BPZ CWWSB4", NIRCamBPZInformer, NIRCamBPZEstimator, dict(nircam_bands=bands, templates="CWWSB4"), "npz",
         {}),
        ("FlexZBoost", NIRCamFlexZBoostInformer, NIRCamFlexZBoostEstimator, dict(nircam_bands=bands), "pkl", {}),
        ("kNN", NIRCamKNNInformer, NIRCamKNNEstimator, dict(nircam_bands=bands), "pkl", {}),
    ]


PEERS = ("EAZY", "EAZY prior", "BPZ", "BPZ CWWSB4", "FlexZBoost", "kNN")


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def run_peers(train: Path, test: Path, out: Path, preset: str) -> dict:
    """Inform every peer on the training field's labelled objects, estimate the test field; time them."""
    from rail.core.data import DataStore

    from rail.tools.deepdisc_catalog import TileSetToCatalog

    DataStore.allow_overwrite = True  # one process runs several presets
    catalogs = {}
    for kind, path in (("train", train), ("test", test)):
        stage = TileSetToCatalog.make_stage(name=f"catalog_{preset}_{kind}", output=str(out / f"cat_{kind}.hdf5"))
        catalogs[kind] = stage(str(path)).data
    lab = np.isfinite(catalogs["train"]["redshift"])
    labelled = {k: v[lab] for k, v in catalogs["train"].items()}
    bands = [k[len("mag_"):] for k in catalogs["test"] if k.startswith("mag_")]
    timings = {}
    for name, inf_cls, est_cls, common, suffix, inform_only in _peer_specs(bands):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. BPZ's prior fit on a selected sample
            inf = inf_cls.make_stage(name=f"{_slug(name)}_inform_{preset}",
                                     model=str(out / f"model_{_slug(name)}.{suffix}"), **common, **inform_only)
            inf.inform(labelled)
        t1 = time.perf_counter()
        est = est_cls.make_stage(name=f"{_slug(name)}_estimate_{preset}", model=inf.get_handle("model"),
                                 output=str(out / f"pz_{_slug(name)}.hdf5"), chunk_size=5000, **common)
        n = int(est.estimate(catalogs["test"]).data.npdf)
        t2 = time.perf_counter()
        timings[name] = {"inform_s": t1 - t0, "estimate_s": t2 - t1, "objects": n, "labels": int(lab.sum())}
    return timings


def score(photoz_path: Path, truth, label: str) -> dict:
    """Overall and per-magnitude-bin metrics of one estimator (the library's evaluation)."""
    from rail.deepdisc.evaluation.binned import detection_completeness
    from rail.deepdisc.evaluation.coverage import coverage_from_pit
    from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
    from rail.deepdisc.evaluation.io import read_photoz

    settings = EvaluationSettings(mag_edges=MAG_EDGES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_photoz(read_photoz(photoz_path), truth, settings=settings, label=label)
    obj = res.objects

    def coverage(sel):
        cov = {r["level"]: r["coverage"] for r in coverage_from_pit(obj["pit"][sel], LEVELS).rows()}
        return [cov[level] for level in LEVELS]

    has_truth = np.isfinite(obj["ztrue"])
    overall = res.summary["metrics"]["all"]
    detected = obj.get("detected")
    completeness = float(np.mean(detected)) if detected is not None else float("nan")
    rows = [{"bin": "all", "n": overall["n"], "bias": overall["bias"], "sigma_iqr": overall["sigma_iqr"],
             "eta": overall["outlier_fraction"], "pit_ks": res.summary["rail"].get("pit_ks", float("nan")),
             "cov68": coverage(has_truth)[0], "cov95": coverage(has_truth)[1], "completeness": completeness}]
    comp = ({(c["lo"], c["hi"]): c.get("completeness", float("nan"))
             for c in detection_completeness(detected, obj["mag"], MAG_EDGES)} if detected is not None else {})
    for r in res.metrics:
        if r["subset"] != "all" or r["binning"] != "mag":
            continue
        sel = has_truth & (obj["mag"] >= r["lo"]) & (obj["mag"] < r["hi"])
        c68, c95 = coverage(sel) if sel.any() else (float("nan"), float("nan"))
        rows.append({"bin": f"{r['lo']:g}-{r['hi']:g}", "n": r["n"], "bias": r["bias"],
                     "sigma_iqr": r["sigma_iqr"], "eta": r["outlier_fraction"], "pit_ks": float("nan"),
                     "cov68": c68, "cov95": c95,
                     "completeness": comp.get((r["lo"], r["hi"]), float("nan"))})
    return {"estimator": label, "rows": rows, "magnitude_band": res.summary["magnitude_band"]}


def run_preset(preset: str, args) -> dict:
    from rail.deepdisc.evaluation.io import read_truth

    out = Path(args.workdir) / preset
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, test = simulate(out, preset, args)
    timings = {"simulate_s": time.perf_counter() - t0}
    scores = []
    truth = read_truth(test)
    if not args.peers_only:
        model = out / "model.pt"
        train_wall, train_cpu = _cli(["train", str(train), "-o", str(model), "--members", str(args.members),
                                      "--epochs", str(args.epochs), "--threads", str(args.threads),
                                      "--seed", str(args.seed), "--no-progress", "--device", "cpu",
                                      *shlex.split(args.train_args)], args.threads)
        single = one_member(model, out / "model_member0.pt")
        timings.update({"train_wall_s": train_wall, "train_cpu_s": train_cpu})
        for label, path, pz in (("DeepDISC ensemble", model, out / "pz_ensemble.hdf5"),
                                ("DeepDISC 1 member", single, out / "pz_member0.hdf5")):
            wall, _ = _cli(["estimate", str(path), str(test), "-o", str(pz), "--threads", str(args.threads),
                            "--device", "cpu", "--no-progress"], args.threads)
            timings[f"{label} estimate_s"] = wall
            scores.append(score(pz, truth, label))
    timings.update({f"{k} {m}": v for k, t in run_peers(train, test, out, preset).items() for m, v in t.items()})
    scores += [score(out / f"pz_{_slug(name)}.hdf5", truth, name) for name in PEERS]
    return {"preset": preset, "timings": timings, "scores": scores, "n_test_objects": truth.n}


def _fmt(x, spec=".3f"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def markdown(results: list[dict], args) -> str:
    deepdisc = ("DeepDISC R18, {args.members} members x {args.epochs} epochs, {args.threads} threads"
                .format(args=args) + (f", train options `{args.train_args}`" if args.train_args else "")
                if not args.peers_only else "peers only (no DeepDISC run)")
    lines = [f"Benchmark set: per preset a {args.train_tiles}-tile training field (seed {TRAIN_SEED}, spec-z "
             f"for {TRAIN_LABEL_FRACTION:.0%} of catalogued galaxies) and an independent {args.test_tiles}-tile "
             f"test field (seed {TEST_SEED}, nuisance {' '.join(f'{k} {v}' for k, v in TEST_NUISANCE.items())}"
             f"), {args.size}x{args.size} px; {deepdisc}; peers informed on the same labels. Truth: true "
             f"redshift of every test object.", ""]
    for res in results:
        t = res["timings"]
        training = (f"; training {t['train_wall_s'] / 60:.1f} min wall, {t['train_cpu_s'] / 60:.1f} CPU min, budget "
                    f"{CPU_MINUTES_BUDGET:.0f}" if "train_wall_s" in t else "")
        lines += [f"**{res['preset']}** ({res['n_test_objects']} test objects; magnitude bins in "
                  f"{res['scores'][0]['magnitude_band']}{training})", "",
                  "| estimator | mag bin | n | bias | sigma_IQR | eta | PIT KS | cov 68% | cov 95% | completeness |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in res["scores"]:
            for r in s["rows"]:
                lines.append(f"| {s['estimator']} | {r['bin']} | {r['n']} | {_fmt(r['bias'], '+.3f')} | "
                             f"{_fmt(r['sigma_iqr'])} | {_fmt(r['eta'])} | {_fmt(r['pit_ks'])} | "
                             f"{_fmt(r['cov68'], '.2f')} | {_fmt(r['cov95'], '.2f')} | "
                             f"{_fmt(r['completeness'], '.2f')} |")
        lines.append("")
    if not args.peers_only:
        lines += ["Targets (ensemble vs the best peer, overall):", "",
                  "| preset | sigma_IQR ens / best peer | eta ens / best peer | cov 68% ens | met |",
                  "|---|---|---|---:|---|"]
        for res in results:
            by = {s["estimator"]: s["rows"][0] for s in res["scores"]}
            e = by["DeepDISC ensemble"]
            sig = min(by[p]["sigma_iqr"] for p in PEERS)
            eta = min(by[p]["eta"] for p in PEERS)
            met = e["sigma_iqr"] < sig and e["eta"] < eta and abs(e["cov68"] - LEVELS[0]) <= TARGET_COVERAGE_TOLERANCE
            lines.append(f"| {res['preset']} | {_fmt(e['sigma_iqr'])} / {_fmt(sig)} | {_fmt(e['eta'])} / "
                         f"{_fmt(eta)} | {_fmt(e['cov68'], '.2f')} | {'yes' if met else 'no'} |")
        lines.append("")
    names = ([] if args.peers_only else ["DeepDISC 1 member", "DeepDISC ensemble"]) + list(PEERS)
    lines += ["Speed on the test field (same objects; DeepDISC end to end incl. model load, peers estimate "
              "only; objects/s, peers' inform seconds in brackets):", "",
              "| preset | objects | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for res in results:
        t, n = res["timings"], res["n_test_objects"]
        cells = [f"{n / t[f'{k} estimate_s']:.1f}" for k in names if k.startswith("DeepDISC")]
        cells += [f"{t[f'{p} objects'] / t[f'{p} estimate_s']:.1f} ({t[f'{p} inform_s']:.1f})" for p in PEERS]
        lines.append(f"| {res['preset']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="folder for the fields, models and outputs (re-used)")
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--train-tiles", type=int, default=120, help="tiles of the training field (default 120)")
    p.add_argument("--test-tiles", type=int, default=120, help="tiles of the test field (default 120)")
    p.add_argument("--size", type=int, default=128, help="tile side, px (default 128)")
    p.add_argument("--members", type=int, default=3, help="ensemble members (default 3)")
    p.add_argument("--epochs", type=int, default=12, help="epochs per member (default 12)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=1234, help="training seed (default 1234)")
    p.add_argument("--train-args", default="", help="extra `deepdisc train` options for ablations, e.g. "
                   "'--head-dropout 0' (default none)")
    p.add_argument("--peers-only", action="store_true", help="skip DeepDISC: simulate, run and score the peers")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for preset in args.presets:
        t0 = time.perf_counter()
        results.append(run_preset(preset, args))
        print(f"{preset}: done in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
        text = markdown(results, args)
        (workdir / "accuracy.md").write_text(text)
        (workdir / "accuracy.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1,
                                                          default=float))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
