"""Why catalogued objects go undetected: box sizes, anchor coverage and, with models, detections per F444W bin.

For a TileSet (e.g. ``deepdisc simulate --tiles 600 --seed 3``) prints one table per question, by F444W
magnitude bin of the primary objects (``mag_F444W``; the reddest ``mag_`` column otherwise):

1. the catalog boxes: median and 90th-percentile side (px), fraction touching a tile edge;
2. the anchors: median best anchor IoU and the fraction of boxes with a positive RPN anchor, under the old
   anchors (one size per level, IoU >= 0.7) and today's defaults (`rail.deepdisc.model.anchors`);
3. per model given (``--model NAME=model.pt``, ensemble member 0, the model file's own settings): completeness by
   IoU >= 0.3 alone and with the second matching round (`rail.deepdisc.inference.match`), the median IoU of the
   best detection (score >= 0.05), the fraction with an RPN proposal at IoU >= 0.5, and the fraction with any
   detection holding the object's position ("core found") and that detection's median side. Then completeness
   by catalog box side.

    PYTHONPATH=src python benchmarks/bench_detection.py test.h5 --model before=model_old.pt --model after=model.pt
"""

from __future__ import annotations

import argparse

import numpy as np

MAG_EDGES = (18.0, 22.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 31.0)
SIZE_EDGES = (1.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 1024.0)


def _bins(values, edges):
    for lo, hi in zip(edges[:-1], edges[1:]):
        yield f"{lo:g}-{hi:g}", (values >= lo) & (values < hi)


def _scales(scales):
    return ", ".join(f"{s:.2f}" for s in scales)


def _table(title, header, rows):
    print(f"\n{title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def catalog_tables(ts, mag):
    from rail.deepdisc.model.anchors import best_anchor_iou
    from rail.deepdisc.model.config import LEGACY_DEFAULTS, NetworkConfig

    o = ts.objects
    prim = o["primary"].astype(bool)
    boxes = np.stack([o[k] for k in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")], axis=1).astype(float)[prim]
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    h, w = ts.tile_shape
    edge = (boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 2] >= w) | (boxes[:, 3] >= h)
    configs = {"old": NetworkConfig(bands=ts.bands, pixel_scale=ts.pixel_scale, **LEGACY_DEFAULTS),
               "now": NetworkConfig(bands=ts.bands, pixel_scale=ts.pixel_scale)}
    best = {k: best_anchor_iou(c, boxes, ts.tile_shape) for k, c in configs.items()}
    rows = []
    for name, sel in _bins(mag, MAG_EDGES):
        if not sel.any():
            continue
        cells = [name, str(sel.sum()), f"{np.median(side[sel]):.0f}", f"{np.percentile(side[sel], 90):.0f}",
                 f"{edge[sel].mean():.2f}"]
        for k, c in configs.items():
            cells += [f"{np.median(best[k][sel]):.2f}", f"{np.mean(best[k][sel] >= c.rpn_fg_iou_threshold):.2f}"]
        rows.append(cells)
    _table(f"Catalog boxes and anchors ({ts.n_tiles} tiles of {h} x {w} px; old anchors: one size per level, "
           f"positive at IoU >= 0.7; now: {_scales(configs['now'].anchor_scales)} x size, IoU >= "
           f"{configs['now'].rpn_fg_iou_threshold})",
           ["F444W", "n", "median side", "p90 side", "touch edge", "old best IoU", "old positive",
            "now best IoU", "now positive"], rows)
    return side


def detections(model, ts, batch=8):
    """Per primary object: IoU-only and two-round matches, best IoU, proposal IoU, core found and its side."""
    import torch

    from rail.deepdisc.inference.match import box_iou, match_boxes

    o = ts.objects
    out = {k: [] for k in ("iou_only", "matched", "best_iou", "proposal", "core", "core_side")}
    with torch.inference_mode():
        for a in range(0, ts.n_tiles, batch):
            b = min(a + batch, ts.n_tiles)
            enc = model.encode(torch.from_numpy(np.ascontiguousarray(ts.images[a:b], np.float32)))
            proposals, _ = model.rpn(enc.images, enc.features)
            dets = model.detect(enc)
            for i, t in enumerate(range(a, b)):
                sl = ts.object_slice(t)
                cat = np.stack([o[k][sl] for k in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")], 1).astype(float)
                keep = dets[i]["scores"].numpy() >= 0.05
                db, sc = dets[i]["boxes"].numpy().astype(float)[keep], dets[i]["scores"].numpy()[keep]
                two = match_boxes(cat, db, sc)
                one = match_boxes(cat, db, sc, contained_fraction=0.0)
                iou = box_iou(cat, db)
                piou = box_iou(cat, proposals[i].numpy().astype(float))
                x, y = o["x"][sl], o["y"][sl]
                for j in np.flatnonzero(o["primary"][sl]):
                    holds = (db[:, 0] <= x[j]) & (x[j] < db[:, 2]) & (db[:, 1] <= y[j]) & (y[j] < db[:, 3])
                    core = np.flatnonzero(holds)
                    core = core[np.argmax(sc[core])] if len(core) else -1
                    out["iou_only"].append(one.detection[j] >= 0)
                    out["matched"].append(two.detection[j] >= 0)
                    out["best_iou"].append(iou[j].max() if iou.shape[1] else 0.0)
                    out["proposal"].append(piou[j].max() >= 0.5 if piou.shape[1] else False)
                    out["core"].append(core >= 0)
                    out["core_side"].append(max(db[core, 2] - db[core, 0], db[core, 3] - db[core, 1])
                                            if core >= 0 else np.nan)
    return {k: np.asarray(v, float) for k, v in out.items()}


def model_tables(name, path, ts, mag, side):
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.model.network import model_from_artifact

    art = load_artifact(path)
    model = model_from_artifact(art, 0)
    c = art["config"]
    d = detections(model, ts)
    rows = []
    for label, sel in _bins(mag, MAG_EDGES):
        if sel.any():
            rows.append([label, str(sel.sum()), f"{d['iou_only'][sel].mean():.2f}", f"{d['matched'][sel].mean():.2f}",
                         f"{np.median(d['best_iou'][sel]):.2f}", f"{d['proposal'][sel].mean():.2f}",
                         f"{d['core'][sel].mean():.2f}", f"{np.nanmedian(d['core_side'][sel]):.0f}"
                         if np.isfinite(d["core_side"][sel]).any() else "-", f"{np.median(side[sel]):.0f}"])
    _table(f"Model {name} ({path}, member 0; anchor scales {_scales(c.get('anchor_scales', [1.0]))}, RPN proposals "
           f"{c['rpn_pre_nms_test']}/{c['rpn_post_nms_test']})",
           ["F444W", "n", "complete (IoU)", "complete (+core)", "median best IoU", "proposal IoU>=0.5",
            "core found", "core side", "catalog side"], rows)
    rows = [[label, str(sel.sum()), f"{d['iou_only'][sel].mean():.2f}", f"{d['matched'][sel].mean():.2f}"]
            for label, sel in _bins(side, SIZE_EDGES) if sel.any()]
    _table(f"Model {name}: completeness by catalog box side (px)", ["side", "n", "complete (IoU)",
                                                                     "complete (+core)"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tiles", help="TileSet (.h5) with mag_F444W and bbox columns")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="a model file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from rail.deepdisc.tileset.io import read_tileset

    torch.set_num_threads(args.threads)
    ts = read_tileset(args.tiles)
    prim = ts.objects["primary"].astype(bool)
    band = "F444W" if "mag_F444W" in ts.objects else ts.bands[-1]
    mag = np.asarray(ts.objects[f"mag_{band}"], float)[prim]
    side = catalog_tables(ts, mag)
    for spec in args.model:
        name, _, path = spec.partition("=")
        model_tables(name, path, ts, mag, side)


if __name__ == "__main__":
    main()
