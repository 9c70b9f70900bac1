"""``deepdisc combine``: the consensus of several photo-z files of the same objects (hierarchical Bayes)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = ("combine photo-z files of the same objects (DeepDISC, EAZY, BPZ, ...) into a calibrated consensus, or "
        "recalibrate one on held-out spec-z")
EXAMPLES = """  deepdisc combine DeepDISC=pz.hdf5 EAZY=pz_eazy.hdf5 BPZ=pz_bpz.hdf5 --truth tiles.h5 -o consensus.hdf5
  deepdisc combine DeepDISC=pz.hdf5 EAZY=eazy.hdf5 --truth specz.parquet --truth-column zspec -o c.hdf5
  deepdisc combine DeepDISC=more.hdf5 EAZY=more_eazy.hdf5 --model consensus_model.npz --tiles more.h5 -o c2.hdf5
  deepdisc combine DeepDISC=pz.hdf5 --truth heldout_specz.h5 -o pz_recalibrated.hdf5
(one file: that method recalibrated on the labels: temperature, bad fractions, optional PIT maps, beta;
 the truth labels the calibration objects: spec-z held out from the methods' training, NaN = unlabelled;
 the fitted model is written beside the output as <output stem>_model.npz unless --save-model is given)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    from rail.deepdisc.consensus.model import OUTPUT_PIT_CHOICES, ConsensusSettings
    from rail.deepdisc.consensus.sources import DEFAULT_CHUNK

    d = ConsensusSettings()
    parser.add_argument("inputs", nargs="+", metavar="NAME=FILE",
                        help="qp photo-z files of the same objects, in the same order (one: recalibrate it)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="consensus qp file to write")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--truth", type=Path,
                     help="TileSet or table (HDF5, Parquet, FITS) of the same rows labelling calibration objects")
    how.add_argument("--model", type=Path, help="apply a consensus model fitted before (.npz)")
    parser.add_argument("--truth-column", default="redshift",
                        help="truth column (default: %(default)s, the TileSet's spec-z)")
    parser.add_argument("--tiles", type=Path,
                        help="TileSet or table with the magnitudes of the bins (default: the --truth file)")
    parser.add_argument("--save-model", type=Path, help="where to write the fitted model (.npz)")
    parser.add_argument("--mag-band", default=d.mag_band, help="band of the magnitude bins (default: %(default)s)")
    parser.add_argument("--mag-edges", type=float, nargs="+", default=list(d.mag_edges), metavar="MAG",
                        help="inner magnitude bin edges of the bad fractions")
    parser.add_argument("--min-per-bin", type=int, default=d.min_per_bin,
                        help="fewest labelled objects per magnitude bin (default: %(default)s)")
    parser.add_argument("--pit-correction", action="store_true", help="fit a PIT shape correction per method")
    parser.add_argument("--output-pit", choices=OUTPUT_PIT_CHOICES, default=d.output_pit,
                        help="PIT shape correction of the combined PDFs, fitted on the labels' held-out PIT values: "
                             "auto (default: the maps by magnitude, or one map for labels without magnitudes, where "
                             "the labels' cross-validated likelihood gains), none, one map, or one per magnitude group")
    parser.add_argument("--output-pit-shift", action="store_true",
                        help="let those maps also move the PDFs (default: symmetric maps, which only widen or narrow "
                             "them, because spec-z are a selection of the objects at any magnitude); for labels "
                             "drawn like the objects estimated")
    parser.add_argument("--no-beta", action="store_true", help="do not fit beta (1: independent methods)")
    parser.add_argument("--keep-all", action="store_true",
                        help="use every input (default: leave out those whose removal raises the labels' "
                             "cross-validated likelihood)")
    parser.add_argument("--constant-beta", action="store_true",
                        help="one beta for all magnitudes (default: beta grows with magnitude above the labels' "
                             "median where their cross-validated likelihood says so)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK,
                        help="objects combined at a time (default: %(default)s)")


def _inputs(specs: list[str]) -> tuple[list[str], list[Path]]:
    from rail.deepdisc.exceptions import DeepDiscError

    names, paths = [], []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise DeepDiscError(f"input {spec!r}: expected NAME=FILE, e.g. DeepDISC=pz.hdf5")
        if name in names:
            raise DeepDiscError(f"input name {name!r} is given twice: name each method once")
        names.append(name)
        paths.append(Path(path))
    return names, paths


def run(args: argparse.Namespace) -> int:
    """Fit (or load) the consensus model and write the combined photo-z."""
    from rail.deepdisc.consensus.io import fit_sources, labels_of, read_table, write_consensus
    from rail.deepdisc.consensus.model import ConsensusSettings, load_consensus_model, save_consensus_model
    from rail.deepdisc.consensus.sources import check_same_rows
    from rail.deepdisc.exceptions import DeepDiscError

    names, paths = _inputs(args.inputs)
    n = check_same_rows(paths, names)
    if args.model is not None:
        model = load_consensus_model(args.model)
        if list(model.methods) != names:
            raise DeepDiscError(f"{args.model} combines {', '.join(model.methods)}; the inputs are "
                                f"{', '.join(names)}: give the same methods in the same order")
        model_path = args.model
    else:
        settings = ConsensusSettings(mag_band=args.mag_band.upper(), mag_edges=tuple(args.mag_edges),
                                     min_per_bin=args.min_per_bin, pit_correction=args.pit_correction,
                                     fit_beta=not args.no_beta, beta_by_magnitude=not args.constant_beta,
                                     select_methods=not args.keep_all, output_pit=args.output_pit,
                                     output_pit_shift=args.output_pit_shift)
        model = fit_sources(paths, names, args.truth, settings=settings, truth_column=args.truth_column,
                            chunk_size=args.chunk_size)
        model_path = args.save_model or args.output.with_name(args.output.stem + "_model.npz")
        save_consensus_model(model, model_path)
    tiles = args.tiles or args.truth
    mag = None
    if tiles is not None:
        _, mag, _ = labels_of(read_table(tiles), n, column=None, mag_band=model.mag_band)
    write_consensus(paths, model, args.output, mag, chunk_size=args.chunk_size)
    summary = ", ".join(f"{m} T={t:.3g} f_bad={f:.3g}"
                        for m, t, f in zip(model.methods, model.temperature, model.bad_fraction_all))
    growth = (f" growing by {model.beta_slope:.3g} per mag above {model.beta_pivot:.4g}"
              if model.beta_slope > 0 else "")
    left_out = [m for m, u in zip(model.methods, model.used) if not u]
    dropped = f"; left out: {', '.join(left_out)}" if left_out else ""
    print(f"consensus of {n} objects written to {args.output} ({summary}; beta={model.beta:.3g}{growth}{dropped}; "
          f"model {model_path})")
    return 0
