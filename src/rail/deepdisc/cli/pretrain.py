"""``deepdisc pretrain``: pretrain a DeepDISC network on label-complete simulations (or backbone only)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "pretrain a DeepDISC network on streamed simulations with true redshifts for every object"
EXAMPLES = """  deepdisc pretrain -o pretrained.pt                           # 10 epochs x 8 chunks x 32 simulated tiles
  deepdisc pretrain -o pretrained.pt --epochs 40 --tiles-per-chunk 64 --psf-fwhm-scale 0.8 1.3
  deepdisc pretrain -o pretrained.pt --resume                  # continue a killed run from its checkpoint
  deepdisc pretrain -o pretrained.pt --tile-files sim1.h5 sim2.h5   # read label-complete TileSets instead
  torchrun --nproc_per_node 4 -m rail.deepdisc.cli pretrain -o pretrained.pt   # DDP: each rank simulates
  deepdisc train specz.h5 -o model.pt --init pretrained.pt --lr 2e-4 --freeze backbone fpn --freeze-epochs 3
  deepdisc pretrain --backbone-only -o resnet.pt --tile-files sim.h5 --epochs 20   # ResNet on cutouts, then:
  deepdisc train specz.h5 -o model.pt --backbone-weights resnet.pt
Writes MODEL.pt (its provenance shows in `deepdisc info MODEL.pt`) and MODEL_pretrain_checkpoint.pt (or
--checkpoint), rewritten after every chunk.
"""

_RANGE_FLAGS = ("psf_fwhm_scale", "depth_offset", "noise_correlation_px", "starburst_weight",
                "emission_line_scale", "passive_fraction", "size_scale")
# flag -> pretraining option (see rail.deepdisc.pretraining.run.PRETRAIN_DEFAULTS)
_FLAG_OPTIONS = {
    "bands": "bands", "tile_size": "tile_size", "pixel_scale": "pixel_scale", "tile_files": "tile_files",
    "tiles_per_chunk": "tiles_per_chunk", "chunks_per_epoch": "chunks_per_epoch", "epochs": "epochs",
    "validation_tiles": "validation_tiles", "backbone": "backbone", "backbone_norm": "backbone_norm",
    "seed": "seed", "resume": "resume", "batch_size": "batch_size", "lr": "learning_rate",
    "weight_decay": "weight_decay", "lr_steps": "lr_steps", "lr_gamma": "lr_gamma", "lr_schedule": "lr_schedule",
    "n_components": "n_components", "head_hidden": "head_hidden", "pixel_pool_size": "pixel_pool_size",
    "normalisation": "normalisation",
    "augment_noise": "augment_noise", "device": "device", "threads": "num_threads", "checkpoint": "checkpoint",
    **{name: name for name in _RANGE_FLAGS},
}
# options the backbone-only path takes (see rail.deepdisc.pretraining.backbone.BACKBONE_PRETRAIN_DEFAULTS)
_BACKBONE_ONLY = ("tile_files", "backbone", "backbone_norm", "epochs", "batch_size", "lr", "weight_decay",
                  "seed", "device", "threads", "checkpoint", "resume", "cutout_size", "validation_fraction")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("-o", "--output", type=Path, required=True, help="artifact to write (.pt)")
    parser.add_argument("--bands", nargs="+", help="band preset or list for simulation (default JADES9)")
    parser.add_argument("--tile-size", type=int, help="simulated tile side, pixels (default 128)")
    parser.add_argument("--pixel-scale", type=float, help="arcsec per pixel (default 0.03)")
    parser.add_argument("--tile-files", nargs="+", type=Path, help="label-complete TileSets instead of simulating")
    parser.add_argument("--tiles-per-chunk", type=int, help="tiles per streamed chunk (default 32)")
    parser.add_argument("--chunks-per-epoch", type=int, help="chunks per epoch (default 8; files: all)")
    parser.add_argument("--epochs", type=int, help="epochs (default 10)")
    parser.add_argument("--validation-tiles", type=int, help="fixed validation tiles (default 16)")
    parser.add_argument("--no-randomise", action="store_true", help="simulate at fixed default nuisances")
    for name in _RANGE_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, nargs=2, metavar=("LOW", "HIGH"),
                            help=f"randomisation range of SimulationSettings.{name}")
    parser.add_argument("--backbone", help="a name of rail.deepdisc.model.backbone.BACKBONES (default resnet18; "
                                           "also resnet50, mvitv2_tiny, swin_tiny, ...)")
    parser.add_argument("--backbone-norm", choices=("group", "batch"), help="default group")
    parser.add_argument("--seed", type=int, help="random seed (default 1234)")
    parser.add_argument("--resume", action="store_true", default=None, help="resume from the checkpoint")
    parser.add_argument("--batch-size", type=int, help="tiles (or cutouts) per step")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default 1e-4)")
    parser.add_argument("--lr-steps", type=int, nargs="*", help="epochs at which the lr drops by --lr-gamma")
    parser.add_argument("--lr-gamma", type=float, help="lr factor at each step (default 0.1)")
    parser.add_argument("--lr-schedule", choices=("cosine", "steps"),
                        help="cosine decay to 5%% over the epochs (default), or the steps alone")
    parser.add_argument("--n-components", type=int, help="Gaussian components per mixture (default 5)")
    parser.add_argument("--head-hidden", type=int, nargs="+", help="redshift MLP widths (default 1024 64)")
    parser.add_argument("--pixel-pool-size", type=int, help="colour/pixel features per box (default 4; 0 = none)")
    parser.add_argument("--normalisation", choices=("zscore", "asinh"), help="input scaling (default zscore)")
    parser.add_argument("--augment-noise", type=float, help="extra pixel noise, sky-noise units (default 0)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint file (default MODEL_pretrain_checkpoint.pt)")
    parser.add_argument("--backbone-only", action="store_true",
                        help="pretrain only a ResNet on single-object cutouts of --tile-files (redshift and "
                             "magnitudes, MLP head); writes weights for --backbone-weights")
    parser.add_argument("--cutout-size", type=int, help="backbone-only: cutout side, pixels (default 64)")
    parser.add_argument("--validation-fraction", type=float, help="backbone-only: held-out objects (0.1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Pretrain and write the artifact; return 0."""
    from rail.deepdisc.exceptions import ConfigError

    if args.backbone_only:
        return _run_backbone_only(args)
    for flag in ("cutout_size", "validation_fraction"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} belongs to --backbone-only")
    from rail.deepdisc.model.artifact import save_artifact
    from rail.deepdisc.pretraining.run import pretrain_from_options

    options = {opt: _plain(getattr(args, flag)) for flag, opt in _FLAG_OPTIONS.items()
               if getattr(args, flag) is not None}
    if args.bands is not None:
        options["bands"] = args.bands[0] if len(args.bands) == 1 else list(args.bands)
    options["randomise"] = not args.no_randomise
    options["progress_bar"] = not args.no_progress
    artifact = pretrain_from_options(options, model_path=args.output)
    if int(os.environ.get("RANK", "0")) == 0:
        save_artifact(artifact, args.output)
        prov = artifact["provenance"]
        print(f"wrote {args.output}: pretrained on {prov['tiles_seen']} tiles ({prov['objects_seen']} objects) "
              f"in {prov['epochs']} epochs; final validation NLL {prov['final_validation_nll']:.3f}")
    return 0


def _run_backbone_only(args: argparse.Namespace) -> int:
    from rail.deepdisc.exceptions import ConfigError
    from rail.deepdisc.pretraining.backbone import pretrain_backbone_from_options, save_backbone

    given = [flag for flag in _FLAG_OPTIONS if getattr(args, flag) is not None and flag not in _BACKBONE_ONLY]
    if given:
        raise ConfigError(f"--backbone-only does not take --{given[0].replace('_', '-')}")
    names = {"lr": "learning_rate", "threads": "num_threads"}
    options = {names.get(flag, flag): _plain(getattr(args, flag)) for flag in _BACKBONE_ONLY
               if getattr(args, flag) is not None}
    options["progress_bar"] = not args.no_progress
    result = pretrain_backbone_from_options(options, output_path=args.output)
    save_backbone(result, args.output)
    print(f"wrote {args.output}: {result['provenance']['backbone']} weights pretrained on "
          f"{result['provenance']['n_train']} cutouts; validation redshift RMSE "
          f"{result['provenance']['val_redshift_rmse']:.3f}")
    return 0


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value
