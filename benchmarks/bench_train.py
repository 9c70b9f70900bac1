"""Training speed and memory of the DeepDISC network: seconds per image and peak RSS, per backbone.

Each backbone runs in a fresh subprocess (so peak RSS is its own) on synthetic tiles (Gaussian galaxies on
noise, ~15 objects per tile, a third without spec-z), through the real training path: batch assembly with
augmentation, forward (all losses), backward, optimiser step. The first steps are warm-up and not timed.

Full-size run (the issue's targets: 128 x 128 px, 9 bands, 2 CPU cores; R18 <= 0.15 s/image, R50 <= 0.5
s/image,
peak RSS < 4 GB), on a quiet machine::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_train.py --threads 2 --size 128 --bands 9 \\
        --objects 15 --steps 20 --batch-size 4

Smoke run (seconds)::

    PYTHONPATH=src python benchmarks/bench_train.py --size 64 --steps 2 --warmup 1 --backbones resnet18
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def synthetic_tiles(n_tiles, size, n_bands, n_objects, seed=0):
    from rail.deepdisc.tileset.contract import empty_objects
    from rail.deepdisc.tileset.format import TileSet

    rng = np.random.default_rng(seed)
    bands = tuple(f"B{k}" for k in range(n_bands))
    images = rng.standard_normal((n_tiles, n_bands, size, size)).astype(np.float32)
    segmaps = np.zeros((n_tiles, size, size), np.int32)
    yy, xx = np.mgrid[0:size, 0:size]
    rows = []
    for t in range(n_tiles):
        for _ in range(n_objects):
            x, y = rng.uniform(3, size - 3, 2)
            s = rng.lognormal(np.log(2.0), 0.5)
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
            images[t] += (rng.uniform(3, 50) * rng.uniform(0.3, 1.5, n_bands)[:, None, None] * blob).astype(
                np.float32
            )
            oid = len(rows) + 1
            segmaps[t][(blob > 0.2) & (segmaps[t] == 0)] = oid
            rows.append((oid, t, x, y, 3 * s, rng.uniform(0.2, 6) if rng.uniform() < 0.67 else np.nan))
    obj = empty_objects(bands, len(rows))
    for k, (oid, t, x, y, h, z) in enumerate(rows):
        obj["object_id"][k], obj["tile"][k], obj["primary"][k] = oid, t, True
        obj["x"][k], obj["y"][k], obj["redshift"][k], obj["ebv"][k] = x, y, z, 0.01
        obj["bbox_x0"][k], obj["bbox_y0"][k] = max(x - h, 0), max(y - h, 0)
        obj["bbox_x1"][k], obj["bbox_y1"][k] = min(x + h, size), min(y + h, size)
    tiles = {
        "tile_id": np.arange(n_tiles),
        "kind": np.array(["grid"] * n_tiles),
        "x0": np.zeros(n_tiles, int),
        "y0": np.zeros(n_tiles, int),
        "ra": np.zeros(n_tiles),
        "dec": np.zeros(n_tiles),
        "wcs": np.array([""] * n_tiles),
    }
    return TileSet(images=images, segmaps=segmaps, tiles=tiles, objects=obj, bands=bands, pixel_scale=0.03)


def measure(args) -> dict:
    """Time training steps of one backbone in this process."""
    import torch

    from rail.deepdisc.memory import peak_rss_mb
    from rail.deepdisc.model.network import NetworkConfig, build_model
    from rail.deepdisc.model.normalise import band_statistics
    from rail.deepdisc.training.data import make_batch, tile_targets
    from rail.deepdisc.training.optimiser import make_optimizer
    from rail.deepdisc.training.settings import Augmentation, TrainSettings

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n_tiles = args.batch_size * (args.steps + args.warmup)
    tiles = synthetic_tiles(n_tiles, args.size, args.bands, args.objects)
    model = build_model(
        NetworkConfig(bands=tiles.bands, pixel_scale=0.03, backbone=args.backbone, backbone_norm=args.norm)
    )
    model.normaliser.set_statistics(*band_statistics(tiles.images, tiles.segmaps).center_scale("zscore"))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = make_optimizer(model, TrainSettings())
    targets = tile_targets(tiles)
    rng = np.random.default_rng(0)
    aug = Augmentation()
    elapsed = cpu = 0.0
    for step in range(args.steps + args.warmup):
        t0, c0 = time.perf_counter(), time.process_time()
        idx = np.arange(step * args.batch_size, (step + 1) * args.batch_size)
        images, tg = make_batch(tiles.images, tiles.segmaps, targets, idx, augment=aug, rng=rng)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = sum(model(images, tg).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= args.warmup:
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - c0
    rss_gb = peak_rss_mb() / 1024
    return {
        "backbone": args.backbone,
        "s_per_image": elapsed / (args.steps * args.batch_size),
        "cpu_s_per_image": cpu / (args.steps * args.batch_size),
        "peak_rss_gb": rss_gb,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bands", type=int, default=9)
    p.add_argument("--objects", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--norm", default="group", choices=("group", "batch"), help="backbone normalisation")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--backbone", help=argparse.SUPPRESS)  # internal: measure one backbone, print JSON
    args = p.parse_args(argv)
    if args.backbone:
        print(json.dumps(measure(args)))
        return 0
    targets = {"resnet18": 0.15, "resnet34": 0.3, "resnet50": 0.5}
    print(
        f"training, {args.size}x{args.size} px, {args.bands} bands, {args.objects} objects/tile, batch "
        f"{args.batch_size}, {args.threads} thread(s), {args.steps} timed steps"
    )
    print(f"{'backbone':<10} {'s/image':>9} {'target':>8} {'CPU s/image':>12} {'peak RSS GB':>12}")
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for name in args.backbones:
        out = subprocess.run(
            [sys.executable, __file__, *forwarded, "--backbone", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{name:<10} {r['s_per_image']:>9.3f} {targets.get(name, float('nan')):>8.2f} "
            f"{r['cpu_s_per_image']:>12.3f} {r['peak_rss_gb']:>12.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
