"""``deepdisc estimate``: photo-z mixtures for every primary object of a TileSet (`DeepDiscEstimator`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HELP = "estimate a Gaussian-mixture p(z) for every catalog object of a TileSet"
EXAMPLES = """  deepdisc estimate model.pt tiles.h5 -o pz.hdf5
  deepdisc estimate model.pt tiles.h5 -o pz_forced.hdf5 --forced-all     # catalog boxes only
  deepdisc estimate model.pt tiles.h5 -o pz.hdf5 --chunk-tiles 64 --device cpu --threads 2
  mpiexec -n 4 python -m ceci rail.estimation.algos.deepdisc.DeepDiscEstimator \\
      --model model.pt --input tiles.h5 --output pz.hdf5 --mpi            # MPI ranks split the tiles
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments: model, tiles, output and a flag for every estimator option."""
    from rail.estimation.algos.deepdisc import ESTIMATE_OPTIONS

    parser.add_argument("model", type=Path, help="model artifact (.pt) written by 'deepdisc train'")
    parser.add_argument("tiles", type=Path, help="TileSet (.h5)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="photo-z file to write (.hdf5)")
    ESTIMATE_OPTIONS.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the estimator on one TileSet; raise a DeepDiscError for bad input."""
    from rail.core.data import DataStore

    from rail.deepdisc.inference.predictor import InferenceSettings
    from rail.deepdisc.options import build
    from rail.deepdisc.tileset.handles import TileSetHandle
    from rail.estimation.algos.deepdisc import ESTIMATE_OPTIONS, DeepDiscEstimator

    options = ESTIMATE_OPTIONS.from_args(args)
    build(InferenceSettings, ESTIMATE_OPTIONS.coerce(options))  # bad values fail before the model is read
    if not args.model.exists():
        raise FileNotFoundError(2, "No such file or directory", str(args.model))
    if not args.tiles.exists():
        raise FileNotFoundError(2, "No such file or directory", str(args.tiles))

    DataStore.allow_overwrite = True  # a second run in one process (tests, notebooks) reuses the tags
    stage = DeepDiscEstimator.make_stage(name="deepdisc_estimate", model=str(args.model), output=str(args.output),
                                         **options)
    ensemble = stage.estimate(TileSetHandle("input", path=str(args.tiles))).data
    ancil = ensemble.ancil
    print(f"wrote {args.output}: {ensemble.npdf} objects, {int(np.sum(ancil['detected']))} detected, "
          f"{int(np.sum(ancil['forced']))} forced, {int(np.sum(ancil['recentred']))} from recentred tiles")
    return 0
