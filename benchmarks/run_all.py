"""Run every benchmark, print one summary table and update the tables in benchmarks/README.md.

One command on a quiet machine (each benchmark runs in its own process, one after the other; the load average
before and after is recorded beside the figures, and any figure taken with a load above ~0.5 should be
rerun)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/run_all.py                  # ~20 minutes on 2 cores
    PYTHONPATH=src python benchmarks/run_all.py --quick --no-readme                # smoke run (minutes)
    PYTHONPATH=src python benchmarks/run_all.py --only flops scaling               # some sections only
    PYTHONPATH=src python benchmarks/run_all.py --accuracy-dir bench_acc --only accuracy   # record an
                                                                                   # accuracy run

The accuracy benchmark trains models and is run on its own (``benchmarks/bench_accuracy.py``, ~1.5-3.5 hours);
``--accuracy-dir`` copies its tables into the README.

Only the sections between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers are rewritten; other
text in the README (e.g. the Pretraining section) is left alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
SECTIONS = ("throughput", "efficiency", "memory", "scaling", "accuracy")
RUNS = ("simulate", "prep", "train", "estimate", "same_objects", "flops", "scaling")
QUIET_LOAD = 0.5


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} default threads)")


def run_script(name: str, args: list[str], json_path: Path, threads: int) -> tuple[object, str, dict]:
    """Run benchmarks/NAME with ARGS --json JSON_PATH; return (figures, stdout, load before/after)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    before = load_average()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / name), *args, "--json", str(json_path)], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    print(proc.stdout, flush=True)
    return json.loads(json_path.read_text()), proc.stdout, {"before": before, "after": load_average(),
                                                            "wall_s": wall}


def same_objects(tmp: Path, quick: bool, threads: int) -> dict:
    """DeepDISC (1 and 3 untrained R18 members), BPZ and EAZY timed on the same simulated JADES9 objects."""
    sys.path.insert(0, str(HERE))
    import bench_accuracy
    import bench_estimate

    ns = argparse.Namespace(train_tiles=8 if quick else 32, test_tiles=6 if quick else 64, size=128,
                            labels="complete",  # a speed run: every training galaxy labelled
                            calib_tiles=4, test_library=bench_accuracy.TEST_SED_LIBRARY,
                            threads=threads, chunk_tiles=16, batch_size=8, device="cpu", fake=False)
    train, test, _ = bench_accuracy.simulate(tmp, "JADES9", ns)
    before = load_average()
    out = {}
    for members in (1, 3):
        model = bench_estimate.untrained_artifact(tmp / f"r18_{members}.pt", backbone="resnet18",
                                                  members=members, n_bands=9)
        r = bench_estimate.run_config(ns, model, test, tmp / f"pz_{members}.hdf5", ns.test_tiles)
        out[f"DeepDISC R18 x{members}"] = {"objects": r["objects"], "seconds": r["seconds"]}
    for name, t in bench_accuracy.run_peers(train, test, tmp, "JADES9").items():
        out[name] = {"objects": t["objects"], "seconds": t["estimate_s"], "inform_s": t["inform_s"]}
    return {"tiles": ns.test_tiles, "rows": out, "load": {"before": before, "after": load_average()}}


def _load(lo: dict) -> str:
    return f"{lo['before']:.2f}/{lo['after']:.2f}"


def throughput_table(res: dict) -> str:
    rows = ["| quantity | value | reference in the same run | load before/after |", "|---|---:|---|---|"]
    if "simulate" in res:
        for r in res["simulate"]["data"]:
            rows.append(f"| simulator, {r['size']}x{r['size']} px JADES9 tile (1 thread) | "
                        f"{r['mean']:.3f} s/tile | set-up {r['setup']:.1f} s, p90 {r['p90']:.3f} s | "
                        f"{_load(res['simulate']['load'])} |")
    if "prep" in res:
        p = res["prep"]["data"]
        rows.append(f"| prep, {p['size']} px {p['bands']}-band mosaic | {p['tiles_per_s']:.1f} tiles/s | "
                    f"{p['tiles']} tiles in {p['seconds']:.1f} s | {_load(res['prep']['load'])} |")
    if "train" in res:
        for r in res["train"]["data"]:
            rows.append(f"| training, {r['backbone']} | {r['s_per_image']:.3f} s/image | "
                        f"{r['cpu_s_per_image']:.3f} CPU s/image | {_load(res['train']['load'])} |")
    if "estimate" in res:
        for r in res["estimate"]["data"]:
            rows.append(f"| inference end to end, {r['label']} | {r['objects'] / r['seconds']:.1f} objects/s, "
                        f"{r['tiles'] / r['seconds']:.2f} tiles/s | {r['objects']} objects, model load and "
                        f"warm-up included | {_load(res['estimate']['load'])} |")
    if "same_objects" in res:
        s = res["same_objects"]["data"]
        for name, r in s["rows"].items():
            extra = f"inform {r['inform_s']:.1f} s not included" if "inform_s" in r else "untrained weights"
            rows.append(f"| same {r['objects']} simulated JADES9 objects ({s['tiles']} tiles), {name} | "
                        f"{r['objects'] / r['seconds']:.1f} objects/s | {extra} | {_load(s['load'])} |")
    if "scaling" in res:
        s = res["scaling"]["data"]["tiles"]
        rows.append(f"| inference steady state, R18 1 member (model only, after warm-up) | "
                    f"{1 / s['s_per_tile']:.2f} tiles/s | warm-up {s['warmup_s']:.1f} s once per process | "
                    f"{_load(res['scaling']['load'])} |")
    return "\n".join(rows) + "\n"


def memory_table(res: dict) -> str:
    rows = ["| run | peak RSS | load before/after |", "|---|---:|---|"]
    if "train" in res:
        for r in res["train"]["data"]:
            rows.append(f"| training {r['backbone']} | {r['peak_rss_gb'] * 1024:.0f} MB | "
                        f"{_load(res['train']['load'])} |")
    if "estimate" in res:
        for r in res["estimate"]["data"]:
            rows.append(f"| inference, {r['label']}, {r['tiles']} tiles | {r['peak_rss_mb']:.0f} MB | "
                        f"{_load(res['estimate']['load'])} |")
    if "prep" in res:
        p = res["prep"]["data"]
        rows.append(f"| prep of {p['mosaic_mb']:.0f} MB of mosaics | {p['peak_rss_mb']:.0f} MB | "
                    f"{_load(res['prep']['load'])} |")
    return "\n".join(rows) + "\n"


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=RUNS + ("accuracy",), help="run only these")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accuracy-dir", nargs="+", help="folder(s) of bench_accuracy.py runs to record")
    p.add_argument("--no-readme", action="store_true", help="print only")
    args = p.parse_args(argv)
    chosen = args.only or list(RUNS) + (["accuracy"] if args.accuracy_dir else [])
    q = args.quick
    t = str(args.threads)
    plans = {
        "simulate": ("bench_simulate.py", ["--tiles", "2" if q else "10", "--sizes", "128"]),
        "prep": ("bench_prep.py", ["--size", "512" if q else "2048", "--bands", "3" if q else "9"]),
        "train": ("bench_train.py", ["--threads", t, "--steps", "2" if q else "10", "--warmup", "1" if q else "2",
                                     "--backbones", "resnet18", "resnet50"] + (["--size", "64"] if q else [])),
        "estimate": ("bench_estimate.py", ["--threads", t, "--tiles", "8" if q else "64", "--members", "3",
                                           "--skip-r50", "--chunk-tiles", "4" if q else "16"]),
        "flops": ("bench_flops.py", ["--threads", t, "--tiles", "2" if q else "8", "--repeats", "1" if q else "3"]),
        "scaling": ("bench_scaling.py", ["--threads", t, "--counts", *(["4", "8"] if q else ["16", "32", "64", "128"]),
                                         "--tiles", "8" if q else "128", "--chunk-tiles", "4" if q else "16"]),
    }
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res = {}
    load0 = load_average()
    with tempfile.TemporaryDirectory(prefix="bench_all_") as tmp:
        tmp = Path(tmp)
        for name in chosen:
            if name == "accuracy":
                continue
            print(f"== {name} (load {load_average():.2f})", flush=True)
            if name == "same_objects":
                data = same_objects(tmp / "same", q, args.threads)
                res[name] = {"data": data, "load": data["load"]}
                continue
            script, script_args = plans[name]
            data, stdout, load = run_script(script, script_args, tmp / f"{name}.json", args.threads)
            res[name] = {"data": data, "stdout": stdout, "load": load}
    header = (f"Measured {stamp} on {machine()}; load average {load0:.2f} at the start"
              f"{'' if load0 <= QUIET_LOAD else ' (machine shared: rerun on a quiet machine)'}"
              f"{'; --quick sizes (smoke run, not figures)' if q else ''}.\n")
    sections = {}
    if any(k in res for k in ("simulate", "prep", "train", "estimate", "same_objects", "scaling")):
        sections["throughput"] = header + "\n" + throughput_table(res)
    if any(k in res for k in ("train", "estimate", "prep")):
        sections["memory"] = header + "\n" + memory_table(res)
    if "flops" in res:
        sections["efficiency"] = header + "\n" + res["flops"]["stdout"] + (
            f"\nLoad before/after: {_load(res['flops']['load'])}.\n")
    if "scaling" in res:
        sections["scaling"] = header + "\n" + res["scaling"]["stdout"] + (
            f"\nLoad before/after: {_load(res['scaling']['load'])}.\n")
    if "accuracy" in chosen and args.accuracy_dir:
        runs = [Path(d) for d in args.accuracy_dir]
        # no run folder in the text: it is a path of the machine that ran it
        sections["accuracy"] = (f"Recorded {stamp} (`benchmarks/bench_accuracy.py`; see its docstring).\n\n"
                                + "\n".join((d / "accuracy.md").read_text() for d in runs))
    for name, body in sections.items():
        print(f"\n### {name}\n\n{body}")
    if not args.no_readme and sections:
        text = README.read_text() if README.exists() else "# Benchmarks\n"
        for name in SECTIONS:
            if name in sections:
                text = replace_section(text, name, sections[name])
        README.write_text(text)
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
