"""``deepdisc peers``: run DeepDISC's peers (EAZY, BPZ, FlexZBoost, kNN, catalog MDN) on the objects of a TileSet."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.constants import NZBINS, ZMAX
from rail.deepdisc.exceptions import DeepDiscError

HELP = ("catalog photo-z peers (EAZY, BPZ, FlexZBoost, kNN, the catalog MDN) on the primary objects of a TileSet, "
        "beside DeepDISC")
EXAMPLES = """  deepdisc peers tiles.h5 -o peers/                  # every peer, trained on the file's spec-z
  deepdisc peers test.h5 -o peers/ --train train.h5 --peer eazy flexzboost
  deepdisc peers test.h5 -o peers/ --train train.h5 --peer catalog_mdn   # DeepDISC's head on catalog colours
  deepdisc peers images_only.h5 -o peers/ --measure-missing   # aperture photometry where mags are NaN
  deepdisc peers tiles.h5 -o peers/ --peer eazy --templates templates/fsps_full/fsps_QSF_12_v3.param \\
      --templates-root ~/eazy-photoz                  # another template set from a user's eazy-photoz
  deepdisc peers tiles.h5 -o peers/ --peer bpz --templates CWWSB4   # BPZ's classic set instead of COSMOS
"""

#: The peers: template fitters (EAZY, BPZ) and catalog machine learning (FlexZBoost, kNN, and DeepDISC's redshift
#: head on the catalog's magnitudes and colours: the catalog MDN).
PEERS = ("eazy", "bpz", "flexzboost", "knn", "catalog_mdn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("tiles", type=Path, help="TileSet to estimate (.h5)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output folder: catalog*.hdf5, model_*, pz_<peer>.hdf5, timing.json (seconds and objects/s)",
    )
    parser.add_argument(
        "--train",
        type=Path,
        help="TileSet whose labelled objects train the peers (default: the labelled objects of TILES)",
    )
    parser.add_argument("--peer", nargs="+", choices=PEERS, default=list(PEERS), help="peers to run")
    parser.add_argument(
        "--templates",
        help="template set of EAZY and BPZ (an eazy .param, a list name such as CWWSB4, a .list or a folder; "
        "default: each peer's own, eazy-py's FSPS set for EAZY, the COSMOS SEDs for BPZ)",
    )
    parser.add_argument("--templates-root", default="", help="eazy-photoz folder that .param paths are relative to")
    parser.add_argument(
        "--eazy-prior",
        action="store_true",
        help="EAZY with an apparent-magnitude prior fitted to the labels (recommended with 4 bands or fewer; "
        "a prior fitted to bright, low-z spec-z is biased, so it is off by default)",
    )
    parser.add_argument(
        "--nt-array",
        type=int,
        nargs="+",
        help="BPZ templates per broad type (required for a template set other than COSMOS_seds or CWWSB4)",
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
    timing = {}
    for peer in args.peer:
        try:
            timing[peer] = _run_peer(peer, bands, train, catalog, out, args)
        except DeepDiscError:
            raise
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as err:
            # the upstream codes (eazy-py, BPZ, flexcode, scikit-learn) fail deep inside on unusable catalogs
            raise DeepDiscError(f"{args.train or args.tiles}: {peer} cannot fit this catalog "
                                f"({len(train['redshift'])} labelled objects; {type(err).__name__}: {err})") from None
        t = timing[peer]
        print(f"{peer}: {t['objects']} objects -> {out / f'pz_{peer}.hdf5'} ({t['objects_per_s']:.1f} objects/s, "
              f"inform {t['inform_s']:.1f} s)")
    write_text_atomic(json.dumps(timing, indent=1) + "\n", out / "timing.json")
    return 0


def _catalog(path: Path, target: Path, measure_missing: bool) -> dict:
    from rail.tools.deepdisc_catalog import TileSetToCatalog

    stage = TileSetToCatalog.make_stage(
        name=f"catalog_{target.stem}", output=str(target), measure_missing=measure_missing
    )
    return stage(str(path)).data


def _run_peer(peer: str, bands: list[str], train: dict, catalog: dict, out: Path, args) -> dict:
    """Inform one peer on the labelled objects, estimate every object; seconds and objects/s."""
    from rail.estimation.algos import deepdisc_bpz, deepdisc_eazy, deepdisc_ml

    grid = dict(zmax=args.zmax, nzbins=args.nzbins, chunk_size=args.chunk_size)
    templates = dict(templates_root=args.templates_root, **({"templates": args.templates} if args.templates else {}))
    common, inform_only = {}, {}
    if peer == "eazy":
        inf_cls, est_cls = deepdisc_eazy.EazyInformer, deepdisc_eazy.EazyEstimator
        common = dict(bands=bands, z_max=args.zmax, **templates)
        inform_only = dict(fit_prior=bool(getattr(args, "eazy_prior", False)))
    elif peer == "bpz":
        inf_cls, est_cls = deepdisc_bpz.NIRCamBPZInformer, deepdisc_bpz.NIRCamBPZEstimator
        common = dict(nircam_bands=bands, **templates, **({"nt_array": list(args.nt_array)} if args.nt_array else {}))
        inform_only = dict(zmax=args.zmax)
    elif peer == "flexzboost":
        inf_cls, est_cls = deepdisc_ml.NIRCamFlexZBoostInformer, deepdisc_ml.NIRCamFlexZBoostEstimator
        common = dict(nircam_bands=bands, zmax=args.zmax, nzbins=args.nzbins)
    elif peer == "knn":
        inf_cls, est_cls = deepdisc_ml.NIRCamKNNInformer, deepdisc_ml.NIRCamKNNEstimator
        common = dict(nircam_bands=bands, zmax=args.zmax, nzbins=args.nzbins)
    else:
        inf_cls, est_cls = deepdisc_ml.CatalogMdnInformer, deepdisc_ml.CatalogMdnEstimator
        inform_only = dict(nircam_bands=bands, progress_bar=False)  # the model records its bands
    suffix = {"eazy": "npz", "bpz": "npz", "catalog_mdn": "pt"}.get(peer, "pkl")
    t0 = time.perf_counter()
    inf = inf_cls.make_stage(name=f"{peer}_inform", model=str(out / f"model_{peer}.{suffix}"), **common,
                             **inform_only)
    inf.inform(train)
    t1 = time.perf_counter()
    est = est_cls.make_stage(name=f"{peer}_estimate", model=inf.get_handle("model"),
                             output=str(out / f"pz_{peer}.hdf5"), **{**grid, **common})
    n = int(est.estimate(catalog).data.npdf)
    t2 = time.perf_counter()
    return {"objects": n, "labels": len(train["redshift"]), "inform_s": t1 - t0, "estimate_s": t2 - t1,
            "objects_per_s": n / max(t2 - t1, 1e-9)}
