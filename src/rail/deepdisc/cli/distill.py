"""``deepdisc distill``: distil a trained ensemble into one network (an ensemble's photo-z at one member's cost)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "distil an ensemble into one network of the same architecture (one member's inference cost)"
EXAMPLES = """  deepdisc distill model.pt train.h5 -o student.pt                  # 10 epochs from the best member
  deepdisc distill model.pt train.h5 more_unlabelled.h5 -o student.pt --distill-epochs 15
  deepdisc distill model.pt train.h5 -o student.pt --resume          # continue a killed run
  deepdisc estimate student.pt test.h5 -o pz.hdf5                     # runs like any model
The student is trained on every catalogued object of the tiles, its redshift target the ensemble's mixture
(no spec-z needed). Checkpoints: STUDENT_checkpoints/distill.pt (or --checkpoint-dir).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ensemble, the tiles, the output and a flag for every distillation option."""
    from rail.deepdisc.training.settings import DISTILL_OPTIONS

    parser.add_argument("model", type=Path, help="the ensemble model artifact (.pt)")
    parser.add_argument("tiles", type=Path, nargs="+", help="TileSet(s) (.h5) to distil on; labels not needed")
    parser.add_argument("-o", "--output", type=Path, required=True, help="student model artifact to write (.pt)")
    DISTILL_OPTIONS.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Distil and write the student; return 0."""
    from rail.deepdisc.model.artifact import load_artifact, save_artifact
    from rail.deepdisc.tileset.io import read_tileset
    from rail.deepdisc.training.run import distill_from_options
    from rail.deepdisc.training.settings import DISTILL_OPTIONS

    artifact = load_artifact(args.model)
    tilesets = [read_tileset(p) for p in args.tiles]
    student = distill_from_options(artifact, tilesets, DISTILL_OPTIONS.from_args(args), model_path=args.output,
                                   name=str(args.model))
    save_artifact(student, args.output)
    gap = student["provenance"]["distillation"]
    print(f"wrote {args.output}: 1 network distilled from {len(artifact['members'])} members on "
          f"{gap['n_objects']} objects; mean KL to the ensemble {gap['gap_before']['kl']:.3f} -> "
          f"{gap['gap_after']['kl']:.3f} nats, mean |dzmean| {gap['gap_before']['dzmean']:.3f} -> "
          f"{gap['gap_after']['dzmean']:.3f}")
    return 0
