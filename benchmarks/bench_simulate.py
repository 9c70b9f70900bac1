"""Speed of the simulator: seconds per tile (9 bands) at 128x128 and 256x256, on one core.

Run on a quiet machine:
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        PYTHONPATH=src python benchmarks/bench_simulate.py
Smoke run:
    PYTHONPATH=src python benchmarks/bench_simulate.py --tiles 2 --sizes 64
Other simulator options: ``--option detection=photutils --option bulge_disc=false`` (any SimulationSettings field).
The per-process set-up (photometry grid, PSF tables, Sersic tables) is timed separately from the tiles.
"""

import argparse
import json
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

from rail.deepdisc.simulation import FieldContext, SimulationSettings, make_wcs, simulate_field  # noqa: E402
from rail.deepdisc.simulation.tiling import field_tile  # noqa: E402

TARGETS = {128: 0.5, 256: 2.0}  # s/tile from the issue


def bench(size: int, n_tiles: int, preset: str, seed: int, options: dict | None = None) -> dict:
    settings = SimulationSettings(n_tiles=n_tiles, tile_size=size, bands=preset, seed=seed, **(options or {}))
    t0 = time.perf_counter()
    ctx = FieldContext(settings)
    wcs = make_wcs((size, size), settings.pixel_scale)
    simulate_field(ctx, (size, size), wcs, np.random.default_rng([seed, 10**6]))  # warm caches
    setup = time.perf_counter() - t0
    times, objects = [], []
    for k in range(n_tiles):
        t = time.perf_counter()
        field = simulate_field(ctx, (size, size), wcs, np.random.default_rng([seed, k]))
        field_tile(field, settings, k, 0, 0, wcs)
        times.append(time.perf_counter() - t)
        objects.append(len(field.catalog["x"]))
    return dict(
        size=size,
        setup=setup,
        mean=float(np.mean(times)),
        p90=float(np.percentile(times, 90)),
        objects=float(np.mean(objects)),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiles", type=int, default=20, help="tiles timed per size")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a SimulationSettings option (repeatable; true/false for switches)")
    args = p.parse_args()
    options = {}
    for item in args.option:
        name, value = item.split("=", 1)
        options[name] = {"true": True, "false": False}.get(value.lower(), value)
    rows = [bench(size, args.tiles, args.preset, args.seed, options) for size in args.sizes]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    extra = "".join(f", {k}={v}" for k, v in options.items())
    print(f"simulator speed, {args.preset}, {args.tiles} tiles per size, 1 thread{extra}")
    print(f"{'size':>9} {'set-up s':>9} {'s/tile':>8} {'p90 s':>8} {'objects/tile':>13} {'target s':>9}")
    for r in rows:
        target = TARGETS.get(r["size"], float("nan"))
        print(
            f"{r['size']:>4}x{r['size']:<4} {r['setup']:9.2f} {r['mean']:8.3f} {r['p90']:8.3f} "
            f"{r['objects']:13.1f} {target:9.1f}"
        )


if __name__ == "__main__":
    main()
