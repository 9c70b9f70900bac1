"""``deepdisc features``: per-object features of a trained model, their embedding and the MI bound with z."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "features of a trained model: UMAP embedding and a mutual-information lower bound with redshift"
EXAMPLES = """  deepdisc features model.pt tiles.h5 -o features/            # UMAP, bound on 4 dimensions
  deepdisc features model.pt tiles.h5 -o features/ --reduce pca --boxes catalog
Writes DIR/embedding.png (coloured by redshift and magnitude), DIR/features.npz and DIR/summary.json. The
bound uses redshift_true where the tiles have it (simulations), else the spec-z. A third bound ("head") uses the
network's own redshift PDF as q(z | features), with no reduction: run it on tiles the model was not trained on.
UMAP needs the 'features' extra (pip install 'pz-rail-deepdisc[features]'); without it PCA is used and the
summary says so.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("model", type=Path, help="model artifact (.pt)")
    parser.add_argument("tiles", type=Path, help="TileSet (.h5) of the model's bands")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--member", type=int, default=0, help="ensemble member (default 0)")
    parser.add_argument("--boxes", choices=("matched", "catalog"), default="matched",
                        help="matched detections (catalog box where none), or catalog boxes only")
    parser.add_argument("--reduce", choices=("umap", "pca"), default="umap", help="dimensionality reduction")
    parser.add_argument("--dims", type=int, default=4, help="reduced dimensions for the bound (default 4)")
    parser.add_argument("--mag-band", help="band of the magnitude colouring (default: the last band)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Write the folder and print the bounds."""
    from rail.deepdisc.analysis.report import feature_report

    summary = feature_report(args.model, args.tiles, args.output, member=args.member, boxes=args.boxes,
                             reduce=args.reduce, n_dims=args.dims, mag_band=args.mag_band, seed=args.seed)
    for name, b in summary["mutual_information"].items():
        how = ("the network's own redshift PDF as q(z | features)" if name == "head" else
               f"{summary['reducer']} to {summary['n_dims']} dims")
        what = "head input" if name == "head" else name
        print(f"I({what} features; z) >= {b['bound']:.3f} +- {b['bound_error']:.3f} nats "
              f"({b['bound_bits']:.3f} bits), {how}, {b['n_test']} held-out objects")
    print(f"wrote {args.output}/embedding.png, features.npz, summary.json ({summary['n_objects']} objects)")
    return 0
