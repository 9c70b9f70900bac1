"""Where do the pixels earn their keep? DeepDISC against the catalog learners, object by object (issue 18, item 4).

Reads a `bench_accuracy.py` workdir (its test field and photo-z files; nothing is trained or run) and compares,
on the same test objects and the same point estimate (``zmode``), DeepDISC's ensemble with the catalog learners
trained on the same spec-z: the catalog MDN (DeepDISC's own redshift head, loss, validation and width
calibration on FlexZBoost's catalog features: the same learner without the pixels), kNN and FlexZBoost; EAZY
is shown as the template-fitting reference. For each split it prints n, sigma_IQR and eta per estimator, and
how often DeepDISC is closer to the truth than the catalog MDN (``DeepDISC wins``) and how many objects are an
outlier for one but not the other (``only DD out`` / ``only MDN out``):

* F444W magnitude (catalog) and true redshift, the benchmark's bins;
* blending: the distance to the nearest other object in the object's tile (pixels) and the share of the
  segmented pixels inside the object's catalog box that belong to other objects (segmentation overlap);
  ``blended`` = a neighbour closer than ``--blend-px`` or an overlap above ``--blend-overlap``;
* size: the true effective radius (``true_r_e_arcsec``; simulated fields);
* DeepDISC's detected against forced rows (no detection matched the catalog box);
* blended or isolated, bright (F444W < 27) or faint.

Then the share of objects each estimator wins (smallest ``|dz|/(1+z)`` among the compared ones). A missing
photo-z file is left out with a note.

Usage, on the lead's realistic run (or a smoke workdir of bench_accuracy's docstring)::

    PYTHONPATH=src python benchmarks/images_vs_catalog.py --workdir /tmp/accreal --preset JADES9 \\
        [--out images_vs_catalog.md] [--plot images_vs_catalog.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import BRIGHT_CUT, MAG_EDGES, TEST_SED_LIBRARY, Z_EDGES, _slug  # noqa: E402

#: Estimators compared: label -> photo-z file relative to ``<workdir>/<preset>`` (``{labels}``: the label kind).
FILES = {
    "DeepDISC": "pz_{labels}_ensemble.hdf5",
    "Catalog MDN": "peers_{labels}/pz_" + _slug("Catalog MDN") + ".hdf5",
    "kNN": "peers_{labels}/pz_knn.hdf5",
    "FlexZBoost": "peers_{labels}/pz_flexzboost.hdf5",
    "EAZY": "peers_{labels}/pz_eazy.hdf5",
}
IMAGES, CATALOG = "DeepDISC", "Catalog MDN"
#: The estimators whose wins are counted (EAZY is a reference: a template fitter, not a learner on the labels).
LEARNERS = ("DeepDISC", "Catalog MDN", "kNN", "FlexZBoost")
OUTLIER = 0.15
NN_EDGES = (0.0, 6.0, 12.0, 24.0, np.inf)
OVERLAP_EDGES = (0.0, 1e-9, 0.1, 0.3, 1.0001)
SIZE_EDGES = (0.0, 0.1, 0.2, 0.4, np.inf)


def object_properties(test: Path) -> dict[str, np.ndarray]:
    """Per primary object of the test TileSet (file order): truth, magnitude, size, neighbour distance, overlap.

    ``nn_px``: distance (pixels) from the object's centroid to the nearest other object catalogued in the same
    tile (inf when alone); ``overlap``: share of the segmented pixels in its catalog box owned by other objects.
    """
    import h5py

    with h5py.File(test, "r") as f:
        o = {k: f["objects"][k][()] for k in f["objects"]}
        segmaps = f["segmaps"][()]
    primary = o["primary"].astype(bool)
    rows = np.flatnonzero(primary)
    nn = np.full(len(rows), np.inf)
    overlap = np.zeros(len(rows))
    by_tile: dict[int, np.ndarray] = {}
    for t in np.unique(o["tile"][rows]):
        by_tile[int(t)] = np.flatnonzero(o["tile"] == t)
    for k, r in enumerate(rows):
        same = by_tile[int(o["tile"][r])]
        others = same[o["object_id"][same] != o["object_id"][r]]
        if len(others):
            nn[k] = np.hypot(o["x"][others] - o["x"][r], o["y"][others] - o["y"][r]).min()
        seg = segmaps[o["tile"][r]]
        y0, y1 = int(max(o["bbox_y0"][r], 0)), int(np.ceil(o["bbox_y1"][r]))
        x0, x1 = int(max(o["bbox_x0"][r], 0)), int(np.ceil(o["bbox_x1"][r]))
        box = seg[y0:y1, x0:x1]
        own = np.count_nonzero(box == o["object_id"][r])
        other = np.count_nonzero((box > 0) & (box != o["object_id"][r]))
        overlap[k] = other / (own + other) if own + other else 0.0
    size = o["true_r_e_arcsec"][rows] if "true_r_e_arcsec" in o else np.full(len(rows), np.nan)
    return {"object_id": o["object_id"][rows], "ztrue": o.get("redshift_true", o["redshift"])[rows],
            "mag": o["mag_F444W"][rows], "size": size, "nn_px": nn, "overlap": overlap}


def load_estimates(base: Path, labels: str, object_id: np.ndarray) -> tuple[dict, dict, list[str]]:
    """Point estimates (zmode) of every estimator whose file exists, in the test field's object order."""
    from rail.deepdisc.evaluation.io import read_photoz

    zphot, flags, missing = {}, {}, []
    for name, pattern in FILES.items():
        path = base / pattern.format(labels=labels)
        if not path.exists():
            missing.append(f"{name} ({path})")
            continue
        pz = read_photoz(path)
        ids = pz.ancil.get("object_id")
        if ids is None or len(ids) != len(object_id) or not np.array_equal(ids.astype(np.int64), object_id):
            raise SystemExit(f"{path}: its rows are not the test field's primary objects in file order")
        zphot[name] = pz.point("zmode")
        if name == IMAGES and "forced" in pz.ancil:
            flags["forced"] = pz.ancil["forced"].astype(bool)
    return zphot, flags, missing


def _errors(zphot: dict, ztrue: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.abs(z - ztrue) / (1 + ztrue) for name, z in zphot.items()}


def _sigma_iqr(dz: np.ndarray) -> float:
    if len(dz) < 2:
        return np.nan
    q25, q75 = np.percentile(dz, [25, 75])
    return (q75 - q25) / 1.349


def split_table(title: str, groups: list[tuple[str, np.ndarray]], zphot: dict, ztrue: np.ndarray) -> list[str]:
    """Markdown rows: per group n, sigma_IQR/eta per estimator, DeepDISC's wins and outliers against the MDN."""
    names = list(zphot)
    signed = {name: (z - ztrue) / (1 + ztrue) for name, z in zphot.items()}
    pair = IMAGES in zphot and CATALOG in zphot
    head = "| " + title + " | n | " + " | ".join(f"{n} sigma_IQR / eta" for n in names)
    head += " | DeepDISC wins | only DD out / only MDN out |" if pair else " |"
    lines = [head, "|---|---:|" + "---|" * len(names) + ("---:|---|" if pair else "")]
    for label, sel in groups:
        n = int(sel.sum())
        if n == 0:
            continue
        cells = [f"{_sigma_iqr(signed[k][sel]):.3f} / {np.mean(np.abs(signed[k][sel]) > OUTLIER):.3f}" for k in names]
        row = f"| {label} | {n} | " + " | ".join(cells) + " |"
        if pair:
            a, b = np.abs(signed[IMAGES][sel]), np.abs(signed[CATALOG][sel])
            only_a, only_b = np.sum((a > OUTLIER) & (b <= OUTLIER)), np.sum((b > OUTLIER) & (a <= OUTLIER))
            row += f" {np.mean(a < b):.2f} | {only_a} / {only_b} |"
        lines.append(row)
    return lines + [""]


def _binned(values: np.ndarray, edges, fmt: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        label = fmt.format(lo=lo, hi=hi).replace("inf", "∞")
        out.append((label, (values >= lo) & (values < hi)))
    return out


def win_table(zphot: dict, ztrue: np.ndarray, groups: list[tuple[str, np.ndarray]]) -> list[str]:
    """Share of objects where each learner has the smallest |dz|/(1+z) (ties shared)."""
    names = [n for n in LEARNERS if n in zphot]
    if len(names) < 2:
        return []
    err = np.column_stack([_errors(zphot, ztrue)[n] for n in names])
    best = err == err.min(axis=1, keepdims=True)
    share = best / best.sum(axis=1, keepdims=True)
    lines = ["| objects | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, sel in groups:
        if sel.any():
            lines.append(f"| {label} | {int(sel.sum())} | " + " | ".join(f"{v:.2f}" for v in share[sel].mean(axis=0))
                         + " |")
    return lines + [""]


def report(props: dict, zphot: dict, flags: dict, args) -> str:
    ztrue, mag = props["ztrue"], props["mag"]
    keep = np.isfinite(ztrue) & np.all([np.isfinite(z) for z in zphot.values()], axis=0)
    blended = (props["nn_px"] < args.blend_px) | (props["overlap"] > args.blend_overlap)
    bright = mag < BRIGHT_CUT
    z = {k: v[keep] for k, v in zphot.items()}
    zt = ztrue[keep]

    def sel(groups):
        return [(label, s[keep]) for label, s in groups]

    everyone = [("all", np.ones(len(ztrue), bool)), (f"F444W < {BRIGHT_CUT:g}", bright)]
    lines = [f"{args.preset}: {int(keep.sum())} test objects with a true redshift; estimators "
             f"{', '.join(zphot)}; point estimate zmode; eta: |dz|/(1+z) > {OUTLIER}. Blended: a neighbour within "
             f"{args.blend_px:g} px or more than {args.blend_overlap:.0%} of the segmented pixels in the catalog box "
             f"owned by other objects ({int(blended[keep].sum())} objects).", ""]
    splits = [
        ("F444W", everyone + _binned(mag, MAG_EDGES, "{lo:g}-{hi:g}")),
        ("z true", _binned(ztrue, Z_EDGES, "{lo:g}-{hi:g}")),
        ("nearest neighbour (px)", _binned(props["nn_px"], NN_EDGES, "{lo:g}-{hi:g}")),
        ("segmentation overlap", [("none", props["overlap"] == 0)]
         + _binned(props["overlap"], OVERLAP_EDGES[1:], "{lo:.1f}-{hi:.1f}")),
        ("r_e true (arcsec)", _binned(props["size"], SIZE_EDGES, "{lo:g}-{hi:g}")),
        ("blend x brightness", [("isolated, bright", ~blended & bright), ("blended, bright", blended & bright),
                                ("isolated, faint", ~blended & ~bright), ("blended, faint", blended & ~bright)]),
    ]
    if "forced" in flags:
        splits.append(("DeepDISC row", [("detected", ~flags["forced"]), ("forced", flags["forced"]),
                                         ("forced, bright", flags["forced"] & bright)]))
    for title, groups in splits:
        lines += split_table(title, sel(groups), z, zt)
    lines += ["Share of objects each learner wins (smallest |dz|/(1+z)):", ""]
    lines += win_table(z, zt, sel(everyone + [("blended", blended), ("isolated", ~blended)]
                                  + _binned(mag, MAG_EDGES, "F444W {lo:g}-{hi:g}")))
    return "\n".join(lines)


def plot(props: dict, zphot: dict, path: Path) -> None:
    """sigma_IQR and eta per F444W bin and per overlap bin, every estimator (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ztrue = props["ztrue"]
    signed = {k: (v - ztrue) / (1 + ztrue) for k, v in zphot.items()}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharey="row")
    for col, (key, edges, xlabel) in enumerate((("mag", MAG_EDGES, "F444W (catalog)"),
                                                ("nn_px", NN_EDGES[:-1] + (48.0,), "nearest neighbour (px)"))):
        x = props[key]
        centres = 0.5 * (np.asarray(edges[:-1]) + np.asarray(edges[1:]))
        for name, dz in signed.items():
            stats = [((x >= lo) & (x < hi) & np.isfinite(ztrue)) for lo, hi in zip(edges[:-1], edges[1:])]
            if key == "nn_px":
                stats[-1] = (x >= edges[-2]) & np.isfinite(ztrue)
            style = dict(marker="o", lw=2.5 if name in (IMAGES, CATALOG) else 1.2,
                         ls="--" if name == "EAZY" else "-")
            axes[0, col].plot(centres, [_sigma_iqr(dz[s]) for s in stats], label=name, **style)
            axes[1, col].plot(centres, [np.mean(np.abs(dz[s]) > OUTLIER) for s in stats], label=name, **style)
        axes[1, col].set_xlabel(xlabel)
    axes[0, 0].set_ylabel("sigma_IQR")
    axes[1, 0].set_ylabel(f"eta (|dz|/(1+z) > {OUTLIER})")
    axes[0, 0].set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Pixels (DeepDISC) against catalog learners on the same labels and test objects")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="bench_accuracy.py workdir (holds <preset>/)")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--labels", default="realistic", help="label kind of the run (realistic or complete)")
    p.add_argument("--blend-px", type=float, default=6.0, help="neighbour distance below which an object is blended")
    p.add_argument("--blend-overlap", type=float, default=0.1, help="segmentation overlap above which it is blended")
    p.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    p.add_argument("--plot", type=Path, help="write a PNG of sigma_IQR and eta by magnitude and neighbour distance")
    args = p.parse_args(argv)
    base = Path(args.workdir) / args.preset
    test = base / f"{args.preset}_test_{TEST_SED_LIBRARY}.h5"
    if not test.exists():
        raise SystemExit(f"{test}: no test field (run bench_accuracy.py first)")
    props = object_properties(test)
    zphot, flags, missing = load_estimates(base, args.labels, props["object_id"].astype(np.int64))
    if not zphot:
        raise SystemExit(f"{base}: no photo-z file of any estimator")
    text = report(props, zphot, flags, args)
    if missing:
        text += "\nNot found (left out): " + "; ".join(missing) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot(props, zphot, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
