"""``deepdisc train``: train a weighted DeepDISC ensemble on a TileSet with spec-z and write the model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rail.deepdisc.exceptions import ConfigError

HELP = "train a DeepDISC ensemble on a TileSet with spec-z labels"
EXAMPLES = """  deepdisc train tiles.h5 -o model.pt                        # 10 ResNet-18 members, 20 epochs
  deepdisc train tiles.h5 -o model.pt --members 3 --epochs 5 --seed 7
  deepdisc train tiles.h5 -o model.pt --backbone resnet50 --epochs 150 --lr-steps 45 75 105
  deepdisc train tiles.h5 -o model.pt --resume               # continue a killed run from its checkpoints
  deepdisc train specz.h5 -o model.pt --init pretrained.pt --lr 2e-4 --freeze backbone fpn --freeze-epochs 3
  torchrun --nproc_per_node 2 -m rail.deepdisc.cli train tiles.h5 -o model.pt   # DDP (gloo on CPU)
  deepdisc train tiles.h5 -o part0.pt --member-index 0 1     # members 0-1 here, others elsewhere, then:
  deepdisc train --merge part0.pt part1.pt -o model.pt       # join the parts, re-weight the members
Writes MODEL.pt, MODEL_loss.json and MODEL_loss.png (loss curves) and per-epoch checkpoints in
MODEL_checkpoints/ (or --checkpoint-dir).
"""

# flag -> training option (see rail.deepdisc.training.run.TRAIN_DEFAULTS)
_FLAG_OPTIONS = {
    "members": "members",
    "epochs": "epochs",
    "backbone": "backbone",
    "backbone_norm": "backbone_norm",
    "seed": "seed",
    "resume": "resume",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "lr_steps": "lr_steps",
    "lr_gamma": "lr_gamma",
    "lr_schedule": "lr_schedule",
    "patience": "patience",
    "val_fraction": "val_fraction",
    "calibration_fraction": "calibration_fraction",
    "n_components": "n_components",
    "head_hidden": "head_hidden",
    "pixel_pool_size": "pixel_pool_size",
    "optimizer": "optimizer",
    "normalisation": "normalisation",
    "redshift_loss_weight": "redshift_loss_weight",
    "head_lr_factor": "head_lr_factor",
    "head_steps": "head_steps",
    "head_replay": "head_replay",
    "head_dropout": "head_dropout",
    "redshift_backbone_grad": "redshift_backbone_grad",
    "calibrate_widths": "calibrate_widths",
    "augment_noise": "augment_noise",
    "augment_ebv": "augment_ebv",
    "augment_box_jitter": "augment_box_jitter",
    "clip_grad_norm": "clip_grad_norm",
    "device": "device",
    "threads": "num_threads",
    "checkpoint_dir": "checkpoint_dir",
    "backbone_weights": "backbone_weights",
    "init": "init_model",
    "first_conv": "first_conv",
    "freeze": "freeze",
    "freeze_epochs": "freeze_epochs",
    "member_index": "member_indices",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("tiles", type=Path, nargs="?", help="training TileSet (.h5) with spec-z labels")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model artifact to write (.pt)")
    parser.add_argument("--members", type=int, help="ensemble members (default 10)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 20)")
    parser.add_argument(
        "--backbone",
        help="a name of rail.deepdisc.model.backbone.BACKBONES: resnet18 (default), resnet34, resnet50 (the "
             "paper's ResNet), mvitv2_tiny/small/base (the paper's transformer), swin_tiny/small",
    )
    parser.add_argument(
        "--backbone-norm", choices=("group", "batch"), help="ResNet normalisation layers (default group)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default 1234)")
    parser.add_argument("--resume", action="store_true", default=None, help="resume from the checkpoints")
    parser.add_argument("--batch-size", type=int, help="tiles per step (default 4)")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), help="optimiser (default adamw; the paper: sgd)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    parser.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default 1e-4)")
    parser.add_argument("--pixel-pool-size", type=int,
                        help="colour/pixel features of each box for the redshift head, pooled to this size "
                             "(default 4; 0 = the paper's head)")
    parser.add_argument(
        "--lr-steps",
        type=int,
        nargs="*",
        help="epochs at which the lr is multiplied by --lr-gamma (paper: 45 75 105 of 150)",
    )
    parser.add_argument("--lr-gamma", type=float, help="lr factor at each step (default 0.1)")
    parser.add_argument("--lr-schedule", choices=("cosine", "steps"),
                        help="cosine decay to 5%% over the epochs (default), or the steps alone (the paper's)")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    parser.add_argument("--val-fraction", type=float, help="labelled tiles held out per member (default 0.1)")
    parser.add_argument("--calibration-fraction", type=float,
                        help="labelled tiles held out from every member to calibrate the ensemble's widths "
                             "(default 0 = none; e.g. 0.1)")
    parser.add_argument("--n-components", type=int, help="Gaussian components per mixture (default 5)")
    parser.add_argument("--head-hidden", type=int, nargs="+", help="redshift MLP widths (default 1024 64)")
    parser.add_argument("--normalisation", choices=("zscore", "asinh"), help="input scaling (default zscore)")
    parser.add_argument("--redshift-loss-weight", type=float, help="weight of the redshift NLL (default 1)")
    parser.add_argument("--head-lr-factor", type=float, help="redshift head's learning-rate factor (default 0.5)")
    parser.add_argument("--head-steps", type=int, help="extra redshift-head updates per batch (default 4)")
    parser.add_argument("--head-replay", type=int, help="recent batches those updates use (default 16)")
    parser.add_argument("--head-dropout", type=float,
                        help="dropout in the redshift head's MLP while training (default 0.3; 0 = the paper's)")
    parser.add_argument("--no-width-calibration", dest="calibrate_widths", action="store_false", default=None,
                        help="keep the raw mixture widths (default: one factor fitted on validation objects)")
    parser.add_argument("--redshift-backbone-grad", type=float,
                        help="fraction of the redshift NLL's gradient reaching the backbone/FPN (default 0.1)")
    parser.add_argument("--augment-noise", type=float, help="extra pixel noise, sky-noise units (default 0)")
    parser.add_argument("--augment-ebv", type=float, help="E(B-V) jitter std, mag (default 0)")
    parser.add_argument(
        "--augment-box-jitter",
        type=float,
        help="jitter of the redshift head's training boxes, fraction of box size (default 0.05)",
    )
    parser.add_argument("--clip-grad-norm", type=float, help="gradient-norm clip (default 10, 0 = off)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--checkpoint-dir", type=Path, help="checkpoint folder (default MODEL_checkpoints/)")
    parser.add_argument("--backbone-weights", type=Path, help="local ResNet checkpoint to start the backbone")
    parser.add_argument("--init", type=Path, help="pretrained DeepDISC model every member starts from")
    parser.add_argument(
        "--first-conv",
        choices=("reinit", "adapt"),
        help="with --init of other bands: re-initialise the first convolution (default) or adapt its filters",
    )
    parser.add_argument(
        "--freeze",
        nargs="+",
        choices=("backbone", "fpn", "redshift_head"),
        help="with --init: keep these parts fixed for the first --freeze-epochs epochs",
    )
    parser.add_argument("--freeze-epochs", type=int, help="epochs with --freeze applied (default 0)")
    parser.add_argument("--member-index", type=int, nargs="+", help="train only these members (0-based)")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="PART",
        help="join member artifacts instead of training (no TILES needed)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Train (or merge) and write the model; return 0."""
    from rail.deepdisc.model.artifact import load_artifact, save_artifact

    if args.merge:
        from rail.deepdisc.training.ensemble import merge_artifacts

        merged = merge_artifacts([load_artifact(p) for p in args.merge])
        save_artifact(merged, args.output)
        print(f"wrote {args.output}: {len(merged['members'])} members merged from {len(args.merge)} files")
        return 0
    if args.tiles is None:
        raise ConfigError("deepdisc train needs a TileSet (TILES.h5), or --merge PART.pt ...")
    from rail.deepdisc.tileset.io import read_tileset
    from rail.deepdisc.training.run import loss_curve_paths, train_from_options

    options = {
        opt: _plain(getattr(args, flag))
        for flag, opt in _FLAG_OPTIONS.items()
        if getattr(args, flag) is not None
    }
    options["progress_bar"] = not args.no_progress
    artifact = train_from_options(read_tileset(args.tiles), options, model_path=args.output)
    if int(os.environ.get("RANK", "0")) == 0:
        save_artifact(artifact, args.output)
        weights = " ".join(f"{m['weight']:.3f}" for m in artifact["members"])
        print(
            f"wrote {args.output}: {len(artifact['members'])} member(s), weights {weights}; loss curves "
            f"{loss_curve_paths(args.output)[1]}"
        )
    return 0


def _plain(value):
    return str(value) if isinstance(value, Path) else value
