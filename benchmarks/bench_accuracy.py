"""Accuracy of DeepDISC (one member and the ensemble) against its peers, trained on spec-z as they really are.

For each filter preset the script simulates, with fixed seeds:

* a *training field* of ``--train-tiles`` 128 px tiles (default 1500, 6.1 arcmin^2) of COSMOS-template
  galaxies (``--sed-library cosmos``) whose spec-z are drawn as real ones are (`REALISTIC_LABELS`): 3% of the
  catalogued galaxies, odds falling by e per 1.5 mag of F444W and per 2.5 in redshift, success x0.3 in the
  redshift desert 1.5 < z < 2.5, 3% of them wrong (line confusion). That is ~0.2 spec-z per tile, ~330 per
  preset; Merz et al. (2025) had 1,937 spec-z for ~94,000 JADES DR2 GOODS-S sources (~2% of the catalog, ~0.14
  per 128 px tile at the simulator's catalog density). DeepDISC trains on the tiles holding a spec-z plus
  ``--unlabelled-share`` (0.25) as many label-free tiles (detection only), so its cost follows the labels, not
  the field;
* an independent *test field* (``--test-tiles``, default 120) whose nuisances are shifted (`TEST_NUISANCE`:
  wider PSF, shallower, larger galaxies, correlated noise, weaker lines) and whose galaxies come from an SED
  family never used in training (``--sed-library fsps``: random non-negative combinations of eazy-py's 12 FSPS
  templates). That family is EAZY's own template set (an advantage to EAZY), while BPZ's COSMOS SEDs are the
  training family: the hard direction for DeepDISC and BPZ. ``--test-mismatch A`` (``deepdisc simulate
  --sed-mismatch``) makes those galaxies depart from the templates by ``A`` times EAZY's template error
  function, so that no method holds their exact SEDs.

Then:

1. ``deepdisc train`` trains an R18 ensemble (3 members x 12 epochs by default) on the training tiles; its
   wall and CPU time are recorded (budget `CPU_MINUTES_BUDGET` CPU minutes of training per preset);
2. ``deepdisc estimate`` runs the ensemble and its first member alone on every test object;
3. the peers are informed on the *same* spec-z (catalog photometry of the training field: fluxes where the
   TileSet has them) and run on the test field's catalog, inform and estimate timed: EAZY (eazy-py's
   defaults), BPZ (COSMOS SEDs, a prior fitted to the labels; also CWWSB4), FlexZBoost, kNN and the catalog
   MDN (DeepDISC's redshift head trained the same way on FlexZBoost's catalog features, ``--members``
   members: the same learner without the pixels);
4. every estimator is scored against the true redshift of every test object with the library's evaluation
   (`rail.deepdisc.evaluation.evaluate.evaluate_photoz`): bias, sigma_IQR and outlier fraction eta with
   bootstrap errors (`rail.deepdisc.evaluation.metrics.bootstrap_errors`), PIT KS, coverage and DeepDISC's
   detection completeness, overall, per F444W magnitude bin and per true-redshift bin; every row carries
   its estimator's training (inform) CPU minutes.

5. with ``--pretrain`` / ``--pretrained PATH`` (`accuracy_pretrained`), issue 18's pretraining recipe: ``deepdisc
   pretrain --sed-library cosmos+cww`` (label-complete simulations with domain randomisation, every SED family
   but the test field's held-out ``fsps``), then the ensemble fine-tuned from it on the same spec-z with the same
   members, epochs and options (plus ``--finetune-args``, nothing frozen): rows "DeepDISC pretrained +
   fine-tuned" and "DeepDISC pretrained (no fine-tuning)", whose train CPU minutes include the pretraining's,
   and a table of the acceptance (beat labels-only at F444W >= 27 and z > 3, not lose at F444W < 25).

``--labels complete`` is the ablation of earlier runs: a ``--train-tiles`` field (default 120) in which every
catalogued galaxy has a spec-z (~6 per tile), all tiles trained on; same test field.

Prints markdown tables and writes ``accuracy.json`` and ``accuracy.md`` in ``--workdir`` (``accuracy<TAG>.*`` with
``--tag``, whose DeepDISC files are suffixed too: variants side by side, the peers reused with ``--reuse``).

Full benchmark (realistic labels; ~25-60 CPU minutes of training per preset at bench_train.py's 0.12-0.3
CPU-s per tile step on a quiet machine, ~3 min of simulation, ~10 min of peers; run it there)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc

The fully labelled ablation::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc_complete --labels complete

Smoke run (minutes)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir /tmp/acc --presets COSMOSWEB4 \\
        --train-tiles 200 --test-tiles 4 --members 3 --epochs 1

With pretraining (~40 CPU minutes more, `accuracy_pretrained.PRETRAIN_ARGS`), reusing an earlier run's models,
photo-z and timings in the same folder (``--reuse``; same options)::

    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc --pretrain --reuse

or pretrain separately (the same command that ``--pretrain`` runs) and point to the model::

    deepdisc pretrain -o pretrained.pt --bands JADES9 --tile-size 128 --sed-library cosmos+cww --threads 2 \
        --epochs 12 --chunks-per-epoch 8 --tiles-per-chunk 64 --validation-tiles 16 --seed 1234 --resume
    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc --presets JADES9 \
        --pretrained pretrained.pt --reuse

Test galaxies that no library holds, with a pretraining on every library (EAZY's FSPS templates included, as
EAZY has them)::

    deepdisc pretrain -o pretrained_all.pt --bands JADES9 --tile-size 128 --sed-library cosmos+fsps+cww \
        --threads 2 --epochs 12 --chunks-per-epoch 8 --tiles-per-chunk 64 --validation-tiles 16 --seed 1234 --resume
    PYTHONPATH=src python benchmarks/bench_accuracy.py --workdir bench_acc_mm --presets JADES9 \
        --pretrained pretrained_all.pt --test-mismatch 1

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_consensus import LABEL as CONSENSUS_LABEL  # noqa: E402
from accuracy_consensus import consensus_inputs, consensus_targets, run_consensus  # noqa: E402
from accuracy_pretrained import (  # noqa: E402
    FINETUNE_ARGS,
    FINETUNED,
    PRETRAIN_ARGS,
    PRETRAINED,
    SUBSETS,
    acceptance_table,
    pretrain_library,
    run_pretrained,
)

PRESETS = ("JADES9", "NEXUS6", "COSMOSWEB4")
TRAIN_SEED = 1001
TEST_SEED = 2002
#: Spec-z of the training field as real ones are (issue 18): a few percent, bright, low z, a desert, some wrong.
REALISTIC_LABELS = {
    "--label-fraction": "0.03",
    "--label-bias-mag": "1.5",
    "--label-z-scale": "2.5",
    "--label-desert-success": "0.3",
    "--wrong-label-fraction": "0.03",
}
#: The ablation: every catalogued galaxy of the training field labelled (~6 per tile), 1% wrong.
COMPLETE_LABELS = {"--label-fraction": "1.0"}
LABELS = {"realistic": REALISTIC_LABELS, "complete": COMPLETE_LABELS}
DEFAULT_TRAIN_TILES = {"realistic": 1500, "complete": 120}
TRAIN_SED_LIBRARY = "cosmos"
#: Held out of training: the test field's galaxies come from this family only.
TEST_SED_LIBRARY = "fsps"
#: Test families that are a peer's own templates (said in the tables: that peer fits its exact templates).
MATCHED_TEMPLATES = {"fsps": ", EAZY's own templates", "cww": ", the BPZ CWWSB4 peer's own templates"}
SELECT_SEED = 3003
#: The calibration field of the consensus (its spec-z held out from training, drawn like the training ones):
#: ``target``: simulated like the test field (a survey's held-out spec-z lie in the images it estimates);
#: ``train``: like the training field (`accuracy_consensus`).
CALIB_DOMAINS = ("target", "train")
CALIB_SEED = 4004
CALIB_TARGET_SEED = 5005
DEFAULT_CALIB_TILES = {"realistic": 600, "complete": 40}
#: Nuisance settings of the test field (the training field uses the simulator's defaults).
TEST_NUISANCE = {
    "--psf-fwhm-scale": "1.1",
    "--depth-offset": "-0.3",
    "--size-scale": "1.15",
    "--noise-correlation": "0.6",
    "--emission-line-scale": "0.7",
}
MAG_EDGES = (18.0, 25.0, 27.0, 28.0, 29.0, 32.0)
BRIGHT_CUT = 27.0
Z_EDGES = (0.0, 1.0, 1.5, 2.5, 4.0, 6.0, 12.0)
BOOTSTRAP = 200
LEVELS = (0.68, 0.95)
CPU_MINUTES_BUDGET = 60.0
#: The consensus's DeepDISC input recalibrated alone on the calibration spec-z (issue 18 item 5).
RECALIBRATED = "DeepDISC recalibrated"


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


def simulate(workdir: Path, preset: str, args) -> tuple[Path, Path, Path]:
    """The training tiles, the test field and the consensus's calibration tiles of one preset (kept when already
    there: the seeds fix them). The calibration field is simulated like the test field (``--calib-domain target``:
    its nuisances and SED family) or like the training field (``train``), with another seed and spec-z drawn like
    the training ones; only its tiles holding a spec-z are kept."""
    labels = getattr(args, "labels", "realistic")
    field = field_path(workdir, preset, labels)
    train = workdir / f"{preset}_train_{labels}.h5" if labels == "realistic" else field
    test_family = test_family_name(args)
    test = workdir / f"{preset}_test_{test_family}.h5"
    common = ["--preset", preset, "--size", str(args.size), "--no-progress"]
    if not field.exists():
        label_args = [x for kv in LABELS[labels].items() for x in kv]
        _cli(["simulate", "-o", str(field), "--tiles", str(args.train_tiles), "--seed", str(TRAIN_SEED),
              "--sed-library", TRAIN_SED_LIBRARY, *label_args, *common], 1)
    if not train.exists():
        select_training_tiles(field, train, args.unlabelled_share)
    for path, want in ((test, args.test_tiles), (field, getattr(args, "train_tiles", None))):
        if want and path.exists() and _n_tiles(path) != want:
            raise SystemExit(f"{path} holds {_n_tiles(path)} tiles, not the {want} asked for: use another "
                             f"--workdir (or remove the file)")
    if not test.exists():
        _cli(["simulate", "-o", str(test), "--tiles", str(args.test_tiles), "--seed", str(TEST_SEED),
              *test_field_args(args), *common], 1)
    domain = getattr(args, "calib_domain", "train")
    stem = f"{preset}_calib_{labels}" + (f"_target_{test_family}" if domain == "target" else "")
    calib_field, calib = workdir / f"{stem}_field.h5", workdir / f"{stem}.h5"
    if not calib.exists():
        if not calib_field.exists():
            label_args = [x for kv in LABELS[labels].items() for x in kv]
            like = (["--seed", str(CALIB_TARGET_SEED), *test_field_args(args)] if domain == "target"
                    else ["--seed", str(CALIB_SEED), "--sed-library", TRAIN_SED_LIBRARY])
            _cli(["simulate", "-o", str(calib_field), "--tiles", str(args.calib_tiles), *like, *label_args,
                  *common], 1)
        select_training_tiles(calib_field, calib, 0.0)
    return train, test, calib


def test_family_name(args) -> str:
    """The test field's SED family in file names: ``fsps``, or ``fsps_mismatch1`` with ``--test-mismatch 1``."""
    mismatch = getattr(args, "test_mismatch", 0.0)
    return args.test_library + (f"_mismatch{mismatch:g}" if mismatch else "")


def test_field_args(args) -> list[str]:
    """`deepdisc simulate` options of the test field (and the target calibration field): its SED family, the
    family's template mismatch (none without it) and the shifted nuisances (`TEST_NUISANCE`)."""
    mismatch = getattr(args, "test_mismatch", 0.0)
    return ["--sed-library", args.test_library, *(["--sed-mismatch", f"{mismatch:g}"] if mismatch else []),
            *(x for kv in TEST_NUISANCE.items() for x in kv)]


def field_path(workdir: Path, preset: str, labels: str) -> Path:
    """The simulated training field of a preset and label kind."""
    return workdir / f"{preset}_train_{labels}_field.h5"


def select_training_tiles(field: Path, out: Path, unlabelled_share: float) -> Path:
    """Write the tiles of ``field`` that hold a spec-z, plus ``unlabelled_share`` as many label-free ones.

    Independent simulated tiles share no object, so any subset keeps one primary row per object.
    """
    import h5py

    from rail.deepdisc.tileset.format import concatenate_tilesets
    from rail.deepdisc.tileset.io import iter_tileset, write_tileset

    with h5py.File(field, "r") as f:
        tile, z, n_tiles = f["objects/tile"][()], f["objects/redshift"][()], len(f["tiles/tile_id"])
    labelled = np.unique(tile[np.isfinite(z)])
    free = np.setdiff1d(np.arange(n_tiles), labelled)
    n_free = min(len(free), int(round(unlabelled_share * len(labelled))))
    keep = np.sort(np.r_[labelled, np.random.default_rng(SELECT_SEED).choice(free, n_free, replace=False)])
    parts = []
    for chunk in iter_tileset(field, chunk_tiles=128):
        local = keep[(keep >= chunk.tile_offset) & (keep < chunk.tile_offset + chunk.n_tiles)] - chunk.tile_offset
        if len(local):
            parts.append(chunk.select_tiles(local))
    return write_tileset(concatenate_tilesets(parts).check(), out)


def label_statistics(field_file: Path, train: Path, labels: str) -> dict:
    """What the training spec-z are, against the training field's catalog (galaxies only)."""
    from rail.deepdisc.evaluation.io import read_truth
    from rail.deepdisc.simulation.labels import REDSHIFT_DESERT

    field = read_truth(field_file).columns
    n_tiles = _n_tiles(field_file)
    gal = ~field["true_is_star"].astype(bool)
    lab = np.isfinite(field["redshift"])
    z, mag = field["redshift_true"], field["mag_F444W"]
    lo, hi = REDSHIFT_DESERT

    def desert(sel):
        return float(np.mean((z[sel] > lo) & (z[sel] < hi))) if sel.any() else float("nan")

    return {"labels": labels, "field_tiles": n_tiles, "train_tiles": _n_tiles(train), "galaxies": int(gal.sum()),
            "specz": int(lab.sum()), "specz_per_tile": lab.sum() / n_tiles, "fraction": lab.sum() / gal.sum(),
            "mag_cat": float(np.median(mag[gal])), "mag_spec": float(np.median(mag[lab])),
            "z_cat": float(np.median(z[gal])), "z_spec": float(np.median(z[lab])),
            "desert_cat": desert(gal), "desert_spec": desert(lab),
            "wrong": float(np.mean(field["true_label_wrong"][lab].astype(bool))) if lab.any() else float("nan")}


def _n_tiles(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return len(f["tiles/tile_id"])


def one_member(model: Path, target: Path) -> Path:
    """The artifact's first member alone (weight 1)."""
    from rail.deepdisc.model.artifact import load_artifact, save_artifact

    art = load_artifact(model)
    member = dict(art["members"][0], weight=1.0)
    return save_artifact({**art, "members": [member]}, target)


#: The peers: (name, informer, estimator, options, model file suffix, informer-only options). "EAZY prior" is
#: EAZY with the informer's magnitude prior fitted to the labels (``fit_prior``, off by default), as BPZ's is.
#: "Catalog MDN" is DeepDISC's redshift head, loss, validation and width calibration on FlexZBoost's catalog
#: features, with as many members as the DeepDISC ensemble: the same learner without the pixels (issue 18).
def _peer_specs(bands: list[str], mdn_members: int = 3) -> list[tuple]:
    from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
    from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer
    from rail.estimation.algos.deepdisc_ml import (
        CatalogMdnEstimator,
        CatalogMdnInformer,
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
        ("Catalog MDN", CatalogMdnInformer, CatalogMdnEstimator, {}, "pt",
         dict(nircam_bands=bands, members=mdn_members, progress_bar=False)),
    ]


PEERS = ("EAZY", "EAZY prior", "BPZ", "BPZ CWWSB4", "FlexZBoost", "kNN", "Catalog MDN")


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def run_peers(train: Path, test: Path, out: Path, preset: str, calib: Path | None = None, *,
              mdn_members: int = 3, calib_suffix: str = "_calib") -> dict:
    """Inform every peer on the training field's labelled objects, estimate the test field (timed) and the
    calibration tiles (``pz_<peer><calib_suffix>.hdf5``, untimed); the catalog MDN with ``mdn_members`` members."""
    from rail.core.data import DataStore

    from rail.tools.deepdisc_catalog import TileSetToCatalog

    DataStore.allow_overwrite = True  # one process runs several presets
    catalogs = {}
    for kind, path in (("train", train), ("test", test), *((("calib", calib),) if calib else ())):
        name = calib_suffix.lstrip("_") if kind == "calib" else kind
        stage = TileSetToCatalog.make_stage(name=f"catalog_{preset}_{name}", output=str(out / f"cat_{name}.hdf5"))
        catalogs[kind] = stage(str(path)).data
    lab = np.isfinite(catalogs["train"]["redshift"])
    labelled = {k: v[lab] for k, v in catalogs["train"].items()}
    bands = [k[len("mag_"):] for k in catalogs["test"] if k.startswith("mag_")]
    timings = {}
    for name, inf_cls, est_cls, common, suffix, inform_only in _peer_specs(bands, mdn_members):
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. BPZ's prior fit on a selected sample
            inf = inf_cls.make_stage(name=f"{_slug(name)}_inform_{preset}",
                                     model=str(out / f"model_{_slug(name)}.{suffix}"), **common, **inform_only)
            inf.inform(labelled)
        t1, c1 = time.perf_counter(), time.process_time()
        est = est_cls.make_stage(name=f"{_slug(name)}_estimate_{preset}", model=inf.get_handle("model"),
                                 output=str(out / f"pz_{_slug(name)}.hdf5"), chunk_size=5000, **common)
        n = int(est.estimate(catalogs["test"]).data.npdf)
        t2 = time.perf_counter()
        if calib:
            est_cls.make_stage(name=f"{_slug(name)}_estimate_calib_{preset}", model=inf.get_handle("model"),
                               output=str(out / f"pz_{_slug(name)}{calib_suffix}.hdf5"), chunk_size=5000,
                               **common).estimate(catalogs["calib"])
        timings[name] = {"inform_s": t1 - t0, "inform_cpu_s": c1 - c0, "estimate_s": t2 - t1, "objects": n,
                         "labels": int(lab.sum())}
    return timings


def score(photoz_path: Path, truth, label: str, train_cpu_s: float, subsets=None) -> dict:
    """Overall, per-magnitude-bin and per-redshift-bin metrics of one estimator, with bootstrap errors (and rows
    of binning ``subset`` for ``subsets``: (name, "mag" or "z", low, high, ...) each, not shown in the tables)."""
    from rail.deepdisc.evaluation.binned import detection_completeness
    from rail.deepdisc.evaluation.coverage import coverage_from_pit
    from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
    from rail.deepdisc.evaluation.io import read_photoz
    from rail.deepdisc.evaluation.metrics import bootstrap_errors, point_metrics

    settings = EvaluationSettings(mag_edges=MAG_EDGES, z_edges=Z_EDGES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_photoz(read_photoz(photoz_path), truth, settings=settings, label=label)
    obj = res.objects
    has_truth = np.isfinite(obj["ztrue"])
    detected = obj.get("detected")
    values = {"mag": obj["mag"], "z": obj["ztrue"]}
    edges = {"mag": MAG_EDGES, "z": Z_EDGES}

    def row(binning, name, sel, m, pit_ks=float("nan"), completeness=float("nan")):
        cov = ({r["level"]: r["coverage"] for r in coverage_from_pit(obj["pit"][sel], LEVELS).rows()}
               if sel.any() else {})
        err = bootstrap_errors(obj["zphot"][sel], obj["ztrue"][sel], n_boot=BOOTSTRAP, seed=1)
        return {"binning": binning, "bin": name, "n": m["n"], "bias": m["bias"], "sigma_iqr": m["sigma_iqr"],
                "eta": m["outlier_fraction"], "bias_err": err["bias"], "sigma_iqr_err": err["sigma_iqr"],
                "eta_err": err["outlier_fraction"], "pit_ks": pit_ks, "cov68": cov.get(LEVELS[0], float("nan")),
                "cov95": cov.get(LEVELS[1], float("nan")), "completeness": completeness}

    overall = res.summary["metrics"]["all"]
    rows = [row("all", "all", has_truth, overall, res.summary["rail"].get("pit_ks", float("nan")),
                float(np.mean(detected)) if detected is not None else float("nan"))]
    for kind in ("mag", "z"):
        comp = ({(c["lo"], c["hi"]): c.get("completeness", float("nan"))
                 for c in detection_completeness(detected, values[kind], edges[kind])} if detected is not None
                else {})
        for r in res.metrics:
            if r["subset"] == "all" and r["binning"] == kind:
                sel = has_truth & (values[kind] >= r["lo"]) & (values[kind] < r["hi"])
                rows.append(row(kind, f"{r['lo']:g}-{r['hi']:g}", sel, r,
                                completeness=comp.get((r["lo"], r["hi"]), float("nan"))))
    bright = has_truth & (obj["mag"] < BRIGHT_CUT)  # the issue targets' F444W < 27
    rows.append(row("cut", f"<{BRIGHT_CUT:g}", bright, point_metrics(obj["zphot"][bright], obj["ztrue"][bright])
                    .as_dict()))
    for name, kind, lo, hi, *_ in subsets or ():
        sel = has_truth & (values[kind] >= lo) & (values[kind] < hi) if kind == "mag" else \
            has_truth & (values[kind] > lo) & (values[kind] <= hi)
        rows.append(row("subset", name, sel, point_metrics(obj["zphot"][sel], obj["ztrue"][sel]).as_dict()))
    return {"estimator": label, "rows": rows, "magnitude_band": res.summary["magnitude_band"],
            "train_cpu_min": train_cpu_s / 60.0}


#: Options of an earlier run that ``--reuse`` requires to be the same (its fields, models and timings fit).
REUSE_ARGS = ("labels", "train_tiles", "unlabelled_share", "test_tiles", "calib_tiles", "size")
#: Options that must also agree for DeepDISC's models and photo-z of an earlier run to be reused (otherwise only
#: the peers' are: e.g. a ``--tag`` variant with other ``--train-args``).
REUSE_DEEPDISC_ARGS = ("members", "epochs", "threads", "seed", "train_args", "tag")
#: Options that must also agree for the fine-tuned ensemble of an earlier run to be reused.
REUSE_FINETUNE_ARGS = ("pretrained", "pretrain", "pretrain_args", "finetune_args", "pretrain_cpu_min")


def previous_timings(workdir: Path, preset: str, args) -> dict:
    """``--reuse``: the timings of ``preset`` in the earlier run's ``accuracy<TAG>.json`` (else ``accuracy.json``)
    in ``workdir`` ({} if none).

    Files that exist are then reused with these timings instead of being made again (`run_preset`). Refuses an
    earlier run made with other `REUSE_ARGS`; drops its DeepDISC timings when `REUSE_DEEPDISC_ARGS` differ and its
    fine-tuning timings when `REUSE_FINETUNE_ARGS` differ.
    """
    path = workdir / f"accuracy{args.tag}.json"
    path = path if path.exists() else workdir / "accuracy.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    old = data.get("args", {})
    differ = [k for k in REUSE_ARGS if old.get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--reuse: {path} comes from a run with other options ("
                         + ", ".join(f"{k} {old.get(k)!r}, now {getattr(args, k)!r}" for k in differ) + ")")
    timings = dict(next((r["timings"] for r in data["results"] if r["preset"] == preset), {}))
    if any(old.get(k, "") != getattr(args, k) for k in REUSE_DEEPDISC_ARGS):
        timings = {k: v for k, v in timings.items()
                   if not k.startswith(("train_", "DeepDISC", "Consensus", "finetune_", FINETUNED, PRETRAINED))}
    if any(old.get(k) != getattr(args, k) for k in REUSE_FINETUNE_ARGS):
        timings = {k: v for k, v in timings.items() if not k.startswith(("finetune_", FINETUNED, PRETRAINED))}
    return timings


def _pretrained_rows(args) -> bool:
    return bool(args.pretrain or args.pretrained) and not args.peers_only


def run_preset(preset: str, args) -> dict:
    from rail.deepdisc.evaluation.io import read_truth

    out = Path(args.workdir) / preset
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, test, calib = simulate(out, preset, args)
    calib_suffix = "_calib" if args.calib_domain == "train" else "_calib_target"
    timings = {"simulate_s": time.perf_counter() - t0}
    scores = []
    truth = read_truth(test)
    prev = previous_timings(Path(args.workdir), preset, args) if args.reuse else {}

    def reused(key: str, path: Path):
        return prev.get(key) if path.exists() else None

    pretrained = _pretrained_rows(args)
    subsets = SUBSETS if pretrained else None
    if not args.peers_only:
        stem = f"{args.labels}{args.tag}"  # DeepDISC's files of this variant
        model = out / f"model_{stem}.pt"
        train_wall, train_cpu = reused("train_wall_s", model), reused("train_cpu_s", model)
        if args.skip_labels_only:
            runs = []
        elif train_wall is None or train_cpu is None:
            train_wall, train_cpu = _cli(["train", str(train), "-o", str(model), "--members", str(args.members),
                                          "--epochs", str(args.epochs), "--threads", str(args.threads),
                                          "--seed", str(args.seed), "--no-progress", "--device", "cpu",
                                          *shlex.split(args.train_args)], args.threads)
        if not args.skip_labels_only:
            single = one_member(model, out / f"model_{stem}_member0.pt")
            timings.update({"train_wall_s": train_wall, "train_cpu_s": train_cpu})
            runs = [("DeepDISC ensemble", model, out / f"pz_{stem}_ensemble.hdf5", train_cpu),
                    ("DeepDISC 1 member", single, out / f"pz_{stem}_member0.hdf5", train_cpu / args.members)]
        if pretrained:
            models, pre_times = run_pretrained(_cli, out, preset, args, train, args.test_library, reused)
            timings.update(pre_times)
            runs += [(label, path, out / f"pz_{stem}_{tag}.hdf5", cpu) for label, path, cpu, tag in models]
        for label, path, pz, cpu in runs:
            wall = reused(f"{label} estimate_s", pz)
            if wall is None:
                wall, _ = _cli(["estimate", str(path), str(test), "-o", str(pz), "--threads", str(args.threads),
                                "--device", "cpu", "--no-progress"], args.threads)
            timings[f"{label} estimate_s"] = wall
            scores.append(score(pz, truth, label, cpu, None if label == "DeepDISC 1 member" else subsets))
        # the consensus's DeepDISC input: the fine-tuned ensemble where there is one, else the labels-only one
        cons_label, cons_model, cons_pz = next((label, path, pz) for label, path, pz, _ in reversed(runs)
                                               if label in (FINETUNED, "DeepDISC ensemble"))
        calib_pz = cons_pz.with_name(cons_pz.stem + f"{calib_suffix}.hdf5")
        if not calib_pz.exists() or calib_pz.stat().st_mtime < cons_model.stat().st_mtime:  # none, or stale
            _cli(["estimate", str(cons_model), str(calib), "-o", str(calib_pz), "--threads", str(args.threads),
                  "--device", "cpu", "--no-progress"], args.threads)
    peers_dir = out / f"peers_{args.labels}"
    peers_dir.mkdir(exist_ok=True)
    peer_keys = [f"{p} {m}" for p in PEERS for m in ("inform_s", "inform_cpu_s", "estimate_s", "objects", "labels")]
    peer_files = [peers_dir / f"pz_{_slug(p)}{suffix}.hdf5" for p in PEERS
                  for suffix in ("",) + (() if args.peers_only else (calib_suffix,))]
    if prev and all(k in prev for k in peer_keys) and all(f.exists() for f in peer_files):
        timings.update({k: prev[k] for k in peer_keys})
    else:
        peer_times = run_peers(train, test, peers_dir, preset, None if args.peers_only else calib,
                               mdn_members=args.members, calib_suffix=calib_suffix)
        timings.update({f"{k} {m}": v for k, t in peer_times.items() for m, v in t.items()})
    scores += [score(peers_dir / f"pz_{_slug(name)}.hdf5", truth, name, timings[f"{name} inform_cpu_s"])
               for name in PEERS]
    if not args.peers_only:
        inputs = consensus_inputs(cons_label)
        files = {cons_label: (calib_pz, cons_pz),
                 **{p: (peers_dir / f"pz_{_slug(p)}{calib_suffix}.hdf5", peers_dir / f"pz_{_slug(p)}.hdf5")
                    for p in inputs[1:]}}
        cons_dir = out / f"consensus{args.tag}_{args.calib_domain}"
        cons_dir.mkdir(exist_ok=True)
        pz, t = run_consensus(_cli, cons_dir, {k: v[0] for k, v in files.items()}, {k: v[1] for k, v in files.items()},
                              calib, test, 1, inputs)
        timings.update({"Consensus fit_s": t["fit_s"], "Consensus estimate_s": t["estimate_s"]})
        scores.append(score(pz, truth, CONSENSUS_LABEL, t["fit_s"]))
        # the DeepDISC input alone, recalibrated on the same spec-z (`deepdisc combine` with one input)
        recal_dir = cons_dir / "recalibrated"
        recal_dir.mkdir(exist_ok=True)
        pz, t = run_consensus(_cli, recal_dir, {cons_label: calib_pz}, {cons_label: cons_pz}, calib, test, 1,
                              (cons_label,))
        timings.update({f"{RECALIBRATED} fit_s": t["fit_s"], f"{RECALIBRATED} estimate_s": t["estimate_s"]})
        scores.append(score(pz, truth, RECALIBRATED, t["fit_s"]))
    stars = truth.stars()
    return {"preset": preset, "timings": timings, "scores": scores, "n_test_objects": truth.n,
            "n_test_stars": 0 if stars is None else int(stars.sum()),
            **({} if args.peers_only else {"consensus_inputs": list(inputs)}),
            "labels": label_statistics(field_path(out, preset, args.labels), train, args.labels)}


def _fmt(x, spec=".3f"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _pm(r, key, spec=".3f"):
    """Value +- its bootstrap error."""
    return f"{_fmt(r[key], spec)} ± {_fmt(r[key + '_err'], '.3f')}" if np.isfinite(r[key]) else "-"


def _label_table(results: list[dict]) -> list[str]:
    lines = ["Training spec-z against the training field's catalogued galaxies:", "",
             "| preset | field tiles | training tiles | galaxies | spec-z | per field tile | % of galaxies | "
             "median F444W cat / spec-z | median z cat / spec-z | in 1.5<z<2.5 cat / spec-z | wrong |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|"]
    for res in results:
        s = res["labels"]
        lines.append(f"| {res['preset']} | {s['field_tiles']} | {s['train_tiles']} | {s['galaxies']} | "
                     f"{s['specz']} | {s['specz_per_tile']:.2f} | {100 * s['fraction']:.1f} | "
                     f"{s['mag_cat']:.2f} / {s['mag_spec']:.2f} | "
                     f"{s['z_cat']:.2f} / {s['z_spec']:.2f} | {s['desert_cat']:.2f} / {s['desert_spec']:.2f} | "
                     f"{_fmt(s['wrong'], '.3f')} |")
    return lines + [""]


def _score_table(res: dict, binning: str) -> list[str]:
    title = {"mag": f"magnitude bins in {res['scores'][0]['magnitude_band']}", "z": "true-redshift bins"}[binning]
    lines = [f"*{title}* (bias, sigma_IQR, eta ± bootstrap standard errors, {BOOTSTRAP} resamples)", "",
             "| estimator | train CPU min | bin | n | bias | sigma_IQR | eta | PIT KS | cov 68% | cov 95% | "
             "completeness |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in res["scores"]:
        for r in s["rows"]:
            if r["binning"] not in ("all", "cut", binning) or (r["binning"] == "cut" and binning != "mag"):
                continue
            lines.append(f"| {s['estimator']} | {s['train_cpu_min']:.2f} | {r['bin']} | {r['n']} | "
                         f"{_pm(r, 'bias', '+.3f')} | {_pm(r, 'sigma_iqr')} | {_pm(r, 'eta')} | {_fmt(r['pit_ks'])} | "
                         f"{_fmt(r['cov68'], '.2f')} | {_fmt(r['cov95'], '.2f')} | {_fmt(r['completeness'], '.2f')} |")
    return lines + [""]


def markdown(results: list[dict], args) -> str:
    deepdisc = ("DeepDISC R18, {args.members} members x {args.epochs} epochs, {args.threads} threads"
                .format(args=args) + (f", train options `{args.train_args}`" if args.train_args else "")
                if not args.peers_only else "peers only (no DeepDISC run)")
    labels = ("**realistic spec-z** (" + " ".join(f"{k} {v}" for k, v in REALISTIC_LABELS.items())
              + f"; DeepDISC trains on the tiles holding one plus {args.unlabelled_share:g} as many label-free "
              "tiles)" if args.labels == "realistic"
              else "**ablation: every catalogued galaxy labelled** (--label-fraction 1.0, all tiles trained on)")
    lines = [f"Benchmark set: per preset a {args.train_tiles}-tile training field (seed {TRAIN_SEED}, "
             f"`--sed-library {TRAIN_SED_LIBRARY}`) with {labels}, and an independent {args.test_tiles}-tile test "
             f"field (seed {TEST_SEED}, `--sed-library {args.test_library}`: a held-out SED family"
             + (f", its SEDs departing from the templates by {args.test_mismatch:g} x EAZY's template error function "
                "(`--sed-mismatch`)" if args.test_mismatch else MATCHED_TEMPLATES.get(args.test_library, ""))
             + "; nuisance "
             f"{' '.join(f'{k} {v}' for k, v in TEST_NUISANCE.items())}), {args.size}x{args.size}"
             f" px; {deepdisc}; peers informed on the same spec-z. Truth: true redshift of every test object. "
             f"Train CPU min: DeepDISC's training (one member: the ensemble's / members), the peers' inform.", ""]
    if _pretrained_rows(args):
        lines += [f"{FINETUNED}: `deepdisc pretrain --sed-library {pretrain_library(args.test_library)} "
                  f"{args.pretrain_args}` (label-complete simulations, domain randomisation; the test field's "
                  f"`{args.test_library}` family held out), then `deepdisc train --init PRETRAINED` with the "
                  f"labels-only options plus `{args.finetune_args}` (nothing frozen); {PRETRAINED}: the pretrained "
                  "network alone. "
                  "Their train CPU min include the pretraining's.", ""]
    if not args.peers_only:
        field = "test" if args.calib_domain == "target" else "training"
        lines += [f"{CONSENSUS_LABEL}: fitted on the spec-z of a {args.calib_tiles}-tile calibration field simulated "
                  f"like the {field} field (its nuisances and SED family, another seed, spec-z drawn like the "
                  f"training ones; `--calib-domain {args.calib_domain}`), then applied to the test field. "
                  f"{RECALIBRATED}: the consensus's DeepDISC input recalibrated alone on the same spec-z "
                  "(`deepdisc combine` with one input).", ""]
    lines += _label_table(results)
    for res in results:
        t = res["timings"]
        training = (f"; training {t['train_wall_s'] / 60:.1f} min wall, {t['train_cpu_s'] / 60:.1f} CPU min, budget "
                    f"{CPU_MINUTES_BUDGET:.0f}" if "train_wall_s" in t else "")
        stars = (f", {res['n_test_stars']} of them stars, left out of the metrics" if res.get("n_test_stars")
                 else "")
        lines += [f"**{res['preset']}** ({res['n_test_objects']} test objects{stars}{training})", ""]
        lines += _score_table(res, "mag") + _score_table(res, "z")
    if not args.peers_only:
        lines += ["Issue 18 targets (the recipe's ensemble: pretrained + fine-tuned where the run has it): "
                  "sigma_IQR and eta at or below EAZY's for F444W < 27; eta below every peer's for all galaxies:", "",
                  "| preset | ensemble | F444W < 27 sigma_IQR ens / EAZY | F444W < 27 eta ens / EAZY | "
                  "all eta ens / best peer | met |", "|---|---|---|---|---|---|"]
        for res in results:
            by = {s["estimator"]: s["rows"] for s in res["scores"]}
            name = FINETUNED if FINETUNED in by else "DeepDISC ensemble"
            cut = f"<{BRIGHT_CUT:g}"
            e_cut, z_cut = (next(r for r in by[k] if r["binning"] == "cut" and r["bin"] == cut)
                            for k in (name, "EAZY"))
            e_all = by[name][0]
            best = min(PEERS, key=lambda p: by[p][0]["eta"])
            met = (e_cut["sigma_iqr"] <= z_cut["sigma_iqr"] and e_cut["eta"] <= z_cut["eta"]
                   and e_all["eta"] < by[best][0]["eta"])
            lines.append(f"| {res['preset']} | {name} | {_pm(e_cut, 'sigma_iqr')} / {_pm(z_cut, 'sigma_iqr')} | "
                         f"{_pm(e_cut, 'eta')} / {_pm(z_cut, 'eta')} | {_pm(e_all, 'eta')} / "
                         f"{_fmt(by[best][0]['eta'])} ({best}) | {'yes' if met else 'no'} |")
        lines.append("")
        if _pretrained_rows(args) and not args.skip_labels_only:
            lines += acceptance_table(results)
        lines += consensus_targets(results, LEVELS)
    pretrained = [FINETUNED, PRETRAINED] if _pretrained_rows(args) else []
    labels_only = [] if args.skip_labels_only else ["DeepDISC 1 member", "DeepDISC ensemble"]
    names = ([] if args.peers_only else [*labels_only, *pretrained, RECALIBRATED, CONSENSUS_LABEL]) \
        + list(PEERS)
    lines += ["Speed on the test field (same objects; DeepDISC end to end incl. model load, peers estimate "
              "only; objects/s, peers' inform seconds in brackets):", "",
              "| preset | objects | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for res in results:
        t, n = res["timings"], res["n_test_objects"]
        cells = [f"{n / t[f'{k} estimate_s']:.1f}" for k in names if k.startswith(("DeepDISC", CONSENSUS_LABEL))]
        cells += [f"{t[f'{p} objects'] / t[f'{p} estimate_s']:.1f} ({t[f'{p} inform_s']:.1f})" for p in PEERS]
        lines.append(f"| {res['preset']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="folder for the fields, models and outputs (re-used)")
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--labels", choices=tuple(LABELS), default="realistic",
                   help="realistic spec-z (default) or complete (the fully labelled ablation)")
    p.add_argument("--train-tiles", type=int, default=None, help="tiles of the training field (default "
                   + ", ".join(f"{v} with {k} labels" for k, v in DEFAULT_TRAIN_TILES.items()) + ")")
    p.add_argument("--unlabelled-share", type=float, default=0.25, help="realistic labels: label-free tiles "
                   "trained on per tile holding a spec-z (default 0.25)")
    p.add_argument("--test-tiles", type=int, default=120, help="tiles of the test field (default 120)")
    p.add_argument("--calib-domain", choices=CALIB_DOMAINS, default=CALIB_DOMAINS[0],
                   help="the consensus's calibration field is simulated like the test field (target, default: "
                        "spec-z in the images estimated, as in a survey) or like the training field (train)")
    p.add_argument("--calib-tiles", type=int, default=None, help="tiles of the consensus's calibration field "
                   "(its tiles with a spec-z are estimated; default "
                   + ", ".join(f"{v} with {k} labels" for k, v in DEFAULT_CALIB_TILES.items()) + ")")
    p.add_argument("--size", type=int, default=128, help="tile side, px (default 128)")
    p.add_argument("--members", type=int, default=3, help="ensemble members (default 3)")
    p.add_argument("--epochs", type=int, default=12, help="epochs per member (default 12)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=1234, help="training seed (default 1234)")
    p.add_argument("--train-args", default="", help="extra `deepdisc train` options for ablations, e.g. "
                   "'--head-dropout 0' (default none)")
    p.add_argument("--peers-only", action="store_true", help="skip DeepDISC: simulate, run and score the peers")
    p.add_argument("--pretrained", default=None, help="a `deepdisc pretrain` model (PATH, `{preset}` replaced): "
                   "adds the rows '" + FINETUNED + "' (the ensemble fine-tuned from it, same members and epochs) and '"
                   + PRETRAINED + "', and the pretraining acceptance table")
    p.add_argument("--pretrain", action="store_true", help="pretrain first (deepdisc pretrain --sed-library: every "
                   f"family but the test field's {TEST_SED_LIBRARY}; resumed when killed), into the preset's folder "
                   "unless --pretrained names the file (an existing file is used as it is); then as --pretrained")
    p.add_argument("--pretrain-args", default=PRETRAIN_ARGS, help=f"deepdisc pretrain options (default "
                   f"'{PRETRAIN_ARGS}': ~40 CPU minutes)")
    p.add_argument("--pretrain-cpu-min", type=float, default=None, help="CPU minutes of the pretraining (default: "
                   "the pretrained artifact's provenance cpu_seconds)")
    p.add_argument("--finetune-args", default=FINETUNE_ARGS, help="deepdisc train options of the fine-tuning, after "
                   f"--train-args (default '{FINETUNE_ARGS}')")
    p.add_argument("--test-library", default=TEST_SED_LIBRARY, choices=("fsps", "cww"),
                   help=f"SED family of the test field, held out from DeepDISC's training and its pretraining "
                   f"(default {TEST_SED_LIBRARY}, EAZY's own templates; cww: BPZ's CWWSB4, so EAZY fits templates "
                   "that are not the galaxies')")
    p.add_argument("--test-mismatch", type=float, default=0.0, help="template mismatch of the test (and target "
                   "calibration) field's galaxies: `deepdisc simulate --sed-mismatch`, in units of EAZY's template "
                   "error function (default 0: the family's templates exactly; with fsps, EAZY's own)")
    p.add_argument("--tag", default="", help="suffix of DeepDISC's model, photo-z and result files, to keep "
                   "variants (other --train-args) side by side in one workdir; with --reuse the peers of the "
                   "untagged run are reused")
    p.add_argument("--reuse", action="store_true", help="reuse the models, photo-z files and timings of the earlier "
                   "run in --workdir (its accuracy.json; same options required) instead of making them again")
    p.add_argument("--skip-labels-only", action="store_true", help="with --pretrain or --pretrained: leave out the "
                   "labels-only ensemble and its one-member row (about 50 CPU minutes; measured in earlier runs) and "
                   "the pretraining acceptance table that compares with it")
    args = p.parse_args(argv)
    if args.skip_labels_only and not (args.pretrain or args.pretrained):
        p.error("--skip-labels-only needs --pretrain or --pretrained: the labels-only ensemble is the only DeepDISC")
    if (args.pretrain or args.pretrained) and args.peers_only:
        p.error("--pretrain and --pretrained need DeepDISC: drop --peers-only")
    if args.train_tiles is None:
        args.train_tiles = DEFAULT_TRAIN_TILES[args.labels]
    if args.calib_tiles is None:
        args.calib_tiles = DEFAULT_CALIB_TILES[args.labels]
    if args.labels == "complete":
        args.unlabelled_share = 0.0  # every tile holds labels and is trained on
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for preset in args.presets:
        t0 = time.perf_counter()
        results.append(run_preset(preset, args))
        print(f"{preset}: done in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
        text = markdown(results, args)
        (workdir / f"accuracy{args.tag}.md").write_text(text)
        (workdir / f"accuracy{args.tag}.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1,
                                                          default=float))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
