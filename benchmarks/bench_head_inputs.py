"""The same redshift head on different inputs: what do DeepDISC's pixels give the head, and what do they lack?

Issue 18 item 4: where the pixels do not beat the catalog, find why. This script holds the learner, the labels
and the test objects fixed and changes only the head's inputs. It trains the catalog MDN
(`rail.deepdisc.peers.catalog_mdn_train`: DeepDISC's redshift head, loss, ensemble, kept-epoch rule and width
calibration) on the spec-z of a `bench_accuracy.py` training field, with as inputs:

* ``catalog mag + colours``: FlexZBoost's features (F444W magnitude and neighbouring colours): the catalog MDN;
* ``catalog colours``: the same without the magnitude;
* ``pixel colours``: the C softened log-flux colours DeepDISC's head computes from the box's pixels
  (`rail.deepdisc.model.network.pixel_features`, the catalog boxes, pixels minus the training set's band means
  as in the network);
* ``pixel colours + shape``: everything DeepDISC's direct pixel path gives the head (colours and the
  brightness-free 4 x 4 patch of every band): DeepDISC's head without the backbone's RoI features;
* ``pixel colours + shape + F444W``: the same plus the catalog magnitude;
* two candidate repairs of the pixel colours: ``pixel colours, central half box`` (the colours of the central
  half of the box, where the object's light dominates) and ``pixel colours, footprint`` (the colours of the
  object's segment alone: its neighbours' light and the sky around it masked out, as a catalog's isophotal
  fluxes are measured; at inference DeepDISC would take its mask head's mask);
* ``catalog + pixel colours, central half box`` and ``catalog + pixel colours + shape``: do the pixels add
  anything to the catalog's photometry, and do many pixel inputs cost accuracy next to it?
* ``pixel colours, per-object normalised``: the colours as the head's ``LayerNorm`` of their block leaves them
  (each object's colours scaled to unit spread over the bands: the strength of its colours is lost);

and scores every variant on every object of the test field (held-out SED family and shifted nuisances) and of
the calibration field (training SEDs and nuisances: in-domain), by the zmode's sigma_IQR and eta overall,
at F444W < 27 and per F444W bin. A variant trains in tens of CPU seconds; nothing else is trained. Usage
(after bench_accuracy.py has simulated the fields)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_head_inputs.py --workdir /tmp/accreal --preset JADES9
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import BRIGHT_CUT, MAG_EDGES, TEST_SED_LIBRARY  # noqa: E402

VARIANTS = ("catalog mag + colours", "catalog colours", "pixel colours", "pixel colours + shape",
            "pixel colours + shape + F444W", "pixel colours, central half box", "pixel colours, footprint",
            "catalog + pixel colours, central half box", "catalog + pixel colours + shape",
            "pixel colours, per-object normalised")
POOL_SIZE = 4
#: Flux zero points of the pixel features: what the network subtracts today, and a sky estimate.
PIXEL_ZEROS = ("training mean", "tile median")
OUTLIER = 0.15


def primary_inputs(path: Path, center: np.ndarray | None, zero: str = "training mean",
                   sampling: int = 2, pool_size: int = POOL_SIZE) -> tuple[dict, dict]:
    """Catalog columns and pixel features of the primary objects of a TileSet (catalog boxes).

    Pixel features: `pixel_features` on the pixels minus ``center`` (the training set's band means, as in the
    network) or, with ``zero="tile median"``, minus each tile's median per band (a sky estimate). ``box``:
    colours and shape in the catalog box (DeepDISC's direct pixel path); ``central``: the colours of the
    central half of the box; ``footprint``: the colours of the pixels of the object's segment only (its light
    without its neighbours'). ``sampling``: bilinear samples per patch cell and axis (the network's 2: 8 x 8
    per box whatever its size; 0: every pixel).
    """
    import torch

    from rail.deepdisc.model.network import pixel_features
    from rail.deepdisc.model.normalise import band_statistics
    from rail.deepdisc.tileset.io import read_tileset

    ts = read_tileset(path, validate=False)
    if center is None:
        center = band_statistics(ts.images, ts.segmaps).center_scale("zscore")[0]
    o = ts.objects
    primary = np.flatnonzero(o["primary"])
    n_bands = ts.images.shape[1]
    feats = {"box": np.zeros((len(primary), n_bands * (1 + pool_size**2))),
             "central": np.zeros((len(primary), n_bands)), "footprint": np.zeros((len(primary), n_bands))}
    boxes = np.column_stack([o[k] for k in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")])
    centre, half = 0.5 * (boxes[:, :2] + boxes[:, 2:]), 0.25 * (boxes[:, 2:] - boxes[:, :2])
    inner = np.column_stack([centre - half, centre + half])

    def features(image, box_rows):
        return pixel_features(image, [torch.from_numpy(box_rows).float()], pool_size=pool_size,
                              sampling_ratio=sampling).double().numpy()

    with torch.no_grad():
        for t in np.unique(o["tile"][primary]):
            rows = primary[o["tile"][primary] == t]
            at = np.searchsorted(primary, rows)
            level = center if zero == "training mean" else np.median(ts.images[t], axis=(1, 2))
            flux = torch.from_numpy((ts.images[t] - level[:, None, None]).astype(np.float32))[None]
            feats["box"][at] = features(flux, boxes[rows])
            feats["central"][at] = features(flux, inner[rows])[:, :n_bands]
            for r, a in zip(rows, at):  # only the object's own segment: its neighbours' light masked out
                mask = torch.from_numpy(ts.segmaps[t] == o["object_id"][r])
                feats["footprint"][a] = features(flux * mask, boxes[r : r + 1])[0, :n_bands]
    table = {k: np.asarray(v)[primary] for k, v in o.items()}
    return {"table": table, "center": center, "bands": list(ts.bands)}, feats


def variant_features(name: str, table: dict, pixels: dict, bands: list[str]) -> np.ndarray:
    """The head's inputs of a variant (`VARIANTS`)."""
    from rail.deepdisc.peers.catalog_mdn import catalog_features

    catalog, _ = catalog_features(table, bands, ref_band="F444W" if "F444W" in bands else bands[-1],
                                  mag_limit=30.0)
    box = pixels["box"]
    return {"catalog mag + colours": catalog, "catalog colours": catalog[:, 1:],
            "pixel colours": box[:, :len(bands)], "pixel colours + shape": box,
            "pixel colours + shape + F444W": np.column_stack([box, catalog[:, 0]]),
            "pixel colours, central half box": pixels["central"],
            "pixel colours, footprint": pixels["footprint"],
            "catalog + pixel colours, central half box": np.column_stack([catalog, pixels["central"]]),
            "catalog + pixel colours + shape": np.column_stack([catalog, box]),
            "pixel colours, per-object normalised": _layer_normed(box[:, :len(bands)])}[name]


def _layer_normed(x: np.ndarray) -> np.ndarray:
    """What the head's ``LayerNorm`` does to a block before its affine map: each row to mean 0 and std 1."""
    centred = x - x.mean(axis=1, keepdims=True)
    return centred / np.sqrt(centred.var(axis=1, keepdims=True) + 1e-5)


def _metrics(zp: np.ndarray, zt: np.ndarray) -> tuple[float, float]:
    dz = (zp - zt) / (1 + zt)
    q25, q75 = np.percentile(dz, [25, 75])
    return (q75 - q25) / 1.349, float(np.mean(np.abs(dz) > OUTLIER))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="bench_accuracy.py workdir (holds <preset>/)")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--labels", default="realistic")
    p.add_argument("--members", type=int, default=3, help="ensemble members (default 3, as bench_accuracy)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--pixel-sampling", type=int, choices=(2, 0), default=2, help="bilinear samples per patch "
                   "cell and axis of the pixel features: the network's 2 (8 x 8 per box) or 0 (every pixel)")
    p.add_argument("--pool-size", type=int, default=POOL_SIZE, help="side of the pixel patch per band "
                   f"(the network's pixel_pool_size; default {POOL_SIZE})")
    p.add_argument("--pixel-zero", choices=PIXEL_ZEROS, default=PIXEL_ZEROS[0], help="flux zero of the pixel "
                   "features: the training set's band means (what the network subtracts) or each tile's median")
    args = p.parse_args(argv)
    from rail.deepdisc.peers.catalog_mdn import CatalogMdnSettings
    from rail.deepdisc.peers.catalog_mdn_train import train_catalog_mdn

    base = Path(args.workdir) / args.preset
    paths = {"train": base / f"{args.preset}_train_{args.labels}.h5",
             "test": base / f"{args.preset}_test_{TEST_SED_LIBRARY}.h5",
             "calib": base / f"{args.preset}_calib_{args.labels}.h5"}
    for key in ("train", "test"):
        if not paths[key].exists():
            raise SystemExit(f"{paths[key]}: missing (run bench_accuracy.py first)")
    t0 = time.perf_counter()
    sets = {"train": primary_inputs(paths["train"], None, args.pixel_zero, args.pixel_sampling, args.pool_size)}
    center = sets["train"][0]["center"]
    for key in ("test", "calib"):
        if paths[key].exists():
            sets[key] = primary_inputs(paths[key], center, args.pixel_zero, args.pixel_sampling,
                                       args.pool_size)
    counts = ", ".join(f"{len(pix['footprint'])} {key}" for key, (_, pix) in sets.items())
    print(f"pixel features of {counts} objects in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    train, train_pix = sets.pop("train")
    bands = train["bands"]
    lab = np.isfinite(train["table"]["redshift"])
    settings = CatalogMdnSettings(members=args.members, progress_bar=False)
    tables = {k: _header(k, args, int(lab.sum()), v[0]["table"]) for k, v in sets.items()}
    for name in args.variants:
        c0 = time.process_time()
        model = train_catalog_mdn(variant_features(name, train["table"], train_pix, bands)[lab],
                                  train["table"]["ebv"][lab], train["table"]["redshift"][lab], settings,
                                  feature_config={"inputs": name})
        cpu = time.process_time() - c0
        for key, (data, pix) in sets.items():
            tables[key].append(_row(name, cpu, model, variant_features(name, data["table"], pix, bands), data["table"]))
            print(key, tables[key][-1], file=sys.stderr, flush=True)
    print("\n".join(line for lines in tables.values() for line in [*lines, ""]))
    return 0


#: What each evaluation set is.
SET_TEXT = {"test": "the test field (held-out SED family, shifted PSF, depth, sizes, noise): every object",
            "calib": "the calibration field (training SEDs and nuisances: in-domain; bench_accuracy's tiles holding a "
                     "spec-z): every object"}


def _bins(table: dict) -> list[tuple[str, np.ndarray]]:
    mag = table["mag_F444W"]
    out = [("all", np.ones(len(mag), bool)), (f"<{BRIGHT_CUT:g}", mag < BRIGHT_CUT)]
    return out + [(f"{lo:g}-{hi:g}", (mag >= lo) & (mag < hi)) for lo, hi in zip(MAG_EDGES[:-1], MAG_EDGES[1:])]


def _header(key: str, args, n_labels: int, table: dict) -> list[str]:
    bins = _bins(table)
    return [f"{args.preset}, {SET_TEXT[key]} ({len(table['mag_F444W'])} objects): the catalog MDN's head and "
            f"training on {n_labels} spec-z, {args.members} members, pixel flux zero: {args.pixel_zero}, "
            f"sampling {args.pixel_sampling}, patch {args.pool_size}x{args.pool_size}; "
            "sigma_IQR / eta of zmode by F444W", "",
            "| inputs | train CPU s | " + " | ".join(f"{name} (n={int(sel.sum())})" for name, sel in bins) + " |",
            "|---|---:|" + "---|" * len(bins)]


def _row(name: str, cpu: float, model: dict, features: np.ndarray, table: dict) -> str:
    from rail.deepdisc.mixture import Mixture
    from rail.deepdisc.peers.catalog_mdn import catalog_mixtures

    zp = Mixture(*catalog_mixtures(model, features, np.nan_to_num(table["ebv"]))).mode(np.linspace(0, 12, 1201))
    zt = table["redshift_true"]
    cells = ["{:.3f} / {:.3f}".format(*_metrics(zp[sel], zt[sel])) for _, sel in _bins(table)]
    return f"| {name} | {cpu:.0f} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    sys.exit(main())
