"""``deepdisc estimate``: photo-z mixtures for every primary object of a TileSet (`DeepDiscEstimator`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rail.deepdisc.constants import IOU_THRESHOLD

HELP = "estimate a Gaussian-mixture p(z) for every catalog object of a TileSet"
EXAMPLES = """  deepdisc estimate model.pt tiles.h5 -o pz.hdf5
  deepdisc estimate model.pt tiles.h5 -o pz_forced.hdf5 --forced-all     # catalog boxes only
  deepdisc estimate model.pt tiles.h5 -o pz.hdf5 --chunk-tiles 64 --device cpu --threads 2
  mpiexec -n 4 python -m ceci rail.estimation.algos.deepdisc.DeepDiscEstimator \\
      --model model.pt --input tiles.h5 --output pz.hdf5 --mpi            # MPI ranks split the tiles
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("model", type=Path, help="model artifact (.pt) written by 'deepdisc train'")
    parser.add_argument("tiles", type=Path, help="TileSet (.h5)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="photo-z file to write (.hdf5)")
    parser.add_argument("--forced-all", action="store_true",
                        help="take every object's redshift from its catalog box (no detection matching)")
    parser.add_argument("--chunk-tiles", type=int, default=256, metavar="N",
                        help="tiles read and processed at a time (bounds memory; default 256)")
    parser.add_argument("--chunk-size", type=int, default=2000, metavar="N",
                        help="primary objects per chunk (default 2000)")
    parser.add_argument("--iou-threshold", type=float, default=IOU_THRESHOLD,
                        help="minimum IoU for a detection to match a catalog box (default %(default)s)")
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="minimum detection confidence kept before matching (default 0.05)")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (default 8)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the estimator on one TileSet; raise a DeepDiscError for bad input."""
    from rail.core.data import DataStore

    from rail.deepdisc.exceptions import ConfigError
    from rail.deepdisc.inference.predictor import InferenceSettings
    from rail.deepdisc.tileset.handles import TileSetHandle

    for name in ("chunk_tiles", "chunk_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        InferenceSettings(iou_threshold=args.iou_threshold, score_threshold=args.score_threshold,
                          batch_size=args.batch_size)
    except ValueError as err:
        raise ConfigError(f"deepdisc estimate: {err}") from None
    if not args.model.exists():
        raise FileNotFoundError(2, "No such file or directory", str(args.model))
    if not args.tiles.exists():
        raise FileNotFoundError(2, "No such file or directory", str(args.tiles))
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    DataStore.allow_overwrite = True  # a second run in one process (tests, notebooks) reuses the tags
    stage = DeepDiscEstimator.make_stage(
        name="deepdisc_estimate", model=str(args.model), output=str(args.output),
        forced_all=args.forced_all, chunk_tiles=args.chunk_tiles, chunk_size=args.chunk_size,
        iou_threshold=args.iou_threshold, score_threshold=args.score_threshold, batch_size=args.batch_size,
        device=args.device, num_threads=args.threads, progress_bar=not args.no_progress,
    )
    ensemble = stage.estimate(TileSetHandle("input", path=str(args.tiles))).data
    ancil = ensemble.ancil
    print(f"wrote {args.output}: {ensemble.npdf} objects, {int(np.sum(ancil['detected']))} detected, "
          f"{int(np.sum(ancil['forced']))} forced, {int(np.sum(ancil['recentred']))} from recentred tiles")
    return 0
