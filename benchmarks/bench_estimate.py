"""Speed and memory of DeepDiscEstimator end to end (read, infer, match, combine, write), printed as a table.

Each configuration runs in a fresh process (so its peak RSS is its own) on a synthetic TileSet of Gaussian
sources: 128x128 tiles, 9 bands, ~15 objects per tile by default. The timed span is one ``estimate`` call:
loading and building the model, reading, inference, matching, combination and writing the output file
(package imports are done before it). Rows: one R18 member, an R18 ensemble,
one R50 member, and the R18 member on a file 10x larger than a chunk (peak RSS must stay flat).

Models: by default untrained networks are built with ``rail.deepdisc.model.network.build_model`` and saved as
artifacts (speed does not depend on training, except through the number of detections; pass trained artifacts
with ``--model-r18`` / ``--model-r50`` for the real figures). ``--fake`` uses the tests' stand-in network
(tests/deepdisc/fakenet.py) to smoke-test the pipeline itself.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_estimate.py --threads 2            # full run
    PYTHONPATH=src:. python benchmarks/bench_estimate.py --fake --tiles 8 --size 64 --members 2   # smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

JADES9 = ("F090W", "F115W", "F150W", "F200W", "F277W", "F335M", "F356W", "F410M", "F444W")
PIXEL_SCALE = 0.03
SOURCE_AMPLITUDE = 20.0  # peak of a source in units of the pixel noise
SOURCE_SIGMA_PX = (1.0, 3.0)
BOX_HALF_SIGMAS = 3.0
TARGET_R18_OBJECTS_PER_S = 150.0


def make_tiles(path, *, n_tiles, size, n_bands, objects_per_tile, seed=0):
    """Write a synthetic TileSet (Gaussian sources on unit noise) chunk by chunk."""
    from rail.deepdisc.tileset.contract import empty_objects
    from rail.deepdisc.tileset.writer import TileSetWriter

    bands = JADES9[:n_bands]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    piece = 16
    next_id = 1
    with TileSetWriter(path, bands, PIXEL_SCALE, (size, size)) as writer:
        for t0 in range(0, n_tiles, piece):
            n = min(piece, n_tiles - t0)
            images = rng.normal(0, 1, (n, n_bands, size, size)).astype(np.float32)
            segmaps = np.zeros((n, size, size), np.int32)
            m = n * objects_per_tile
            obj = empty_objects(bands, m)
            for k in range(m):
                t = k // objects_per_tile
                x, y = rng.uniform(4, size - 4, 2)
                s = rng.uniform(*SOURCE_SIGMA_PX)
                blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
                colour = rng.uniform(0.5, 2, (n_bands, 1, 1))
                images[t] += (SOURCE_AMPLITUDE * blob * colour).astype(np.float32)
                segmaps[t][blob > 0.1] = next_id
                half = BOX_HALF_SIGMAS * s
                obj["object_id"][k], obj["tile"][k], obj["primary"][k] = next_id, t, True
                obj["x"][k], obj["y"][k] = x, y
                obj["bbox_x0"][k], obj["bbox_y0"][k], obj["bbox_x1"][k], obj["bbox_y1"][k] = (
                    x - half, y - half, x + half, y + half)
                obj["ra"][k], obj["dec"][k], obj["ebv"][k] = 53.1, -27.8, 0.01
                next_id += 1
            tiles = {"tile_id": np.arange(t0, t0 + n, dtype=np.int64), "kind": np.array(["grid"] * n),
                     "x0": np.zeros(n, np.int64), "y0": np.zeros(n, np.int64), "ra": np.full(n, 53.1),
                     "dec": np.full(n, -27.8), "wcs": np.array([""] * n)}
            from rail.deepdisc.tileset.format import TileSet

            writer.append(TileSet(images=images, segmaps=segmaps, tiles=tiles, objects=obj, bands=bands,
                                  pixel_scale=PIXEL_SCALE))
    return path


def untrained_artifact(path, *, backbone, members, n_bands, seed=0):
    """Save an artifact of untrained members (random heads) for timing."""
    import torch

    from rail.deepdisc.model.artifact import save_artifact
    from rail.deepdisc.model.network import NetworkConfig, build_model

    cfg = NetworkConfig(bands=JADES9[:n_bands], pixel_scale=PIXEL_SCALE, backbone=backbone)
    out = []
    for k in range(members):
        torch.manual_seed(seed + k)
        out.append({"state_dict": build_model(cfg).state_dict(), "val_log_likelihood": 0.0,
                    "weight": 1.0 / members, "seed": seed + k, "best_epoch": 0})
    config = cfg.to_dict()
    config["training"] = {}
    return save_artifact({"config": config, "members": out, "provenance": {"benchmark": "untrained"}}, path)


def fake_artifact(path, *, members, n_bands):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.deepdisc import fakenet

    offsets = [0.1 * k for k in range(members)]
    return fakenet.make_fake_artifact(path, JADES9[:n_bands], PIXEL_SCALE, offsets=offsets)


def worker(args) -> None:
    """One timed run in this process; prints a JSON line."""
    import torch

    from rail.deepdisc.memory import peak_rss_mb
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    if args.fake:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.deepdisc import fakenet

        fakenet.install()
    else:
        import rail.deepdisc.model.network  # noqa: F401  (one-time imports are not part of a run)
    torch.set_num_threads(args.threads)
    stage = DeepDiscEstimator.make_stage(name="bench", model=args.model, output=args.output,
                                         chunk_tiles=args.chunk_tiles, chunk_size=10**9,
                                         batch_size=args.batch_size, device=args.device, progress_bar=False)
    t0 = time.perf_counter()
    ens = stage.estimate(args.tiles).data
    elapsed = time.perf_counter() - t0
    print(json.dumps({"objects": int(ens.npdf), "seconds": elapsed,
                      "peak_rss_mb": peak_rss_mb()}))


def run_config(args, model, tiles, out, n_tiles) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", str(model), "--tiles-file", str(tiles),
           "--output", str(out), "--threads", str(args.threads), "--chunk-tiles", str(args.chunk_tiles),
           "--batch-size", str(args.batch_size), "--device", args.device] + (["--fake"] if args.fake else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["tiles"] = n_tiles
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=64, help="tiles in the timed file (default 64)")
    p.add_argument("--size", type=int, default=128, help="tile side, pixels (default 128)")
    p.add_argument("--bands", type=int, default=9, help="bands (default 9)")
    p.add_argument("--objects", type=int, default=15, help="objects per tile (default 15)")
    p.add_argument("--members", type=int, default=5, help="members of the ensemble row (default 5)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-tiles", type=int, default=16, help="tiles per chunk (default 16)")
    p.add_argument("--device", default="auto")
    p.add_argument("--model-r18", help="trained R18 artifact (default: untrained networks)")
    p.add_argument("--model-r50", help="trained R50 artifact")
    p.add_argument("--skip-r50", action="store_true", help="leave out the R50 row")
    p.add_argument("--fake", action="store_true", help="use the tests' stand-in network (smoke test)")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--tiles-file", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.tiles = args.tiles_file
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench_estimate_") as tmp:
        tmp = Path(tmp)
        shape = dict(size=args.size, n_bands=args.bands, objects_per_tile=args.objects)
        tiles = make_tiles(tmp / "tiles.h5", n_tiles=args.tiles, **shape)
        big_tiles = 10 * args.chunk_tiles
        big = make_tiles(tmp / "big.h5", n_tiles=big_tiles, seed=1, **shape)

        def artifact(backbone, members, given):
            if given and members == 1:
                return given
            if args.fake:
                return fake_artifact(tmp / f"fake_{members}.pt", members=members, n_bands=args.bands)
            return untrained_artifact(tmp / f"{backbone}_{members}.pt", backbone=backbone, members=members,
                                      n_bands=args.bands)

        rows = [("R18, 1 member", artifact("resnet18", 1, args.model_r18), tiles, args.tiles),
                (f"R18, {args.members} members", artifact("resnet18", args.members, None), tiles, args.tiles)]
        if not args.skip_r50:
            rows.append(("R50, 1 member", artifact("resnet50", 1, args.model_r50), tiles, args.tiles))
        rows.append((f"R18, 1 member, {big_tiles} tiles (10 chunks)", rows[0][1], big, big_tiles))
        print(f"DeepDiscEstimator end to end: {args.size}x{args.size} px, {args.bands} bands, "
              f"~{args.objects} objects/tile, {args.threads} threads, chunk {args.chunk_tiles} tiles, "
              f"batch {args.batch_size}"
              + (" [stand-in network]" if args.fake else ""))
        print(f"{'configuration':<40} {'objects':>8} {'objects/s':>10} {'tiles/s':>8} {'peak RSS MB':>12}")
        results = []
        for k, (label, model, path, n_tiles) in enumerate(rows):
            r = run_config(args, model, path, tmp / f"pz_{k}.hdf5", n_tiles)
            r["label"] = label
            results.append(r)
            print(f"{label:<40} {r['objects']:>8d} {r['objects'] / r['seconds']:>10.1f} "
                  f"{n_tiles / r['seconds']:>8.2f} {r['peak_rss_mb']:>12.0f}")
        rate = results[0]["objects"] / results[0]["seconds"]
        print(f"R18 one member: {rate:.0f} objects/s (target >= {TARGET_R18_OBJECTS_PER_S:.0f}); peak RSS "
              f"{results[0]['peak_rss_mb']:.0f} MB on {args.tiles} tiles vs "
              f"{results[-1]['peak_rss_mb']:.0f} MB on {big_tiles}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
