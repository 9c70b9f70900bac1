"""Peak RSS and time of the estimator with a 10-member ensemble: members one at a time vs another source tree.

Each run is ``DeepDiscEstimator`` end to end in a fresh process (as one MPI rank of ``deepdisc estimate`` /
ceci runs it: model file read by the stage, chunks of ``--chunk-tiles`` tiles, output file written), on a
synthetic TileSet (``--size`` px square tiles, 9 bands, ``--objects`` Gaussian sources per tile) with an
artifact of ``--members`` randomly initialised ResNet-18 members (the weights do not change the work or the
memory). Peak RSS is the process's VmHWM (``/proc/self/status``), which counts pages of mapped files too (not
``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts at its parent's RSS at the fork, here ~1.5 GB from
building the artifact); ``imports`` is the RSS after importing the stage, before the model is read.

Rows alternate between this tree (``src/`` next to this script) and ``--baseline-src`` (e.g. a checkout of the
main branch before the change: all members' networks built and held), ``--repeats`` times each, so that the
time ratio is measured side by side under the same load. The two photo-z files are compared value by value.
On this tree the worker also times the swap of one member's weights into the network (``load_state_dict``
from the memory-mapped file and the release of its pages), the per-member cost of holding one member at a time,
and a last process runs both paths of this tree (``resident=True`` and the default) over the same chunks, chunk
by chunk in alternating order after a warm-up, for a time ratio free of the load changing between processes.

    git worktree add /tmp/main-src main   # or any checkout to compare with
    PYTHONPATH=src python benchmarks/bench_members_memory.py --baseline-src /tmp/main-src/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_estimate import make_tiles, untrained_artifact  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
TARGET_MB = 2048


def _status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``), MB.

    Read here, not through `rail.deepdisc.memory`: the workers also run ``--baseline-src`` trees that predate it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(args) -> None:
    """One estimate in this process; prints a JSON line."""
    import torch

    import rail.deepdisc.model.network  # noqa: F401  (imports are not part of a run)
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    torch.set_num_threads(args.threads)
    imports_mb = _status_mb("VmRSS")
    stage = DeepDiscEstimator.make_stage(name="bench", model=args.model, output=args.output,
                                         chunk_tiles=args.chunk_tiles, batch_size=args.batch_size, device="cpu",
                                         num_threads=args.threads, progress_bar=False)
    t0 = time.perf_counter()
    ens = stage.estimate(args.tiles_file).data
    elapsed = time.perf_counter() - t0
    out = {"objects": int(ens.npdf), "seconds": elapsed, "imports_mb": imports_mb,
           "peak_rss_mb": _status_mb("VmHWM")}
    members = getattr(stage._predictor, "members", None)
    if members is not None and not getattr(members, "resident", True):
        n = len(members)
        t0 = time.perf_counter()
        for k in range(2 * n):
            members.network(k % n)
        out["swap_ms"] = 1e3 * (time.perf_counter() - t0) / (2 * n)
        out["peak_rss_after_swaps_mb"] = _status_mb("VmHWM")
    print(json.dumps(out))


def ratio_worker(args) -> None:
    """Both paths of this tree in one process, alternating over the same chunks: the time ratio under one load."""
    import torch

    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.tileset.io import iter_tileset

    torch.set_num_threads(args.threads)
    paths = {"resident": EnsemblePredictor.from_artifact(load_artifact(args.model), device="cpu", resident=True),
             "streamed": EnsemblePredictor.from_artifact(load_artifact(args.model, mmap=True), device="cpu")}
    settings = InferenceSettings(batch_size=args.batch_size)
    chunks = list(iter_tileset(args.tiles_file, chunk_tiles=args.chunk_tiles))
    members = paths["streamed"].members
    swapping = [0.0]
    network = members.network

    def timed_network(k):
        t0 = time.perf_counter()
        out = network(k)
        swapping[0] += time.perf_counter() - t0
        return out

    members.network = timed_network
    for predictor in paths.values():
        predictor.predict(chunks[0], settings)  # warm-up
    seconds = {k: [] for k in (*paths, "swaps")}
    for r in range(args.repeats):
        total = dict.fromkeys(paths, 0.0)
        swapping[0] = 0.0
        for c, chunk in enumerate(chunks):  # chunk by chunk, in alternating order: both see the same load
            for name in sorted(paths, reverse=(r + c) % 2 == 1):
                t0 = time.perf_counter()
                paths[name].predict(chunk, settings)
                total[name] += time.perf_counter() - t0
        for name in paths:
            seconds[name].append(total[name])
        seconds["swaps"].append(swapping[0])
    print(json.dumps(seconds))


def run(args, src: Path, model: Path, tiles: Path, out: Path, kind: str = "--worker") -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, kind, "--repeats", str(args.repeats), "--model", str(model),
           "--tiles-file", str(tiles),
           "--output", str(out), "--threads", str(args.threads), "--chunk-tiles", str(args.chunk_tiles),
           "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"worker ({src}) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


def compare(a: Path, b: Path) -> float:
    """Largest absolute difference between two photo-z files' mixture parameters and point estimates."""
    import qp

    ea, eb = qp.read(str(a)), qp.read(str(b))
    diff = 0.0
    for key in ("weights", "means", "stds"):
        diff = max(diff, float(abs(ea.objdata[key] - eb.objdata[key]).max()))
    for key in ("zmode", "zmean", "zmedian", "score", "detected"):
        diff = max(diff, float(abs(ea.ancil[key].astype(float) - eb.ancil[key].astype(float)).max()))
    return diff


def report_in_process(inproc: dict, args) -> None:
    """The in-process rounds as a table: both paths' seconds, their ratio, the member swaps' share."""
    print(f"\nboth paths in one process, chunk by chunk in alternating order ({len(inproc['resident'])} rounds of "
          f"{args.tiles} tiles in chunks of {args.chunk_tiles}, load {inproc['load']:.1f} at the end)")
    print("| round | all held, s | one at a time, s | ratio | of which member swaps, s |")
    print("|---:|---:|---:|---:|---:|")
    for r, (a, b, w) in enumerate(zip(inproc["resident"], inproc["streamed"], inproc["swaps"], strict=True)):
        print(f"| {r + 1} | {a:.1f} | {b:.1f} | {b / a:.3f} | {w:.2f} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline-src", type=Path, help="source tree to compare with (its src/ directory)")
    p.add_argument("--members", type=int, default=10, help="ensemble members (default 10)")
    p.add_argument("--tiles", type=int, default=48, help="tiles (default 48)")
    p.add_argument("--size", type=int, default=128, help="tile side, px (default 128; prep's tiles of a JADES "
                   "field are 277 x 250)")
    p.add_argument("--objects", type=int, default=15, help="objects per tile (default 15)")
    p.add_argument("--chunk-tiles", type=int, default=16, help="tiles per chunk (default 16; the stage's 32)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=2, help="runs per tree, alternating (default 2)")
    p.add_argument("--in-process-only", action="store_true", help="only the in-process time ratio (no baseline)")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--tiles-file", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    p.add_argument("--ratio-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.ratio_worker:
        ratio_worker(args)
        return

    trees = [("this tree (one member at a time)", SRC)]
    if args.baseline_src:
        trees.insert(0, ("baseline (all members held)", args.baseline_src.resolve()))
    with tempfile.TemporaryDirectory(prefix="bench_members_") as tmp:
        tmp = Path(tmp)
        tiles = make_tiles(tmp / "tiles.h5", n_tiles=args.tiles, size=args.size, n_bands=9,
                           objects_per_tile=args.objects)
        model = untrained_artifact(tmp / "model.pt", backbone="resnet18", members=args.members, n_bands=9)
        print(f"DeepDiscEstimator, {args.members} random R18 members ({model.stat().st_size / 2**20:.0f} MB file), "
              f"{args.tiles} tiles of {args.size} px ({args.objects} objects each), 9 bands, chunks of "
              f"{args.chunk_tiles} tiles, batch {args.batch_size}, {args.threads} thread(s), load "
              f"{os.getloadavg()[0]:.1f} at the start")
        if args.in_process_only:
            inproc = run(args, SRC, model, tiles, tmp / "unused.hdf5", kind="--ratio-worker")
            report_in_process(inproc, args)
            if args.json:
                Path(args.json).write_text(json.dumps({"in_process": inproc}, indent=1))
            return
        results = {label: [] for label, _ in trees}
        for r in range(args.repeats):
            for k, (label, src) in enumerate(trees):
                res = run(args, src, model, tiles, tmp / f"pz_{k}_{r}.hdf5")
                results[label].append(res)
                print(f"  run {r + 1}, {label}: {res['seconds']:.1f} s, peak RSS {res['peak_rss_mb']:.0f} MB, "
                      f"load {res['load']:.1f}", flush=True)
        diff = compare(tmp / "pz_0_0.hdf5", tmp / f"pz_{len(trees) - 1}_0.hdf5") if len(trees) > 1 else None
        inproc = run(args, SRC, model, tiles, tmp / "unused.hdf5", kind="--ratio-worker")

    print("\n| tree | peak RSS, MB | RSS after imports, MB | objects | best s | objects/s | member swap, ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    best = {}
    for label, runs in results.items():
        peak = max(r["peak_rss_mb"] for r in runs)
        best[label] = min(r["seconds"] for r in runs)
        swap = [r["swap_ms"] for r in runs if "swap_ms" in r]
        print(f"| {label} | {peak:.0f} | {runs[0]['imports_mb']:.0f} | {runs[0]['objects']} | {best[label]:.1f} | "
              f"{runs[0]['objects'] / best[label]:.1f} | {min(swap):.1f} |" if swap else
              f"| {label} | {peak:.0f} | {runs[0]['imports_mb']:.0f} | {runs[0]['objects']} | {best[label]:.1f} | "
              f"{runs[0]['objects'] / best[label]:.1f} | - |")
    ours = max(r["peak_rss_mb"] for r in results[trees[-1][0]])
    print(f"\npeak RSS of this tree {ours:.0f} MB: {'meets' if ours < TARGET_MB else 'misses'} the "
          f"{TARGET_MB} MB target")
    if diff is not None:
        ratio = best[trees[-1][0]] / best[trees[0][0]]
        print(f"time this tree / baseline (best of {args.repeats}): {ratio:.3f}; largest output difference "
              f"{diff:.3g}")
    report_in_process(inproc, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "max_abs_diff": diff, "in_process": inproc},
                                              indent=1))


if __name__ == "__main__":
    main()
