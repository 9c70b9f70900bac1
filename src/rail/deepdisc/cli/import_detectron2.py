"""``deepdisc import-detectron2``: convert a detectron2 DeepDISC checkpoint (grantmerz/deepdisc) into a model file."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "convert a detectron2-format DeepDISC checkpoint (grantmerz/deepdisc) into a model file"
EXAMPLES = """  deepdisc import-detectron2 model_final.pth -o model.pt --bands F115W F150W F200W --pixel-scale 0.03 \\
      --mean 0.1 0.1 0.2 --std 2.0 2.1 2.5          # detectron2's pixel_mean / pixel_std, in TileSet units
  deepdisc import-detectron2 cascade.pth -o model.pt --bands g r i z y --pixel-scale 0.168 --cascade-stage 0
  deepdisc estimate model.pt tiles.h5 -o pz.hdf5    # then use it like any model
The checkpoint is read with torch.load(weights_only=True). Anchor sizes are not stored in the weights: give the
detectron2 config's (--anchor-sizes; default 8 16 32 64 128, grantmerz/deepdisc's photo-z configs).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("checkpoint", type=Path, help="detectron2 checkpoint (.pth, {'model': state_dict, ...})")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model artifact to write (.pt)")
    parser.add_argument("--bands", nargs="+", required=True, help="input bands, in the checkpoint's channel order")
    parser.add_argument("--pixel-scale", type=float, required=True, help="arcsec per pixel of its training images")
    parser.add_argument("--mean", type=float, nargs="+",
                        help="detectron2 pixel_mean per band (default: the checkpoint's own, if it holds one)")
    parser.add_argument("--std", type=float, nargs="+", help="detectron2 pixel_std per band (idem)")
    parser.add_argument("--anchor-sizes", type=float, nargs=5, metavar="PX",
                        help="anchor sizes of the five pyramid levels (default 8 16 32 64 128)")
    parser.add_argument("--aspect-ratios", type=float, nargs="+", help="anchor aspect ratios (default 0.5 1 2)")
    parser.add_argument("--stride-in-3x3", action="store_true",
                        help="the ResNet downsamples in its 3x3 convolutions (detectron2 RESNETS.STRIDE_IN_1X1 = "
                             "False, e.g. torchvision-initialised); default: in the 1x1, as detectron2's MSRA ResNets")
    parser.add_argument("--cascade-stage", type=int,
                        help="use this box head of a Cascade R-CNN checkpoint (0 is the only one supported)")
    parser.add_argument("--score-threshold", type=float, help="detection score cut (default 0.05)")
    parser.add_argument("--detections-per-image", type=int, help="detections kept per tile (default 100)")


def run(args: argparse.Namespace) -> int:
    """Convert the checkpoint and write the artifact; raise a DeepDiscError for an unmappable one."""
    from rail.deepdisc.model.detectron2_io import import_detectron2

    options = {"stride_in_1x1": not args.stride_in_3x3, "cascade_stage": args.cascade_stage}
    for flag, field in (("anchor_sizes", "anchor_sizes"), ("aspect_ratios", "aspect_ratios"),
                        ("score_threshold", "box_score_threshold"),
                        ("detections_per_image", "detections_per_image")):
        if getattr(args, flag) is not None:
            options[field] = getattr(args, flag)
    path = import_detectron2(args.checkpoint, args.output, bands=args.bands, pixel_scale=args.pixel_scale,
                             mean=args.mean, std=args.std, **options)
    print(f"wrote {path}: detectron2 weights of {args.checkpoint} for bands {' '.join(args.bands)}")
    return 0
