"""Work and hardware efficiency of DeepDISC inference next to a stock torchvision Mask R-CNN, in one run.

Counts the floating-point work of one inference pass with torch's ``FlopCounterMode`` (convolutions and
matrix products; RoIAlign, NMS and element-wise ops are not counted) and times it, then measures the CPU's
dense-convolution peak in the same process with the same threads. Two models see the same synthetic tiles
(Gaussian sources on noise, the tiles of ``bench_estimate.py``):

* **ours**: the estimator's path (``encode`` + ``detect`` without masks + ``redshift`` on the catalog boxes)
  of an untrained `rail.deepdisc.model.network` model (``--backbone``, default resnet18);
* **reference**: torchvision ``maskrcnn_resnet50_fpn`` with stock settings (FPN 256, 1000 RPN proposals,
  box head 1024, mask head at inference, 100 detections) but our bands (first convolution with C inputs) and
  tile size (``min_size = max_size =`` tile side, so nothing is resized). Its weights are untrained too, and an
  untrained RPN's proposals collapse under its NMS, so the reference's RPN NMS is switched off: it then carries
  the stock 1000 proposals per tile, the work of a trained detector with stock settings.

Reported per model: GFLOP per tile and per catalog object, seconds per tile, achieved GFLOP/s and its fraction
of the measured peak; then the ratio ours / reference of each.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_flops.py --threads 2          # full run
    PYTHONPATH=src python benchmarks/bench_flops.py --size 64 --tiles 2 --repeats 1       # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_estimate import JADES9, PIXEL_SCALE, make_tiles  # noqa: E402

TARGET_GFLOP_PER_TILE = 16.0
PEAK_CONV_SHAPE = (8, 256, 32, 32)  # (B, C, H, W) of the peak probe: a 3x3, C -> C convolution
PEAK_REPEATS = 5
UNTRAINED_RPN_NMS = 1.0  # IoU above which the reference RPN suppresses a proposal: never


def conv_peak(threads: int) -> float:
    """Best achieved GFLOP/s of a dense 3x3 convolution (the CPU's practical peak for this work)."""
    import torch

    torch.set_num_threads(threads)
    b, c, h, w = PEAK_CONV_SHAPE
    x = torch.randn(b, c, h, w)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).eval()
    flops = 2.0 * b * c * c * 9 * h * w
    best = float("inf")
    with torch.inference_mode():
        conv(x)
        for _ in range(PEAK_REPEATS):
            t0 = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def our_model(backbone: str, n_bands: int):
    """Untrained DeepDISC network and its inference pass (encode, detect, redshift on catalog boxes)."""
    import torch

    from rail.deepdisc.model.network import NetworkConfig, build_model

    torch.manual_seed(0)
    model = build_model(NetworkConfig(bands=JADES9[:n_bands], pixel_scale=PIXEL_SCALE, backbone=backbone)).eval()

    def run(images, boxes):
        enc = model.encode(images)
        detections = model.detect(enc)
        model.redshift(enc, boxes, [torch.zeros(len(b)) for b in boxes])
        return detections

    return run, model.rpn


def reference_model(n_bands: int, size: int):
    """torchvision Mask R-CNN R50-FPN, stock settings, C-band first convolution, no resizing."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, min_size=size,
                                  max_size=size, image_mean=[0.0] * n_bands, image_std=[1.0] * n_bands)
    body = model.backbone.body
    body.conv1 = torch.nn.Conv2d(n_bands, body.conv1.out_channels, 7, stride=2, padding=3, bias=False)
    # An untrained RPN scores near-identical anchors alike and its NMS collapses them to a few proposals;
    # without that NMS the reference carries the stock 1000 proposals per tile into the box head.
    model.rpn.nms_thresh = UNTRAINED_RPN_NMS
    model.eval()

    def run(images, boxes):
        return model(list(images))

    return run, model.rpn


def measure(run, rpn, images, boxes, repeats: int) -> dict:
    """FLOPs of one pass over ``images`` and its best wall time of ``repeats``; RPN proposals per tile."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    proposals = []
    hook = rpn.register_forward_hook(lambda module, inputs, output: proposals.append(
        float(np.mean([len(p) for p in output[0]]))))
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            out = run(images, boxes)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run(images, boxes)
            best = min(best, time.perf_counter() - t0)
    hook.remove()
    detections = float(np.mean([len(o["boxes"]) for o in out]))
    return {"flops": float(counter.get_total_flops()), "seconds": best, "detections": detections,
            "proposals": proposals[0],
            "by_module": {k: float(sum(v.values())) for k, v in counter.get_flop_counts().items()
                          if k.count(".") == 1}}


def worker(args) -> dict:
    import torch

    from rail.deepdisc.tileset.io import read_tileset

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_flops_") as tmp:
        ts = read_tileset(make_tiles(Path(tmp) / "tiles.h5", n_tiles=args.tiles, size=args.size,
                                     n_bands=args.bands, objects_per_tile=args.objects))
    images = torch.from_numpy(np.ascontiguousarray(ts.images, dtype=np.float32))
    obj = ts.objects
    boxes_all = np.stack([obj["bbox_x0"], obj["bbox_y0"], obj["bbox_x1"], obj["bbox_y1"]], 1).astype(np.float32)
    boxes = [torch.from_numpy(boxes_all[ts.object_slice(t)]) for t in range(ts.n_tiles)]
    n_objects = len(boxes_all)
    peak_before = conv_peak(args.threads)
    ours = measure(*our_model(args.backbone, args.bands), images, boxes, args.repeats)
    ref = measure(*reference_model(args.bands, args.size), images, boxes, args.repeats)
    peak_after = conv_peak(args.threads)
    peak = max(peak_before, peak_after)
    rows = {}
    for name, m in (("ours", ours), ("reference", ref)):
        rows[name] = {
            "gflop_per_tile": m["flops"] / args.tiles / 1e9,
            "gflop_per_object": m["flops"] / n_objects / 1e9,
            "s_per_tile": m["seconds"] / args.tiles,
            "objects_per_s": n_objects / m["seconds"],
            "gflops": m["flops"] / m["seconds"] / 1e9,
            "efficiency": m["flops"] / m["seconds"] / 1e9 / peak,
            "detections_per_tile": m["detections"],
            "proposals_per_tile": m["proposals"],
            "gflop_by_module_per_tile": {k: v / args.tiles / 1e9 for k, v in m["by_module"].items()},
        }
    return {"peak_gflops": peak, "peak_spread": [peak_before, peak_after], "objects_per_tile": n_objects / args.tiles,
            **rows}


def table(r: dict, args) -> str:
    o, f = r["ours"], r["reference"]
    lines = [f"Work per inference pass, {args.tiles} tiles of {args.size}x{args.size} px, {args.bands} bands, "
             f"{r['objects_per_tile']:.0f} catalog objects/tile, {args.threads} threads; dense 3x3 conv peak "
             f"{r['peak_gflops']:.1f} GFLOP/s (before/after: "
             f"{r['peak_spread'][0]:.1f}/{r['peak_spread'][1]:.1f})", "",
             "| model | proposals/tile | GFLOP/tile | GFLOP/object | s/tile | objects/s | GFLOP/s | of peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"ours": f"DeepDISC {args.backbone} (estimator path)",
             "reference": "stock Mask R-CNN R50-FPN (1000 proposals, masks)"}
    for key in ("ours", "reference"):
        x = r[key]
        lines.append(f"| {names[key]} | {x['proposals_per_tile']:.0f} | {x['gflop_per_tile']:.2f} | "
                     f"{x['gflop_per_object']:.3f} | {x['s_per_tile']:.3f} | {x['objects_per_s']:.0f} | "
                     f"{x['gflops']:.1f} | {x['efficiency']:.0%} |")
    lines.append(f"| ratio ours/reference | {o['proposals_per_tile'] / f['proposals_per_tile']:.2f} | "
                 f"{o['gflop_per_tile'] / f['gflop_per_tile']:.3f} | "
                 f"{o['gflop_per_object'] / f['gflop_per_object']:.3f} | {o['s_per_tile'] / f['s_per_tile']:.3f} | "
                 f"{o['objects_per_s'] / f['objects_per_s']:.2f} | {o['gflops'] / f['gflops']:.2f} | "
                 f"{o['efficiency'] / f['efficiency']:.2f} |")
    lines += ["", f"Detections per tile (untrained weights): ours {o['detections_per_tile']:.0f} (no masks), "
              f"reference {f['detections_per_tile']:.0f} (each with a 28x28 mask).", "",
              "GFLOP per tile by module:", ""]
    for key in ("ours", "reference"):
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r[key]["gflop_by_module_per_tile"].items(),
                                                             key=lambda kv: -kv[1]) if v > 0.005)
        lines.append(f"- {names[key]}: {parts}")
    lines.append(f"\nTarget: <= {TARGET_GFLOP_PER_TILE:.0f} GFLOP/tile for one R18 member: "
                 f"{'met' if o['gflop_per_tile'] <= TARGET_GFLOP_PER_TILE else 'missed'} "
                 f"({o['gflop_per_tile']:.2f}).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=8, help="tiles per pass (default 8)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bands", type=int, default=9)
    p.add_argument("--objects", type=int, default=15, help="catalog objects per tile (default 15)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed passes, best kept (default 3)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    r = worker(args)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    print(table(r, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
