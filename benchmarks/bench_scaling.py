"""Scaling of DeepDISC inference: time versus number of tiles (should be linear) and versus MPI ranks.

Tiles: one process builds the predictor once, warms it up on one batch (timed separately: oneDNN primitive
creation, first allocation), then times `EnsemblePredictor.predict` on the first n tiles of a synthetic file
for each n (best of ``--repeats``), and fits ``t = a + b n`` (``b`` = steady-state seconds per tile; the
residuals show linearity). The largest n is also timed in the default memory layout (``channels_last=False``),
interleaved with channels_last, for the before/after of that optimisation.

MPI: the ceci stage on the whole file, ``python -m ceci rail.estimation.algos.deepdisc.DeepDiscEstimator``,
with 1 rank (``--threads`` torch threads), and ``mpiexec -n R`` ranks splitting the same total number of
threads, ``--mpi``; wall time of the command, process start-up and model building included.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_scaling.py --threads 2       # full run
    PYTHONPATH=src python benchmarks/bench_scaling.py --size 64 --counts 2 4 --ranks 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_estimate import make_tiles, untrained_artifact  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"  # the stage runs in a work folder: absolute import path


def tile_scaling(model: Path, tiles: Path, counts, args) -> dict:
    """Steady-state predict time of the first n tiles, for each n, in one process."""
    import torch

    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.tileset.io import read_tileset

    torch.set_num_threads(args.threads)
    settings = InferenceSettings(batch_size=args.batch_size)
    t0 = time.perf_counter()
    predictor = EnsemblePredictor.from_artifact(load_artifact(model), device="cpu")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictor.predict(read_tileset(tiles, tiles=slice(0, args.batch_size)), settings)
    warmup_s = time.perf_counter() - t0
    rows = []
    for n in counts:
        ts = read_tileset(tiles, tiles=slice(0, n))
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            chunk = predictor.predict(ts, settings)
            best = min(best, time.perf_counter() - t0)
        rows.append({"tiles": n, "objects": len(chunk.object_id), "seconds": best})
    layouts = {True: float("inf"), False: float("inf")}  # channels_last vs the default layout, interleaved
    for _ in range(args.repeats):
        for channels_last in layouts:
            t0 = time.perf_counter()
            predictor.predict(ts, InferenceSettings(batch_size=args.batch_size, channels_last=channels_last))
            layouts[channels_last] = min(layouts[channels_last], time.perf_counter() - t0)
    n = np.array([r["tiles"] for r in rows], float)
    t = np.array([r["seconds"] for r in rows])
    b, a = np.polyfit(n, t, 1) if len(rows) > 1 else (t[0] / n[0], 0.0)
    for r in rows:
        r["fit_residual"] = r["seconds"] - (a + b * r["tiles"])
    return {"build_s": build_s, "warmup_s": warmup_s, "intercept_s": float(a), "s_per_tile": float(b),
            "rows": rows, "layout_tiles": rows[-1]["tiles"], "channels_last_s": layouts[True],
            "contiguous_s": layouts[False]}


def mpi_scaling(model: Path, tiles: Path, workdir: Path, args) -> list[dict]:
    """Wall time of the ceci stage with 1 rank and with R ranks (threads split between ranks)."""
    config = workdir / "config.yml"
    config.write_text(textwrap.dedent("""\
        DeepDiscEstimator:
            name: DeepDiscEstimator
    """))
    mpiexec = Path(sys.executable).parent / "mpiexec"
    rows = []
    for ranks in args.ranks:
        threads = max(1, args.threads // ranks)
        out = workdir / f"pz_mpi{ranks}.hdf5"
        cmd = [sys.executable, "-m", "ceci", "rail.estimation.algos.deepdisc.DeepDiscEstimator",
               f"--model={model}", f"--input={tiles}", f"--output={out}", f"--config={config}",
               f"--num_threads={threads}", f"--batch_size={args.batch_size}", f"--chunk_tiles={args.chunk_tiles}",
               f"--chunk_size={args.chunk_tiles * args.objects}",
               "--device=cpu", "--no-progress_bar"]
        if ranks > 1:
            cmd = [str(mpiexec), "-n", str(ranks), *cmd, "--mpi"]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        rows.append({"ranks": ranks, "threads_per_rank": threads, "seconds": wall})
    return rows


def table(r: dict, args) -> str:
    s = r["tiles"]
    lines = [f"Inference scaling, untrained R18 member, {args.size}x{args.size} px, {args.bands} bands, "
             f"~{args.objects} objects/tile, batch {args.batch_size}, {args.threads} threads. Model build "
             f"{s['build_s']:.2f} s, first batch (warm-up) {s['warmup_s']:.2f} s; fit t = "
             f"{s['intercept_s']:.2f} s + {s['s_per_tile']:.4f} s x tiles "
             f"({args.objects / s['s_per_tile']:.0f} objects/s steady state).", "",
             "| tiles | objects | seconds | s/tile | residual of linear fit, s |", "|---:|---:|---:|---:|---:|"]
    for row in s["rows"]:
        lines.append(f"| {row['tiles']} | {row['objects']} | {row['seconds']:.2f} | "
                     f"{row['seconds'] / row['tiles']:.4f} | {row['fit_residual']:+.2f} |")
    lines += ["", f"Memory layout on {s['layout_tiles']} tiles (best of {args.repeats}, interleaved): channels_last "
              f"{s['channels_last_s']:.2f} s, default layout {s['contiguous_s']:.2f} s "
              f"(x{s['contiguous_s'] / s['channels_last_s']:.2f})."]
    if r["mpi"]:
        base = r["mpi"][0]["seconds"]
        lines += ["", f"MPI ranks (ceci stage on {args.tiles} tiles, chunks of {args.chunk_tiles} tiles, wall time "
                  "incl. start-up):", "", "| ranks | threads/rank | seconds | speed-up |", "|---:|---:|---:|---:|"]
        for row in r["mpi"]:
            lines.append(f"| {row['ranks']} | {row['threads_per_rank']} | {row['seconds']:.1f} | "
                         f"{base / row['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", type=int, nargs="+", default=[16, 32, 64, 128], help="tile counts timed")
    p.add_argument("--tiles", type=int, default=128, help="tiles of the MPI file (default 128)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bands", type=int, default=9)
    p.add_argument("--objects", type=int, default=15, help="objects per tile (default 15)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-tiles", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2, help="timed predicts per tile count, best kept")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", help="trained artifact (default: untrained R18 member)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        tmp = Path(tmp)
        n_tiles = max(max(args.counts), args.tiles)
        tiles = make_tiles(tmp / "tiles.h5", n_tiles=n_tiles, size=args.size, n_bands=args.bands,
                           objects_per_tile=args.objects)
        mpi_tiles = tiles
        if args.tiles < n_tiles:
            mpi_tiles = make_tiles(tmp / "mpi.h5", n_tiles=args.tiles, size=args.size, n_bands=args.bands,
                                   objects_per_tile=args.objects)
        model = Path(args.model) if args.model else untrained_artifact(tmp / "m.pt", backbone="resnet18",
                                                                        members=1, n_bands=args.bands)
        result = {"tiles": tile_scaling(model, tiles, args.counts, args),
                  "mpi": mpi_scaling(model, mpi_tiles, tmp, args)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(table(result, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
