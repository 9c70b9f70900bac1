"""``deepdisc peers``: run the template-fitting peers (EAZY, BPZ) on the objects of a TileSet."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rail.deepdisc.constants import NZBINS, ZMAX
from rail.deepdisc.exceptions import DeepDiscError

HELP = "template-fitting photo-z (EAZY, BPZ) on the primary objects of a TileSet, beside DeepDISC"
EXAMPLES = """  deepdisc peers tiles.h5 -o peers/                  # both peers, trained on the file's spec-z
  deepdisc peers test.h5 -o peers/ --train train.h5 --peer eazy
  deepdisc peers images_only.h5 -o peers/ --measure-missing   # aperture photometry where mags are NaN
  deepdisc peers tiles.h5 -o peers/ --templates COSMOS_seds --nt-array 7 12 12   # matched-template control
"""

PEERS = ("eazy", "bpz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("tiles", type=Path, help="TileSet to estimate (.h5)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output folder: catalog_*.hdf5, model_*, pz_eazy.hdf5, pz_bpz.hdf5",
    )
    parser.add_argument(
        "--train",
        type=Path,
        help="TileSet whose labelled objects train the peers (default: the labelled objects of TILES)",
    )
    parser.add_argument("--peer", nargs="+", choices=PEERS, default=list(PEERS), help="peers to run")
    parser.add_argument(
        "--templates", default="CWWSB4", help="template set (list name, .list, .param or folder)"
    )
    parser.add_argument(
        "--nt-array",
        type=int,
        nargs="+",
        help="BPZ templates per broad type (required for a template set other than CWWSB4)",
    )
    parser.add_argument(
        "--measure-missing", action="store_true", help="aperture photometry for NaN magnitudes"
    )
    parser.add_argument("--zmax", type=float, default=ZMAX, help="top of the redshift grid")
    parser.add_argument("--nzbins", type=int, default=NZBINS, help="points of the output PDF grid")
    parser.add_argument("--chunk-size", type=int, default=5000, help="objects per estimator chunk")


def run(args: argparse.Namespace) -> int:
    """Convert the TileSet(s) to catalogs, inform and run each peer, write the photo-z files."""
    for path in (args.tiles, args.train):
        if path is not None and not path.is_file():
            raise DeepDiscError(f"{path}: no such file")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    catalog = _catalog(args.tiles, out / "catalog.hdf5", args.measure_missing)
    train = _catalog(args.train, out / "catalog_train.hdf5", args.measure_missing) if args.train else catalog
    labelled = np.isfinite(train["redshift"])
    if not labelled.any():
        raise DeepDiscError(
            f"{args.train or args.tiles}: no object has a spec-z (redshift column): the peers "
            "need labelled objects for their zero points"
        )
    train = {k: v[labelled] for k, v in train.items()}
    bands = [k[len("mag_") :] for k in catalog if k.startswith("mag_")]
    for peer in args.peer:
        n = _run_peer(peer, bands, train, catalog, out, args)
        print(f"{peer}: {n} objects -> {out / f'pz_{peer}.hdf5'}")
    return 0


def _catalog(path: Path, target: Path, measure_missing: bool) -> dict:
    from rail.tools.deepdisc_catalog import TileSetToCatalog

    stage = TileSetToCatalog.make_stage(
        name=f"catalog_{target.stem}", output=str(target), measure_missing=measure_missing
    )
    return stage(str(path)).data


def _run_peer(peer: str, bands: list[str], train: dict, catalog: dict, out: Path, args) -> int:
    grid = dict(zmax=args.zmax, nzbins=args.nzbins, chunk_size=args.chunk_size)
    if peer == "eazy":
        from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer

        common = dict(bands=bands, templates=args.templates, z_max=args.zmax)
        inf = EazyInformer.make_stage(name="eazy_inform", model=str(out / "model_eazy.npz"), **common)
        est_cls = EazyEstimator
    else:
        from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer

        common = dict(nircam_bands=bands, templates=args.templates)
        if args.nt_array:
            common["nt_array"] = list(args.nt_array)
        inf = NIRCamBPZInformer.make_stage(
            name="bpz_inform", model=str(out / "model_bpz.npz"), zmax=args.zmax, **common
        )
        est_cls = NIRCamBPZEstimator
    inf.inform(train)
    est = est_cls.make_stage(
        name=f"{peer}_estimate",
        model=inf.get_handle("model"),
        output=str(out / f"pz_{peer}.hdf5"),
        **common,
        **grid,
    )
    return int(est.estimate(catalog).data.npdf)
