"""``deepdisc pretrain``: pretrain a DeepDISC network on label-complete simulations (or backbone only)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "pretrain a DeepDISC network on streamed simulations with true redshifts for every object"
EXAMPLES = """  deepdisc pretrain -o pretrained.pt                           # 10 epochs x 8 chunks x 32 simulated tiles
  deepdisc pretrain -o pretrained.pt --epochs 12 --chunks-per-epoch 8 --tiles-per-chunk 64   # the recipe
  deepdisc pretrain -o pretrained.pt --sed-library cosmos+cww --psf-fwhm-scale 0.8 1.3   # fsps held out
  deepdisc pretrain -o pretrained.pt --resume                  # continue a killed run from its checkpoint
  deepdisc pretrain -o longer.pt --init pretrained.pt --epochs 12 --lr 5e-4   # 12 more epochs (warm restart)
  deepdisc pretrain -o pretrained.pt --tile-files sim1.h5 sim2.h5   # read label-complete TileSets instead
  torchrun --nproc_per_node 4 -m rail.deepdisc.cli pretrain -o pretrained.pt   # DDP: each rank simulates
  deepdisc train specz.h5 -o model.pt --init pretrained.pt --lr 1e-4 --head-steps 0   # fine-tune everything
  deepdisc pretrain --backbone-only -o resnet.pt --tile-files sim.h5 --epochs 20   # ResNet on cutouts, then:
  deepdisc train specz.h5 -o model.pt --backbone-weights resnet.pt
Writes MODEL.pt (its provenance shows in `deepdisc info MODEL.pt`) and MODEL_pretrain_checkpoint.pt (or
--checkpoint), rewritten after every chunk.
"""

def _options():
    """The flags (every option of both kinds of pretraining), pretraining's options, backbone-only's options."""
    from dataclasses import replace

    from rail.deepdisc.options import OptionSet
    from rail.deepdisc.pretraining.settings import BACKBONE_PRETRAIN_OPTIONS, PRETRAIN_OPTIONS

    flags = []
    for name, opt in PRETRAIN_OPTIONS.items():
        other = BACKBONE_PRETRAIN_OPTIONS.get(name)
        if other is not None and (other.help, other.default) != (opt.help, opt.default):  # one flag, two meanings
            opt = replace(opt, default=None, help=f"{opt.help} (default {opt.default_text}); --backbone-only: "
                                                  f"{other.help} (default {other.default_text})")
        flags.append(opt)
    backbone_only = BACKBONE_PRETRAIN_OPTIONS.without(*PRETRAIN_OPTIONS)
    return OptionSet(*flags, backbone_only), PRETRAIN_OPTIONS, BACKBONE_PRETRAIN_OPTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments: the output, ``--backbone-only`` and a flag for every option of both."""
    parser.add_argument("-o", "--output", type=Path, required=True, help="artifact to write (.pt)")
    parser.add_argument("--backbone-only", action="store_true",
                        help="pretrain only a ResNet on single-object cutouts of --tile-files (redshift and "
                             "magnitudes, MLP head); writes weights for --backbone-weights")
    _options()[0].add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Pretrain and write the artifact; return 0."""
    from rail.deepdisc.exceptions import ConfigError

    every, pretrain, backbone = _options()
    given = every.from_args(args)
    if args.backbone_only:
        return _run_backbone_only(args, given, backbone)
    for name in given:
        if name not in pretrain:
            raise ConfigError(f"{every[name].flag_name()} belongs to --backbone-only")
    from rail.deepdisc.model.artifact import save_artifact
    from rail.deepdisc.pretraining.run import pretrain_from_options

    artifact = pretrain_from_options(given, model_path=args.output)
    if int(os.environ.get("RANK", "0")) == 0:
        save_artifact(artifact, args.output)
        prov = artifact["provenance"]
        print(f"wrote {args.output}: pretrained on {prov['tiles_seen']} tiles ({prov['objects_seen']} objects) "
              f"in {prov['epochs']} epochs; final validation NLL {prov['final_validation_nll']:.3f}")
    return 0


def _run_backbone_only(args: argparse.Namespace, given: dict, backbone) -> int:
    from rail.deepdisc.exceptions import ConfigError
    from rail.deepdisc.pretraining.backbone import pretrain_backbone_from_options, save_backbone

    other = [name for name in given if name not in backbone]
    if other:
        raise ConfigError(f"--backbone-only does not take {_options()[0][other[0]].flag_name()}")
    result = pretrain_backbone_from_options(given, output_path=args.output)
    save_backbone(result, args.output)
    print(f"wrote {args.output}: {result['provenance']['backbone']} weights pretrained on "
          f"{result['provenance']['n_train']} cutouts; validation redshift RMSE "
          f"{result['provenance']['val_redshift_rmse']:.3f}")
    return 0
