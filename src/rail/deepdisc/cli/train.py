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

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments: the data, the output, ``--merge`` and a flag for every training option."""
    from rail.deepdisc.training.settings import TRAIN_OPTIONS

    parser.add_argument("tiles", type=Path, nargs="?", help="training TileSet (.h5) with spec-z labels")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model artifact to write (.pt)")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="PART",
        help="join member artifacts instead of training (no TILES needed)",
    )
    TRAIN_OPTIONS.add_arguments(parser)


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
    from rail.deepdisc.training.settings import TRAIN_OPTIONS

    options = TRAIN_OPTIONS.from_args(args)
    artifact = train_from_options(read_tileset(args.tiles), options, model_path=args.output)
    if int(os.environ.get("RANK", "0")) == 0:
        save_artifact(artifact, args.output)
        weights = " ".join(f"{m['weight']:.3f}" for m in artifact["members"])
        print(
            f"wrote {args.output}: {len(artifact['members'])} member(s), weights {weights}; loss curves "
            f"{loss_curve_paths(args.output)[1]}"
        )
    return 0

