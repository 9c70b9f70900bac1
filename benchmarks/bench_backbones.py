"""ResNet-50 vs MViTv2 against the training-set size, from random initialisation and pretrained (Merz+25 Fig. 6).

The data-size experiment of Merz et al. (2025) on our simulator: for each backbone (``--backbones``, default
ResNet-50 and MViTv2-T) and each training-set size (``--sizes``, label-complete simulated tiles: every galaxy has
its true redshift, like their JAGUAR runs), one network is trained

* from random initialisation, and
* from a network pretrained on label-complete simulations with domain-randomised nuisances
  (`rail.deepdisc.pretraining`, one pretraining per backbone; the paper pretrains on GalaxiesML instead),

for the same number of optimiser steps (``--steps``, so a size differs only in the data it sees). Every network
then estimates redshifts of an evaluation field (another seed, detection + catalog-box fallback as
``deepdisc estimate``); bias, sigma_IQR and the outlier fraction eta of ``zmode``
(`rail.deepdisc.evaluation.metrics`) are computed on the galaxies that *every* network detected (the paper's
common set), with bootstrap errors (``--bootstrap`` resamples of that set). When fewer than ``--min-common``
galaxies are in the common set (short runs detect little), the metrics use every galaxy and say so.

CPU time (``time.process_time``, all threads of this process) is recorded for every run.

Recorded run, the defaults (about 100 CPU-minutes, one hour on 2 cores; benchmarks/README.md, section "Backbones
and training-set size"; the README says what the paper-scale experiment needs)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_backbones.py --threads 2 --workdir bench_bb \\
        --png benchmarks/backbones.png --json backbones.json

A stopped run goes on with ``--resume`` (same arguments): finished pretrainings and runs are kept.

Smoke run (a few minutes)::

    PYTHONPATH=src python benchmarks/bench_backbones.py --tiny
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ("bias", "sigma_iqr", "eta")
LABELS = {"bias": "bias (median dz/(1+z))", "sigma_iqr": "sigma_IQR", "eta": "outlier fraction eta"}
INITS = ("random", "pretrained")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="smoke-test sizes (minutes)")
    p.add_argument("--backbones", nargs="+", default=["resnet50", "mvitv2_tiny"])
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64], help="training tiles (label-complete)")
    p.add_argument("--steps", type=int, default=250, help="optimiser steps of every training run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tile-size", type=int, default=128)
    p.add_argument("--eval-tiles", type=int, default=48)
    p.add_argument("--tiles-per-chunk", type=int, default=40, help="pretraining: simulated tiles per chunk")
    p.add_argument("--chunks-per-epoch", type=int, default=5, help="pretraining")
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (random init and pretraining)")
    p.add_argument("--finetune-lr", type=float, default=3e-4, help="learning rate from the pretrained network")
    p.add_argument("--head-hidden", type=int, nargs="+", default=[256, 64])
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples for the errors")
    p.add_argument("--min-common", type=int, default=20, help="fewest common detections to use that set")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", type=Path, help="keep the models here (default: a temporary folder)")
    p.add_argument("--reuse-pretrained", action="store_true",
                   help="reuse WORKDIR/pretrained_BACKBONE.pt where it exists (its CPU time is then not counted)")
    p.add_argument("--resume", action="store_true",
                   help="go on with a stopped run in WORKDIR: its pretrainings and finished runs are kept, with their "
                        "recorded CPU times")
    p.add_argument("--png", type=Path, help="write the figure here")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--replot", type=Path, metavar="JSON", help="only redraw --png from a --json of an earlier run")
    args = p.parse_args(argv)
    if args.tiny:
        args.backbones, args.sizes, args.steps, args.tile_size = ["resnet18", "mvitv2_tiny"], [3, 5, 8], 2, 96
        args.eval_tiles, args.tiles_per_chunk, args.chunks_per_epoch, args.pretrain_epochs = 4, 2, 1, 1
        args.bootstrap, args.head_hidden = 20, [32, 16]
    if args.resume and args.workdir is None:
        p.error("--resume needs --workdir (the stopped run's folder)")
    if min(args.sizes) < 2:
        p.error("--sizes: training needs at least 2 labelled tiles (one for validation)")
    return args


def bootstrap_metrics(zphot, ztrue, n_boot, seed):
    """Metrics of ``zphot`` against ``ztrue`` and their bootstrap standard deviations."""
    from rail.deepdisc.evaluation.metrics import outlier_fraction, photoz_bias, sigma_iqr

    funcs = {"bias": photoz_bias, "sigma_iqr": sigma_iqr, "eta": outlier_fraction}
    values = {k: float(f(zphot, ztrue)) for k, f in funcs.items()}
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in funcs}
    for _ in range(n_boot):
        pick = rng.integers(0, len(ztrue), len(ztrue))
        for k, f in funcs.items():
            draws[k].append(float(f(zphot[pick], ztrue[pick])))
    errors = {k: float(np.std(v)) for k, v in draws.items()}
    return values, errors


def simulate(args):
    from rail.deepdisc.simulation import SimulationSettings, simulate_tileset

    complete = {"label_fraction": 1.0, "wrong_label_fraction": 0.0}
    pool = simulate_tileset(SimulationSettings(n_tiles=max(args.sizes), tile_size=args.tile_size, seed=101,
                                               **complete), progress_bar=False)
    field = simulate_tileset(SimulationSettings(n_tiles=args.eval_tiles, tile_size=args.tile_size, seed=202),
                             progress_bar=False)
    return pool, field


def subset(tileset, n_tiles):
    """The first ``n_tiles`` tiles of a TileSet (nested training sets)."""
    import dataclasses

    keep = tileset.objects["tile"] < n_tiles
    return dataclasses.replace(
        tileset, images=tileset.images[:n_tiles], segmaps=tileset.segmaps[:n_tiles],
        tiles={k: v[:n_tiles] for k, v in tileset.tiles.items()},
        objects={k: v[keep] for k, v in tileset.objects.items()},
    )


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        table = json.loads(args.replot.read_text())["table"]
        return plot(table, args.png or args.replot.with_suffix(".png"))
    if args.workdir is not None:
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="bench_backbones_") as tmp:
        return run(args, Path(tmp))


def run(args, work: Path):
    """Simulate, pretrain, train every (backbone, size, init), evaluate; print the table, draw the figure."""
    import torch

    from rail.deepdisc.atomic import write_text_atomic
    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import save_artifact
    from rail.deepdisc.pretraining.run import pretrain_from_options
    from rail.deepdisc.training.loss_curves import write_loss_curves
    from rail.deepdisc.training.run import train_from_options

    torch.set_num_threads(args.threads)
    work.mkdir(parents=True, exist_ok=True)
    cpu0 = time.process_time()
    pool, field = simulate(args)
    cpu = {"simulate": time.process_time() - cpu0}
    print(f"training pool: {pool.n_tiles} tiles of {args.tile_size} px, {pool.n_objects} objects; evaluation "
          f"field: {field.n_tiles} tiles, {field.n_primary} objects", flush=True)
    common = {"members": 1, "seed": args.seed, "progress_bar": False, "device": "cpu", "num_threads": args.threads,
              "head_hidden": args.head_hidden, "batch_size": args.batch_size, "calibrate_widths": False}
    pretrained, reused_s = {}, 0.0  # reused_s: CPU time recorded by the stopped run that --resume goes on with
    for backbone in args.backbones:
        t0 = time.process_time()
        record = work / f"pretrained_{backbone}.json"
        if args.resume and record.exists():
            pretrained[backbone] = work / f"pretrained_{backbone}.pt"
            cpu[f"pretrain {backbone}"] = json.loads(record.read_text())["cpu_s"]
            reused_s += cpu[f"pretrain {backbone}"]
            print(f"resuming: {pretrained[backbone]} kept", flush=True)
            continue
        if args.reuse_pretrained and (work / f"pretrained_{backbone}.pt").exists():
            pretrained[backbone] = work / f"pretrained_{backbone}.pt"
            print(f"reusing {pretrained[backbone]}", flush=True)
            continue
        art = pretrain_from_options(
            {"backbone": backbone, "tile_size": args.tile_size, "tiles_per_chunk": args.tiles_per_chunk,
             "chunks_per_epoch": args.chunks_per_epoch, "epochs": args.pretrain_epochs, "learning_rate": args.lr,
             "validation_tiles": max(2, args.tiles_per_chunk // 2), "seed": 11, "progress_bar": False,
             "device": "cpu", "num_threads": args.threads, "head_hidden": args.head_hidden,
             "batch_size": args.batch_size},
            model_path=work / f"pretrained_{backbone}.pt",
        )
        pretrained[backbone] = save_artifact(art, work / f"pretrained_{backbone}.pt")
        cpu[f"pretrain {backbone}"] = time.process_time() - t0
        write_text_atomic(json.dumps({"cpu_s": cpu[f"pretrain {backbone}"]}), record)
        print(f"pretrained {backbone}: {cpu[f'pretrain {backbone}'] / 60:.1f} CPU-min", flush=True)
    runs = []
    for backbone in args.backbones:
        for n_tiles in args.sizes:
            train = subset(pool, n_tiles)
            epochs = max(1, math.ceil(args.steps * args.batch_size / max(1, round(0.9 * n_tiles))))
            for init in INITS:
                record = work / f"{backbone}_{n_tiles}_{init}.npz"
                if args.resume and record.exists():
                    with np.load(record, allow_pickle=False) as saved:
                        runs.append(json.loads(str(saved["info"])) | {"zmode": saved["zmode"],
                                                                      "detected": saved["detected"]})
                    reused_s += runs[-1]["cpu_train_s"] + runs[-1]["cpu_estimate_s"]
                    print(f"resuming: {backbone} {n_tiles} tiles {init} kept", flush=True)
                    continue
                opts = {**common, "backbone": backbone, "epochs": epochs, "patience": epochs,
                        "learning_rate": args.lr if init == "random" else args.finetune_lr}
                if init == "pretrained":
                    opts["init_model"] = str(pretrained[backbone])
                t0 = time.process_time()
                # no model path: per-epoch checkpoints of a ResNet-50 (hundreds of epochs on the smallest sets)
                # would cost more than the training; a stopped run resumes whole runs instead (--resume)
                art = train_from_options(train, opts)
                cpu_train = time.process_time() - t0
                save_artifact(art, work / f"{backbone}_{n_tiles}_{init}.pt")  # for `deepdisc features`
                write_loss_curves(art, work / f"{backbone}_{n_tiles}_{init}_loss.json",
                                  work / f"{backbone}_{n_tiles}_{init}_loss.png")
                t0 = time.process_time()
                pred = EnsemblePredictor.from_artifact(art, device="cpu").predict(field, InferenceSettings())
                info = {"backbone": backbone, "tiles": n_tiles, "init": init, "epochs": epochs,
                        "n_labelled": int(np.isfinite(train.objects["redshift"]).sum()),
                        "cpu_train_s": cpu_train, "cpu_estimate_s": time.process_time() - t0}
                runs.append(info | {"zmode": pred.zmode, "detected": pred.detected.astype(bool)})
                _save_run(record, info, pred.zmode, pred.detected.astype(bool))
                print(f"{backbone} {n_tiles} tiles {init}: {epochs} epochs, {cpu_train / 60:.1f} CPU-min, "
                      f"{int(pred.detected.sum())} of {len(pred.zmode)} detected", flush=True)
    table, differences = evaluate(runs, field, args)
    cpu["total"] = time.process_time() - cpu0 + reused_s
    print_table(table, cpu)
    print_differences(differences)
    if args.png:
        plot(table, args.png)
    if args.json:
        args.json.write_text(json.dumps({"table": table, "differences": differences, "cpu_s": cpu, "args": vars(args)},
                                        default=str, indent=1))
    return table


def _save_run(path: Path, info, zmode, detected):
    """One finished run's record (what ``--resume`` keeps), written atomically."""
    from rail.deepdisc.atomic import atomic_path

    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, info=json.dumps(info), zmode=np.asarray(zmode, float), detected=np.asarray(detected, bool))


def evaluate(runs, field, args):
    """Metrics of every run on the common set of detected galaxies (or every galaxy when it is too small)."""
    prim = field.primary_objects()
    galaxy = ~prim["true_is_star"].astype(bool)
    ztrue = np.asarray(prim["redshift_true"], float)
    together = galaxy & np.logical_and.reduce([r["detected"] for r in runs])
    use = together if together.sum() >= args.min_common else galaxy
    subset_name = (f"{int(together.sum())} galaxies detected by every network" if use is together else
                   f"all {int(galaxy.sum())} galaxies (only {int(together.sum())} detected by every network)")
    table = []
    for r in runs:
        values, errors = bootstrap_metrics(r["zmode"][use], ztrue[use], args.bootstrap, args.seed)
        table.append({k: v for k, v in r.items() if k not in ("zmode", "detected")}
                     | {"metrics": values, "errors": errors, "n_detected": int(r["detected"].sum()),
                        "n_eval": int(use.sum()), "eval_set": subset_name})
    return table, paired_differences(runs, ztrue[use], use, args.bootstrap, args.seed)


def paired_differences(runs, ztrue, use, n_boot, seed):
    """sigma_IQR and eta of pretrained - random (per backbone) and of each backbone - the first (per init), per size.

    The runs share their evaluation galaxies, so the errors come from resampling the galaxies once for both runs
    of a difference (a paired bootstrap; the per-run errors of the table overstate the differences' errors).
    """
    from rail.deepdisc.evaluation.metrics import outlier_fraction, sigma_iqr

    by_key = {(r["backbone"], r["tiles"], r["init"]): r["zmode"][use] for r in runs}
    backbones = list(dict.fromkeys(r["backbone"] for r in runs))
    pairs = [(f"{b}: pretrained - random", (b, "pretrained"), (b, "random")) for b in backbones]
    pairs += [(f"{init}: {b} - {backbones[0]}", (b, init), (backbones[0], init))
              for init in INITS for b in backbones[1:]]
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(ztrue), len(ztrue)) for _ in range(n_boot)]
    out = []
    for name, (b1, i1), (b2, i2) in pairs:
        for n_tiles in sorted({r["tiles"] for r in runs}):
            z1, z2 = by_key.get((b1, n_tiles, i1)), by_key.get((b2, n_tiles, i2))
            if z1 is None or z2 is None:
                continue
            row = {"comparison": name, "tiles": n_tiles}
            for key, f in (("sigma_iqr", sigma_iqr), ("eta", outlier_fraction)):
                draws = [f(z1[p], ztrue[p]) - f(z2[p], ztrue[p]) for p in picks]
                row[key] = [float(f(z1, ztrue) - f(z2, ztrue)), float(np.std(draws))]
            out.append(row)
    return out


def print_differences(differences):
    print("\npaired differences (same galaxies, paired bootstrap): sigma_IQR / eta")
    print("| comparison | training tiles | sigma_IQR | eta |")
    print("|---|---|---|---|")
    for d in differences:
        print(f"| {d['comparison']} | {d['tiles']} | {d['sigma_iqr'][0]:+.3f} ± {d['sigma_iqr'][1]:.3f} | "
              f"{d['eta'][0]:+.3f} ± {d['eta'][1]:.3f} |")


def print_table(table, cpu):
    print(f"\nevaluation set: {table[0]['eval_set']}")
    print("| backbone | init | training tiles (labelled objects) | epochs | bias | sigma_IQR | eta | detected | "
          "CPU-min train + estimate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        m, e = r["metrics"], r["errors"]
        cells = " | ".join(f"{m[k]:+.3f} ± {e[k]:.3f}" if k == "bias" else f"{m[k]:.3f} ± {e[k]:.3f}"
                           for k in METRICS)
        minutes = (r["cpu_train_s"] + r["cpu_estimate_s"]) / 60
        print(f"| {r['backbone']} | {r['init']} | {r['tiles']} ({r['n_labelled']}) | {r['epochs']} | {cells} | "
              f"{r['n_detected']} | {minutes:.1f} |")
    print("\nCPU-min: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in cpu.items()))


def plot(table, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    backbones = list(dict.fromkeys(r["backbone"] for r in table))
    colours = dict(zip(backbones, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, key in zip(axes, METRICS):
        for k, backbone in enumerate(backbones):
            for init, style in zip(INITS, ("--", "-")):
                rows = [r for r in table if r["backbone"] == backbone and r["init"] == init]
                x = np.array([r["n_labelled"] for r in rows], float) * (1 + 0.03 * (2 * k + (init == "pretrained")))
                ax.errorbar(x, [r["metrics"][key] for r in rows], yerr=[r["errors"][key] for r in rows],
                            color=colours[backbone], ls=style, marker="o" if init == "pretrained" else "s",
                            mfc="white" if init == "random" else colours[backbone], capsize=3,
                            label=f"{backbone}, {init}")
        ax.set_xscale("log")
        ticks = sorted({r["n_labelled"] for r in table})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labelled training objects (log scale)")
        ax.set_title(LABELS[key])
        if key == "bias":
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Photo-z against training-set size (evaluation: {table[0]['eval_set']}; bootstrap 1-sigma)",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
