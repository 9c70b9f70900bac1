"""CPU speed levers of DeepDISC inference and the shared-detection ensemble path, side by side in one run.

Every row runs `EnsemblePredictor.predict` in a fresh process on the same synthetic TileSet (128 px, 9 bands,
~15 Gaussian sources per tile, from `bench_estimate.make_tiles`), chunks of 16 tiles held in memory. The timed
span is the prediction of every chunk after one warm-up chunk (oneDNN's first-call set-up, and torch.compile's
compilation, which is reported separately as ``warm-up s``); model loading and file reading are not timed
(`bench_estimate.py` times the estimator end to end). Each row's outputs are compared with its reference row
(today's path: float32, every member detecting, 2 threads, same members): the largest ``|dzmode|``, the
largest difference of the mixture parameters (weights, means, stds) and the number of rows whose
``detected`` flag differs.

Levers: bf16 autocast of the backbone/FPN on CPU (the estimator's ``bf16`` option:
``torch.autocast("cpu", dtype=torch.bfloat16)``; the features go back to float32 before detection and the
redshift head, so boxes keep float32 coordinates),
``torch.compile`` of the backbone/FPN, 1 vs 2 intra-op threads, and 2 processes x 1 thread (MPI-like: each
takes every other chunk; the rate is all objects over the slower process's time). The ensemble rows compare
1, 3 and 10 members with and without ``shared_detection``. Members are untrained networks with random
weights: the cost does not depend on the weights, except through the number of boxes (matched or forced,
one per object either way). ``--trained MODEL --trained-tiles FILE`` adds an accuracy comparison of the full
and shared paths (and bf16) on a trained ensemble against the file's ``redshift_true``.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_levers.py
    PYTHONPATH=src python benchmarks/bench_levers.py --tiles 8 --only-levers     # quick run
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_estimate import make_tiles, untrained_artifact  # noqa: E402

CHUNK_TILES = 16
LEVERS = ("fp32", "bf16", "compile")


def apply_lever(predictor, lever: str) -> None:
    """Compile every member's backbone/FPN for the ``compile`` lever (``bf16`` is the estimator's option)."""
    import torch

    if lever == "compile":
        for model in predictor.models:
            model.backbone = torch.compile(model.backbone)


def worker(args) -> None:
    """One timed row in this process: prints a JSON line, saves the outputs."""
    import torch

    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.tileset.io import iter_tileset

    torch.set_num_threads(args.threads)
    predictor = EnsemblePredictor.from_artifact(load_artifact(args.model), device="cpu", resident=True)
    settings = InferenceSettings(shared_detection=args.shared, batch_size=8, bf16=args.lever == "bf16")
    chunks = list(iter_tileset(args.tiles_file, chunk_tiles=CHUNK_TILES, rank=args.rank, n_ranks=args.nproc))
    if not chunks:
        raise SystemExit(f"rank {args.rank} of {args.nproc} has no chunk of {CHUNK_TILES} tiles: use more tiles")
    try:
        apply_lever(predictor, args.lever)
        t0 = time.perf_counter()
        predictor.predict(chunks[0], settings)
        warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = [predictor.predict(c, settings) for c in chunks]
        elapsed = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001  (a failing lever is a result: its error goes in the table)
        print(json.dumps({"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}))
        return
    cat = {name: np.concatenate([getattr(c, name) for c in out])
           for name in ("object_id", "zmode", "zmean", "detected", "score")}
    for name in ("weights", "means", "stds"):
        cat[name] = np.concatenate([getattr(c.mixture, name) for c in out])
    np.savez(args.output, **cat)
    print(json.dumps({"objects": int(cat["object_id"].size), "seconds": elapsed, "warmup": warmup}))


def run_row(args, model, tiles, out, *, lever="fp32", shared=False, threads=2, nproc=1) -> dict:
    """Run one row (``nproc`` concurrent workers) and merge their outputs."""
    procs = []
    for rank in range(nproc):
        cmd = [sys.executable, __file__, "--worker", "--model", str(model), "--tiles-file", str(tiles),
               "--output", f"{out}_{rank}.npz", "--threads", str(threads), "--lever", lever,
               "--rank", str(rank), "--nproc", str(nproc)] + (["--shared"] if shared else [])
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"benchmark worker failed:\n{stderr[-3000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": errors[0]}
    parts = [dict(np.load(f"{out}_{rank}.npz")) for rank in range(nproc)]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(merged["object_id"], kind="stable")
    return {"objects": sum(r["objects"] for r in results), "seconds": max(r["seconds"] for r in results),
            "warmup": max(r["warmup"] for r in results), "out": {k: v[order] for k, v in merged.items()}}


def best_of(args, tiles, tmp: Path, specs: list) -> list[tuple[str, dict, dict]]:
    """Run the rows ``(label, model, run_row options, index of the reference row or None)`` round-robin
    ``args.repeats`` times; keep each row's fastest run."""
    best: list[dict | None] = [None] * len(specs)
    for _ in range(args.repeats):
        for k, (_, model, kw, _) in enumerate(specs):
            row = run_row(args, model, tiles, tmp / f"row{k}", **kw)
            if best[k] is None or "error" in best[k] or (
                    "error" not in row and row["objects"] / row["seconds"] > best[k]["objects"] / best[k]["seconds"]):
                best[k] = row
    return [(label, best[k], best[k if ref is None else ref]) for k, (label, _, _, ref) in enumerate(specs)]


def differences(row: dict, ref: dict) -> tuple[float, float, int]:
    """Largest |dzmode|, largest mixture-parameter difference, rows whose ``detected`` differs."""
    a, b = row["out"], ref["out"]
    dz = float(np.max(np.abs(a["zmode"] - b["zmode"])))
    if a["means"].shape != b["means"].shape:
        return dz, float("nan"), int(np.sum(a["detected"] != b["detected"]))
    dp = max(float(np.max(np.abs(a[k] - b[k]))) for k in ("weights", "means", "stds"))
    return dz, dp, int(np.sum(a["detected"] != b["detected"]))


def print_table(title: str, rows: list[tuple[str, dict, dict]]) -> list[dict]:
    print(title)
    print(f"{'configuration':<38} {'objects/s':>9} {'x ref':>6} {'warm-up s':>9} {'max|dzmode|':>11} "
          f"{'max|dparam|':>11} {'flags diff':>10}")
    out = []
    for label, row, ref in rows:
        if "error" in row:
            print(f"{label:<38} failed: {row['error']}")
            out.append({"label": label, "error": row["error"]})
            continue
        rate = row["objects"] / row["seconds"]
        dz, dp, df = differences(row, ref)
        ratio = rate / (ref["objects"] / ref["seconds"])
        print(f"{label:<38} {rate:>9.1f} {ratio:>6.2f} {row['warmup']:>9.1f} {dz:>11.2e} {dp:>11.2e} {df:>10d}")
        out.append({"label": label, "objects_per_s": rate, "ratio": ratio, "warmup_s": row["warmup"],
                    "max_dzmode": dz, "max_dparam": dp, "flags_differ": df})
    print()
    return out


def accuracy(args, tmp: Path) -> list[dict]:
    """Full vs shared path (and bf16) of a trained ensemble against the file's true redshifts."""
    import h5py

    from rail.deepdisc.evaluation.metrics import outlier_fraction, sigma_iqr

    with h5py.File(args.trained_tiles, "r") as f:
        obj = f["objects"]
        primary = obj["primary"][:].astype(bool)
        truth = dict(zip(obj["object_id"][:][primary], obj["redshift_true"][:][primary]))
    rows = [("full path (today)", {}), ("shared_detection", {"shared": True}),
            ("shared_detection + bf16", {"shared": True, "lever": "bf16"})]
    res = {label: run_row(args, args.trained, args.trained_tiles, tmp / f"acc_{k}", threads=args.threads, **kw)
           for k, (label, kw) in enumerate(rows)}
    ref = res[rows[0][0]]["out"]
    ztrue = np.array([truth[i] for i in ref["object_id"]])
    good = np.isfinite(ztrue)
    rng = np.random.default_rng(0)
    boots = rng.integers(0, good.sum(), (args.bootstrap, good.sum()))

    def metrics(out, idx=None):
        z, t = out["zmode"][good], ztrue[good]
        if idx is not None:
            z, t = z[idx], t[idx]
        return sigma_iqr(z, t), outlier_fraction(z, t)

    def nll(out):
        w, m, s = out["weights"][good], out["means"][good], out["stds"][good]
        dens = np.sum(w * np.exp(-0.5 * ((ztrue[good, None] - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)), axis=1)
        return float(np.mean(-np.log(np.maximum(dens / w.sum(axis=1), 1e-300))))

    print(f"Accuracy on {args.trained_tiles} ({good.sum()} objects with a true redshift), zmode; "
          f"+- = bootstrap standard error of the difference to the full path ({args.bootstrap} resamples)")
    print(f"{'path':<28} {'objects/s':>9} {'sigma_IQR':>9} {'d sigma':>16} {'eta':>6} {'d eta':>16} "
          f"{'NLL':>7} {'detected':>8} {'flags diff':>10} {'max|dzmode|':>11}")
    table = []
    for label, _ in rows:
        r = res[label]
        if "error" in r:
            print(f"{label:<28} failed: {r['error']}")
            continue
        out = r["out"]
        sig, eta = metrics(out)
        diffs = np.array([np.subtract(metrics(out, i), metrics({"zmode": ref["zmode"]}, i)) for i in boots])
        d_sig, d_eta = np.subtract((sig, eta), metrics(ref))
        se = diffs.std(axis=0)
        dz = float(np.max(np.abs(out["zmode"] - ref["zmode"])))
        n_det, n_diff = int(out["detected"].sum()), int(np.sum(out["detected"] != ref["detected"]))
        print(f"{label:<28} {r['objects'] / r['seconds']:>9.1f} {sig:>9.4f} {d_sig:>+8.4f}+-{se[0]:.4f} "
              f"{eta:>6.3f} {d_eta:>+8.3f}+-{se[1]:.3f} {nll(out):>7.3f} {n_det:>8d} {n_diff:>10d} {dz:>11.3f}")
        table.append({"path": label, "objects_per_s": r["objects"] / r["seconds"], "sigma_iqr": sig,
                      "d_sigma_iqr": d_sig, "se_d_sigma_iqr": se[0], "eta": eta, "d_eta": d_eta,
                      "se_d_eta": se[1], "nll": nll(out), "detected": n_det, "flags_differ": n_diff,
                      "max_dzmode": dz})
    print()
    return table


def profile(args, tiles: Path, model: Path) -> None:
    """Where an ensemble's time goes in the shared path: stage timings, then torch.profiler's top operators."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from rail.deepdisc.inference.chunk import assemble_chunk, plan_chunk, run_member, tile_boxes
    from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.tileset.io import read_tileset

    torch.set_num_threads(args.threads)
    pred = EnsemblePredictor.from_artifact(load_artifact(model), device="cpu", resident=True)
    settings = InferenceSettings(shared_detection=True, batch_size=8)
    ts = read_tileset(tiles, tiles=slice(0, CHUNK_TILES))
    pred.predict(ts, settings)  # warm-up
    plan = plan_chunk(ts)
    stages = dict.fromkeys(("backbone+FPN", "detect (RPN, box head, NMS)", "match", "RoIAlign + redshift head",
                            "combine members, point estimates"), 0.0)
    layout = torch.channels_last
    with torch.inference_mode():
        for m, net in enumerate(pred.models):
            for a in range(0, ts.n_tiles, settings.batch_size):
                b = min(a + settings.batch_size, ts.n_tiles)
                images = torch.from_numpy(np.ascontiguousarray(ts.images[a:b])).contiguous(memory_format=layout)
                t0 = time.perf_counter()
                enc = net.encode(images)
                t1 = time.perf_counter()
                stages["backbone+FPN"] += t1 - t0
                if m == pred.detector:
                    dets = net.detect(enc)
                    t2 = time.perf_counter()
                    boxes = [tile_boxes(plan, t, dets[t - a], settings)[0] for t in range(a, b)]
                    stages["detect (RPN, box head, NMS)"] += t2 - t1
                    stages["match"] += time.perf_counter() - t2
                else:
                    boxes = [tile_boxes(plan, t, None, settings)[0] for t in range(a, b)]
                t3 = time.perf_counter()
                net.redshift(enc, [torch.as_tensor(x, dtype=torch.float32) for x in boxes],
                             [torch.as_tensor(plan.ebv[t], dtype=torch.float32) for t in range(a, b)])
                stages["RoIAlign + redshift head"] += time.perf_counter() - t3
        results = [run_member(net, ts, plan, settings, "cpu") for net in pred.models[:1]] * len(pred.models)
    t0 = time.perf_counter()
    assemble_chunk(ts, plan, results, pred.weights, settings)
    stages["combine members, point estimates"] = time.perf_counter() - t0
    total = sum(stages.values())
    print(f"Shared path, {len(pred.models)} members, {ts.n_tiles} tiles ({plan.n_primary} objects), "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f}: stage timings")
    for name, sec in stages.items():
        print(f"  {name:<36} {sec:7.2f} s {100 * sec / total:5.1f}%")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        pred.predict(ts, settings)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=32, help="tiles in the timed file (default 32)")
    p.add_argument("--objects", type=int, default=15, help="objects per tile (default 15)")
    p.add_argument("--only-levers", action="store_true", help="leave out the ensemble rows")
    p.add_argument("--only-ensembles", action="store_true", help="leave out the lever rows")
    p.add_argument("--members", default="1,3,10", help="ensemble sizes (default 1,3,10)")
    p.add_argument("--trained", help="a trained artifact for the accuracy comparison")
    p.add_argument("--trained-tiles", help="its test TileSet (with redshift_true)")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per row, the fastest kept (default 2)")
    p.add_argument("--profile", type=int, metavar="M",
                   help="only profile the shared path of an M-member ensemble (one chunk)")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--tiles-file", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2,
                   help="threads of the ensemble, accuracy and profile rows (default 2)")
    p.add_argument("--lever", default="fp32", choices=LEVERS, help=argparse.SUPPRESS)
    p.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--nproc", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at start; {os.cpu_count()} CPUs")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_levers_") as tmp:
        tmp = Path(tmp)
        tiles = make_tiles(tmp / "tiles.h5", n_tiles=args.tiles, size=128, n_bands=9,
                           objects_per_tile=args.objects)
        if args.profile:
            profile(args, tiles, untrained_artifact(tmp / "prof.pt", backbone="resnet18", members=args.profile,
                                                    n_bands=9))
            return
        sizes = [int(m) for m in args.members.split(",")]
        models = {m: untrained_artifact(tmp / f"r18_{m}.pt", backbone="resnet18", members=m, n_bands=9)
                  for m in sorted({1, *sizes})}
        if not args.only_ensembles:
            one = models[1]
            specs = [("fp32, 2 threads (today)", one, {}, None),
                     ("bf16 autocast backbone, 2 threads", one, {"lever": "bf16"}, 0),
                     ("torch.compile backbone, 2 threads", one, {"lever": "compile"}, 0),
                     ("fp32, 1 thread", one, {"threads": 1}, 0),
                     ("torch.compile backbone, 1 thread", one, {"lever": "compile", "threads": 1}, 0),
                     ("fp32, 2 processes x 1 thread", one, {"threads": 1, "nproc": 2}, 0),
                     ("bf16, 2 processes x 1 thread", one, {"threads": 1, "nproc": 2, "lever": "bf16"}, 0)]
            results["levers"] = print_table(f"Levers, one R18 member, {args.tiles} tiles, best of "
                                            f"{args.repeats} interleaved runs (load {os.getloadavg()[0]:.2f} "
                                            f"after)", best_of(args, tiles, tmp, specs))
        if not args.only_levers:
            specs = []
            for m in sizes:
                ref = len(specs)
                specs.append((f"{m} member(s), full path (today)", models[m], {"threads": args.threads}, None))
                if m > 1:
                    specs.append((f"{m} members, shared_detection", models[m],
                                  {"threads": args.threads, "shared": True}, ref))
                    specs.append((f"{m} members, shared_detection + bf16", models[m],
                                  {"threads": args.threads, "shared": True, "lever": "bf16"}, ref))
            results["ensembles"] = print_table(f"Ensembles, R18 members (random weights), {args.tiles} tiles, "
                                               f"{args.threads} thread(s), best of {args.repeats} interleaved "
                                               f"runs (load {os.getloadavg()[0]:.2f} after; x ref = vs the same "
                                               f"ensemble's full path)", best_of(args, tiles, tmp, specs))
        if args.trained:
            results["accuracy"] = accuracy(args, tmp)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
