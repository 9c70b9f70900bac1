"""A full-field run as users do it, at fractions of a JADES-size field: wall time, objects/s, peak RSS, disk.

Each step is the user's command, run in its own process(es) and timed from here; the peak RSS of every Python
process it starts (under MPI, each rank) is sampled from ``/proc/<pid>/status`` (VmHWM) twice a second:

1. ``deepdisc simulate --mosaic-dir`` writes the field as JADES-layout FITS mosaics, segmentation and
   catalogs (rendered strip by strip through memory maps);
2. ``deepdisc prep`` tiles it (``full.h5`` with ``--overlap`` and re-centred tiles; train/val/test too);
3. ``mpiexec -n R python -m ceci rail.estimation.algos.deepdisc.DeepDiscEstimator ... --mpi`` estimates every
   object of ``full.h5`` with a ``--members``-member ResNet-18 ensemble of *randomly initialised* members (a
   trained ensemble has the same cost: the weights do not change the work);
4. ``deepdisc evaluate`` on the photo-z file and ``full.h5`` (metrics need labels: the spec-z; every PDF is read).

The whole field is ``--side`` pixels square (default 9600 px at 0.03"/px, 23 arcmin^2) at ``--density``
(default 2.0 drawn galaxies per arcsec^2 to F444W = 30.8, which catalogues ~1.0 object per arcsec^2 like JADES:
~94,000 objects); a fraction f is a square of side ``side * sqrt(f)``. Simulation runs under ``nice -n 10``
with ``--nice`` (the machine is shared; say so with the figures).

    PYTHONPATH=src python benchmarks/bench_fullfield.py --fractions 1/64 --members 2   # smoke run (minutes)
    PYTHONPATH=src python benchmarks/bench_fullfield.py --fractions 1/16 1/4 1 --workdir ff   # the issue's run
    # the same prep outputs again, with a trained (e.g. distilled) model in bf16:
    PYTHONPATH=src python benchmarks/bench_fullfield.py --fractions 1 --workdir ff --reuse --model student.pt \
        --estimate-option bf16=True --tag _student_bf16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_estimate import untrained_artifact  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
FULL_SIDE = 9600
DENSITY = 2.0
OVERLAP_PX = 20


def disk_mb(path: Path) -> float:
    """Bytes on disk under ``path`` (allocated blocks), MB."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files) / 2**20


def _descendants(root: int) -> list[int]:
    """Process ids under ``root`` (Linux /proc)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    out, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier]
        out += kids
        frontier = kids
    return out


def _python_peaks(root: int, peaks: dict) -> None:
    """Record VmHWM (peak RSS, MB) of every Python process under ``root``."""
    from rail.deepdisc.memory import status_mb

    for pid in [root, *_descendants(root)]:
        try:
            if "python" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                continue
        except OSError:
            continue
        peak = status_mb("VmHWM", pid)
        if peak == peak:  # the process may have ended in between (NaN)
            peaks[pid] = max(peaks.get(pid, 0.0), peak)


def run_step(cmd: list[str], *, cwd: Path, threads: int, ranks: int = 1, nice: bool = False,
             limit_s: float | None = None) -> dict:
    """Run one command, timed; peak RSS (MB) of each of its Python processes, sampled from /proc every 0.5 s.

    A step still running after ``limit_s`` is stopped and marked ``finished: False``.
    """
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *cmd]
    if nice:
        cmd = ["nice", "-n", "10", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(SRC))
    log = open(cwd / f".{len(list(cwd.glob('.*.log')))}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    peaks: dict = {}
    finished = True
    while proc.poll() is None:
        _python_peaks(proc.pid, peaks)
        if limit_s is not None and time.perf_counter() - t0 > limit_s:
            for pid in _descendants(proc.pid):
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            proc.terminate()
            proc.wait()
            finished = False
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    log.close()
    if finished and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{Path(log.name).read_text()[-3000:]}")
    return {"seconds": wall, "rss_mb": sorted(peaks.values(), reverse=True)[: max(ranks, 1)],
            "finished": finished, "load_after": os.getloadavg()}


def deepdisc(*args) -> list[str]:
    return [sys.executable, "-m", "rail.deepdisc.cli", *map(str, args)]


def simulate_and_prep(work: Path, side: int, mosaics: Path, prep: Path, steps: dict, args) -> int:
    """Run the simulate and prep steps into ``steps``; return the catalog size."""
    from astropy.io import fits

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    steps["simulate"] = run_step(deepdisc("simulate", "--mosaic-dir", mosaics, "--field-size", side, "--density",
                                          args.density, "--seed", args.seed, "--no-progress"),
                                 cwd=work, threads=1, nice=args.nice)
    catalog = next(mosaics.glob("*photometry*catalog.fits"))
    specz = next(mosaics.glob("*nirspec*catalog.fits"))
    steps["simulate"]["objects"] = len(fits.getdata(catalog, "FLAG"))
    steps["simulate"]["disk_mb"] = disk_mb(mosaics)
    steps["prep"] = run_step(deepdisc("prep", "--mosaics", mosaics, "--catalog", catalog, "--specz", specz, "-o", prep,
                                      "--overlap", OVERLAP_PX, "--ebv", 0.01, "--no-progress"),
                             cwd=work, threads=1)
    steps["prep"]["disk_mb"] = disk_mb(prep)
    (work / "steps.json").write_text(json.dumps(steps))
    if not args.keep:
        shutil.rmtree(mosaics)
    return steps["simulate"]["objects"]


def run_fraction(frac: Fraction, model: Path, args) -> dict:
    side = int(round(args.side * float(frac) ** 0.5))
    work = args.workdir / f"f{frac.numerator}_{frac.denominator}"
    mosaics, prep, pz = work / "mosaics", work / "prep", work / f"pz{args.tag}.hdf5"
    steps = {}
    if args.reuse and (work / "steps.json").exists():
        steps = {k: v for k, v in json.loads((work / "steps.json").read_text()).items() if k in ("simulate", "prep")}
        n_objects = steps["simulate"]["objects"]
    else:
        n_objects = simulate_and_prep(work, side, mosaics, prep, steps, args)
    summary = json.loads((prep / "prep_summary.json").read_text())
    n_full = summary["files"]["full"]["primary_objects"]
    config = work / f"config{args.tag}.yml"
    config.write_text(textwrap.dedent("""\
        DeepDiscEstimator:
            name: DeepDiscEstimator
    """))
    threads = max(1, args.threads // args.ranks)
    cmd = [sys.executable, "-m", "ceci", "rail.estimation.algos.deepdisc.DeepDiscEstimator", f"--model={model}",
           f"--input={prep / 'full.h5'}", f"--output={pz}", f"--config={config}", f"--num_threads={threads}",
           f"--batch_size={args.batch_size}", f"--chunk_size={args.chunk_size}", "--device=cpu",
           "--no-progress_bar", *(f"--{option}" for option in args.estimate_option)] + (
        ["--mpi"] if args.ranks > 1 else [])
    steps["estimate"] = run_step(cmd, cwd=work, threads=threads, ranks=args.ranks, limit_s=args.estimate_limit)
    steps["estimate"]["disk_mb"] = disk_mb(pz)
    if steps["estimate"]["finished"]:
        steps["evaluate"] = run_step(deepdisc("evaluate", pz, prep / "full.h5", "-o", work / f"eval{args.tag}"),
                                     cwd=work, threads=args.threads)
        steps["evaluate"]["disk_mb"] = disk_mb(work / f"eval{args.tag}")
    return {"fraction": str(frac), "model": str(model), "estimate_options": list(args.estimate_option),
            "side_px": side, "area_arcmin2": (side * 0.03 / 60) ** 2,
            "catalog_objects": n_objects, "full_objects": n_full, "full_tiles": summary["files"]["full"]["tiles"],
            "steps": steps}


def table(results: list[dict], args) -> str:
    model = (f"model {args.model}" if args.model else f"{args.members}-member R18 ensemble (random init)") + "".join(
        f", {option}" for option in args.estimate_option)
    lines = [f"Full field: {args.side} px square at 0.03\"/px, density {args.density}; {model}, "
             f"mpiexec -n {args.ranks}, {args.threads} threads in all; load before: "
             f"{os.getloadavg()[0]:.1f}", "",
             "| fraction | side px | objects | step | wall s | objects/s | peak RSS per process, MB | disk MB |",
             "|---|---:|---:|---|---:|---:|---|---:|"]
    for r in results:
        for name, s in r["steps"].items():
            n = r["catalog_objects"] if name in ("simulate", "prep") else r["full_objects"]
            s.setdefault("finished", True)
            rss = " / ".join(f"{v:.0f}" for v in s["rss_mb"])
            wall = f"{s['seconds']:.0f}" + ("" if s["finished"] else " (stopped)")
            rate = f"{n / s['seconds']:.0f}" if s["finished"] else "-"
            lines.append(f"| {r['fraction']} | {r['side_px']} | {n} | {name} | {wall} | {rate} | {rss} | "
                         f"{s['disk_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", nargs="+", default=["1/16", "1/4", "1"], help="fractions of the field area")
    p.add_argument("--side", type=int, default=FULL_SIDE, help="side of the whole field, pixels")
    p.add_argument("--density", type=float, default=DENSITY, help="drawn galaxies per arcsec^2")
    p.add_argument("--members", type=int, default=10, help="members of the randomly initialised ensemble")
    p.add_argument("--model", type=Path, help="estimate with this model artifact instead (e.g. a trained or "
                   "distilled model); --members is then ignored")
    p.add_argument("--estimate-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra DeepDiscEstimator option, e.g. bf16=True (repeatable)")
    p.add_argument("--tag", default="", help="suffix of the photo-z file, config and evaluation directory (runs "
                   "of other models on the same --reuse'd prep outputs)")
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks of the estimate (1: no mpiexec)")
    p.add_argument("--threads", type=int, default=2, help="torch threads in all (split between ranks)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-size", type=int, default=8, help="estimator batch_size (tiles per forward pass)")
    p.add_argument("--chunk-size", type=int, default=2000, help="estimator chunk_size (primary objects)")
    p.add_argument("--reuse", action="store_true", help="keep the simulate and prep results of an earlier run")
    p.add_argument("--nice", action="store_true", help="simulate under nice -n 10")
    p.add_argument("--keep", action="store_true", help="keep the mosaics")
    p.add_argument("--workdir", type=Path, default=Path("bench_fullfield"))
    p.add_argument("--estimate-limit", type=float, help="stop an estimate after this many seconds (marked unfinished)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else untrained_artifact(
        args.workdir / f"r18x{args.members}.pt", backbone="resnet18", members=args.members, n_bands=9)
    results = []
    for text in args.fractions:
        results.append(run_fraction(Fraction(text), Path(model), args))
        print(json.dumps(results[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(table(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
