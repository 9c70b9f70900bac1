"""Does pretraining on label-complete simulations help where real spec-z labels are missing?

Three models, one evaluation field:

* **labels only**: ``deepdisc train`` on field A, where only bright (F444W < ``--label-mag``), low-redshift
  (z < ``--label-zmax``) galaxies carry a label, like real spec-z samples;
* **pretrained**: ``deepdisc pretrain`` on streamed simulations (fresh seeds, domain-randomised nuisances),
  every object labelled with its true redshift; shown without fine-tuning for reference;
* **pretrained + fine-tuned**: the pretrained model trained further on field A's labels (``--init``), in two
  recipes: *frozen head* (low learning rate, backbone, FPN and redshift head frozen throughout: detection
  adapts and the widths are recalibrated, the pretrained colour-redshift mapping is kept), *gentle* (the same
  with the redshift head trained) and *strong* (3x the learning rate, backbone and FPN released after the
  first epoch).

Evaluation: every galaxy (stars excluded) of field B, simulated with another seed and perturbed nuisance
settings (PSF 10% wider, 0.3 mag shallower, correlated noise, 10% smaller galaxies, another SED mix), on
catalog boxes (``forced_all``, so detection quality does not enter). Reported per subset: sigma_IQR and the
outlier fraction (|dz|/(1+z) > 0.15) of ``zmode``; faint = F444W >= 27 (true magnitude), bright < 27.

Full run (20-30 minutes on 2 busy shared cores; figures in benchmarks/README.md, section "Pretraining")::

    OMP_NUM_THREADS=2 PYTHONPATH=src nice -n 10 python benchmarks/bench_pretrain.py --threads 2

Smoke run (about a minute)::

    PYTHONPATH=src python benchmarks/bench_pretrain.py --tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FAINT_MAG = 27.0
HIGH_Z = 3.0
FIELD_B_NUISANCES = {
    "psf_fwhm_scale": 1.1,
    "depth_offset": -0.3,
    "noise_correlation_px": 0.6,
    "size_scale": 0.9,
    "starburst_weight": 1.5,
    "emission_line_scale": 0.8,
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    p.add_argument("--tile-size", type=int, default=128)
    p.add_argument("--train-tiles", type=int, default=32, help="tiles of field A")
    p.add_argument("--eval-tiles", type=int, default=32, help="tiles of field B")
    p.add_argument("--label-mag", type=float, default=26.5, help="labelled if F444W brighter than this")
    p.add_argument("--label-zmax", type=float, default=3.0, help="labelled if z below this")
    p.add_argument("--tiles-per-chunk", type=int, default=20)
    p.add_argument("--chunks-per-epoch", type=int, default=4)
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--scratch-epochs", type=int, default=8)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--head-hidden", type=int, nargs="+", default=[256, 64], help="redshift MLP (every model)")
    p.add_argument("--lr", type=float, default=1e-3, help="labels-only and pretraining learning rate")
    p.add_argument("--gentle-lr", type=float, default=1e-4, help="fine-tuning lr, backbone+FPN frozen throughout")
    p.add_argument("--strong-lr", type=float, default=3e-4, help="fine-tuning lr, backbone+FPN frozen 1 epoch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", type=Path, help="keep the models here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="also write the table as JSON")
    p.add_argument("--pretrained", type=Path, help="reuse this pretrained model instead of pretraining")
    p.add_argument("--finetune-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training option of both fine-tuning recipes (JSON value), e.g. head_steps=0")
    args = p.parse_args()
    if args.tiny:
        args.tile_size, args.train_tiles, args.eval_tiles = 64, 8, 6
        args.tiles_per_chunk, args.chunks_per_epoch, args.pretrain_epochs = 4, 2, 1
        args.scratch_epochs, args.finetune_epochs = 2, 2
    return args


def spec_z_like(tileset, mag_limit, z_max):
    """Field A with labels only for bright, low-z galaxies (like a real spec-z sample)."""
    obj = tileset.objects
    keep = (obj["true_mag_F444W"] < mag_limit) & (obj["redshift_true"] < z_max) & ~obj["true_is_star"].astype(bool)
    objects = {**obj, "redshift": np.where(keep, obj["redshift_true"], np.nan)}
    return dataclasses.replace(tileset, objects=objects)


def evaluate(artifact, tileset):
    from rail.deepdisc.evaluation.metrics import outlier_fraction, sigma_iqr
    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings

    pred = EnsemblePredictor.from_artifact(artifact, device="cpu").predict(
        tileset, InferenceSettings(forced_all=True)
    )
    prim = tileset.primary_objects()
    galaxy = ~prim["true_is_star"].astype(bool)
    z, mag, zphot = prim["redshift_true"], prim["true_mag_F444W"], pred.zmode
    subsets = {
        "all": galaxy,
        "bright": galaxy & (mag < FAINT_MAG),
        "faint": galaxy & (mag >= FAINT_MAG),
        "z>3": galaxy & (z > HIGH_Z),
    }
    return {
        name: {
            "n": int(sel.sum()),
            "sigma_iqr": float(sigma_iqr(zphot[sel], z[sel])) if sel.sum() else float("nan"),
            "outliers": float(outlier_fraction(zphot[sel], z[sel])) if sel.sum() else float("nan"),
        }
        for name, sel in subsets.items()
    }


def main():
    args = parse_args()
    if args.workdir is not None:
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:  # removed afterwards (models are large)
        return run(args, Path(tmp))


def run(args, work: Path):
    """Simulate, pretrain, fine-tune and evaluate in ``work``; print the table."""
    import torch

    from rail.deepdisc.model.artifact import load_artifact, save_artifact
    from rail.deepdisc.pretraining.run import pretrain_from_options
    from rail.deepdisc.simulation import SimulationSettings, simulate_tileset
    from rail.deepdisc.training.run import train_from_options

    torch.set_num_threads(args.threads)
    work.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.time()
    field_a = spec_z_like(
        simulate_tileset(SimulationSettings(n_tiles=args.train_tiles, tile_size=args.tile_size, seed=101),
                         progress_bar=False),
        args.label_mag, args.label_zmax,
    )
    field_b = simulate_tileset(
        SimulationSettings(n_tiles=args.eval_tiles, tile_size=args.tile_size, seed=202, **FIELD_B_NUISANCES),
        progress_bar=False,
    )
    timings["simulate fields"] = time.time() - t0
    n_lab = int(np.isfinite(field_a.objects["redshift"]).sum())
    print(f"field A: {field_a.n_tiles} tiles, {field_a.n_objects} objects, {n_lab} labelled "
          f"(F444W < {args.label_mag}, z < {args.label_zmax}); field B: {field_b.n_tiles} tiles, "
          f"{field_b.n_primary} objects")
    common = {"members": 1, "seed": 7, "progress_bar": False, "device": "cpu", "num_threads": args.threads,
              "head_hidden": args.head_hidden}

    t0 = time.time()
    scratch = train_from_options(field_a, {**common, "epochs": args.scratch_epochs, "learning_rate": args.lr,
                                           "patience": args.scratch_epochs}, model_path=work / "scratch.pt")
    timings["labels only: train"] = time.time() - t0

    t0 = time.time()
    pretrained_path = args.pretrained or work / "pretrained.pt"
    pretrained = load_artifact(args.pretrained) if args.pretrained else pretrain_from_options(
        {"tile_size": args.tile_size, "tiles_per_chunk": args.tiles_per_chunk,
         "chunks_per_epoch": args.chunks_per_epoch, "epochs": args.pretrain_epochs, "learning_rate": args.lr,
         "lr_steps": [max(args.pretrain_epochs - 1, 1)], "seed": 11, "progress_bar": False, "device": "cpu",
         "num_threads": args.threads, "head_hidden": args.head_hidden},
        model_path=work / "pretrained.pt",
    )
    if not args.pretrained:
        save_artifact(pretrained, pretrained_path)
    timings["pretrain"] = time.time() - t0

    finetune_options = {k: json.loads(v) for k, v in (opt.split("=", 1) for opt in args.finetune_option)}
    finetuned = {}
    recipes = (
        ("frozen head", args.gentle_lr, args.finetune_epochs, ["backbone", "fpn", "redshift_head"]),
        ("gentle", args.gentle_lr, args.finetune_epochs, ["backbone", "fpn"]),
        ("strong", args.strong_lr, 1, ["backbone", "fpn"]),
    )
    for label, lr, freeze_epochs, freeze in recipes:
        t0 = time.time()
        finetuned[label] = train_from_options(
            field_a,
            {**common, "epochs": args.finetune_epochs, "learning_rate": lr, "patience": args.finetune_epochs,
             "init_model": str(pretrained_path), "freeze": freeze, "freeze_epochs": freeze_epochs,
             **finetune_options},
            model_path=work / f"finetuned_{label.replace(' ', '_')}.pt",
        )
        timings[f"fine-tune ({label})"] = time.time() - t0

    t0 = time.time()
    models = {
        "labels only": scratch,
        "pretrained (no fine-tuning)": pretrained,
        f"pretrained + fine-tuned, frozen head (lr {args.gentle_lr:g}, backbone+FPN+head frozen)":
            finetuned["frozen head"],
        f"pretrained + fine-tuned, gentle (lr {args.gentle_lr:g}, backbone+FPN frozen)": finetuned["gentle"],
        f"pretrained + fine-tuned, strong (lr {args.strong_lr:g}, frozen 1 epoch)": finetuned["strong"],
    }
    rows = {name: evaluate(art, field_b) for name, art in models.items()}
    timings["evaluate"] = time.time() - t0
    print_table(rows, pretrained["provenance"])
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
          + f"; total {sum(timings.values()):.0f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timings": timings, "args": vars(args)}, default=str,
                                        indent=1))


def print_table(rows, provenance):
    subsets = list(next(iter(rows.values())))
    print(f"\npretraining: {provenance['tiles_seen']} simulated tiles ({provenance['objects_seen']} objects), "
          f"{provenance['epochs']} epochs")
    head = "| model | " + " | ".join(f"{s} sigma_IQR | {s} outliers" for s in subsets) + " |"
    print(head)
    print("|" + "---|" * (1 + 2 * len(subsets)))
    for name, res in rows.items():
        cells = " | ".join(f"{res[s]['sigma_iqr']:.3f} | {res[s]['outliers']:.3f}" for s in subsets)
        print(f"| {name} | {cells} |")
    first = next(iter(rows.values()))
    print("objects per subset: " + ", ".join(f"{s} {first[s]['n']}" for s in subsets))


if __name__ == "__main__":
    main()
