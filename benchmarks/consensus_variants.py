"""The consensus and the recalibration of an accuracy benchmark run (`bench_accuracy.py`), refitted with other
``deepdisc combine`` options: issue 22's and issue 18's coverage targets for each.

Nothing is retrained or re-estimated: the run's photo-z files of the calibration and the test field (the DeepDISC
input of its consensus and the peers) are combined again, once per variant, into ``consensus_<variant>`` folders
of the run's preset folder. Every variant's fit uses only the calibration field's spec-z; the test field's truths
only score it.

``--calib-sets K [K ...]`` asks how many held-out spec-z the fit needs: the calibration field's tiles are cut, by
``tile_id``, into consecutive disjoint sets of K field tiles each (a 2400-tile field and ``--calib-sets 600 1200
2400`` give four, two and one sets), and every variant is fitted on the spec-z of each set alone (the others'
truths hidden) and scored on the whole test field. The sets of one size are independent replicates: their spread
is the scatter that a calibration sample of that size brings. The first K tiles of a larger field hold the same
objects, positions and spec-z as the K-tile field of the same seed, but not the same pixel noise and catalog
photometry, so a set's fit differs somewhat from the smaller field's.

``--dev`` (with ``--calib-sets``) also scores every set's fit on a *development* sample: every galaxy of the
calibration field outside that set, with its simulated true redshift (the fit never sees them, and they are not
the test field). Designs of the fit are compared on these columns, so that the test field stays a test: it only
reports the design chosen.

Run (after ``bench_accuracy.py --workdir W ...``)::

    PYTHONPATH=src python benchmarks/consensus_variants.py --workdir W --preset JADES9 \\
        --variant "default=" --variant "no-map=--output-pit none" --variant "by-magnitude=--output-pit magnitude"
    PYTHONPATH=src python benchmarks/consensus_variants.py --workdir W --variant "default=" --calib-sets 600 1200 2400
    PYTHONPATH=src python benchmarks/consensus_variants.py --workdir W --variant "default=" \\
        --variant "no-map=--output-pit none" --calib-sets 600 1200 2400 --dev
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_consensus import MIN_BIN_OBJECTS, coverage_outside, run_consensus  # noqa: E402
from bench_accuracy import LEVELS, RECALIBRATED, _cli, _slug, score, simulate  # noqa: E402


def _files(run: dict, out: Path, inputs: list[str], calib_suffix: str) -> tuple[dict, dict]:
    """Calibration and test photo-z files of each consensus input of the run."""
    calib, test = {}, {}
    for name in inputs:
        if name.startswith("DeepDISC"):
            stem = "finetuned" if "fine-tuned" in name else "ensemble"
            pz = out / f"pz_{run['args']['labels']}{run['args']['tag']}_{stem}.hdf5"
        else:
            pz = out / f"peers_{run['args']['labels']}" / f"pz_{_slug(name)}.hdf5"
        calib[name], test[name] = pz.with_name(pz.stem + f"{calib_suffix}.hdf5"), pz
    for path in (*calib.values(), *test.values()):
        if not path.exists():
            raise SystemExit(f"{path}: missing; run bench_accuracy.py with this --workdir first")
    return calib, test


def _calibration_sets(calib_tiles: Path, truth, n_field: int, sizes: list[int] | None, folder: Path
                      ) -> list[tuple[str, int | None, Path, int, np.ndarray | None]]:
    """(name, size in tiles, truth file, spec-z, rows inside) of each calibration set: the whole field (``sizes``
    None; size and rows None), else consecutive disjoint blocks of each size among the field's ``n_field`` tiles
    (the calibration TileSet ``calib_tiles``, whose truth table is ``truth``, keeps only those holding a spec-z),
    written as truth tables with the other blocks' spec-z hidden."""
    import h5py
    import tables_io

    z, _ = truth.redshift("redshift")
    if not sizes:
        return [("all", None, calib_tiles, int(np.isfinite(z).sum()), None)]
    with h5py.File(calib_tiles, "r") as f:
        field_tile = f["tiles"]["tile_id"][()][truth.columns["tile"]]
    folder.mkdir(exist_ok=True)
    sets = []
    for size in sizes:
        for start in range(0, n_field - size + 1, size):
            inside = (field_tile >= start) & (field_tile < start + size)
            columns = dict(truth.columns, redshift=np.where(inside, truth.columns["redshift"], np.nan))
            path = folder / f"truth_tiles_{start}-{start + size}.hdf5"
            tables_io.write(columns, str(path))
            sets.append((f"tiles {start}-{start + size}", size, path, int((np.isfinite(z) & inside).sum()), inside))
    return sets


def _dev_truth(calib_truth, inside: np.ndarray):
    """The development sample of a calibration set: the calibration field's objects outside it, every one with its
    simulated true redshift (those inside hidden), as a truth table of the field's rows."""
    from rail.deepdisc.evaluation.io import TruthTable

    if "redshift_true" not in calib_truth.columns:
        raise SystemExit(f"{calib_truth.source}: no redshift_true column; --dev needs a simulated calibration field")
    columns = dict(calib_truth.columns)
    columns["redshift_true"] = np.where(inside, np.nan, np.asarray(columns["redshift_true"], float))
    return TruthTable(columns, calib_truth.bands, f"{calib_truth.source} outside the set")


def _summary(label: str, scored: dict) -> dict:
    rows = scored["rows"]
    cut = next(r for r in rows if r["binning"] == "cut")
    overall = rows[0]
    bins = [r for r in rows if r["binning"] == "mag" and r["n"] >= MIN_BIN_OBJECTS]
    return {"label": label, "cut": cut, "all": overall, "bins": bins, "outside": coverage_outside(rows, LEVELS)}


def _maps(model: Path) -> str:
    """The output PIT maps a fitted consensus model applies: none, one, or one per magnitude group."""
    from rail.deepdisc.consensus.model import load_consensus_model

    fitted = load_consensus_model(model)
    if not len(fitted.output_pit_knots):
        return "none"
    groups = len(fitted.output_pit_edges) + 1
    return "one" if groups == 1 else f"{groups} magnitude groups"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="the bench_accuracy.py run's --workdir")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=OPTIONS",
                   help="a name and the deepdisc combine fit options of a variant (repeatable; empty: defaults)")
    p.add_argument("--calib-sets", type=int, nargs="+", default=None, metavar="K",
                   help="fit on disjoint sets of K calibration-field tiles each (by tile_id), every K given; "
                        "default: the whole calibration field")
    p.add_argument("--dev", action="store_true",
                   help="with --calib-sets: also score each fit on the calibration field's galaxies outside its set "
                        "(simulated truths), the sample to compare designs on")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.dev and not args.calib_sets:
        p.error("--dev needs --calib-sets (the development sample is the calibration field outside each set)")
    from rail.deepdisc.evaluation.io import read_truth

    workdir = Path(args.workdir)
    run = json.loads((workdir / "accuracy.json").read_text())
    res = next(r for r in run["results"] if r["preset"] == args.preset)
    out = workdir / args.preset
    domain = run["args"]["calib_domain"]
    calib_suffix = "_calib" if domain == "train" else "_calib_target"
    inputs = list(res["consensus_inputs"])
    calib_files, test_files = _files(run, out, inputs, calib_suffix)
    _, test_tiles, calib_tiles = simulate(out, args.preset, argparse.Namespace(**run["args"]))  # the run's files
    truth, calib_truth = read_truth(test_tiles), read_truth(calib_tiles)
    sets = _calibration_sets(calib_tiles, calib_truth, run["args"]["calib_tiles"], args.calib_sets,
                             out / "calibration_sets")
    table = []
    for spec in args.variant:
        name, _, options = spec.partition("=")
        fit_args = tuple(shlex.split(options))
        for set_name, size, set_truth, n_labels, inside in sets:
            for kind, methods in (("consensus", tuple(inputs)), ("recalibrated", (inputs[0],))):
                folder = out / f"consensus_{_slug(name)}_{kind}" / ("" if args.calib_sets is None
                                                                    else _slug(set_name))
                folder.mkdir(parents=True, exist_ok=True)
                t0 = time.perf_counter()
                pz, _ = run_consensus(_cli, folder, {m: calib_files[m] for m in methods},
                                      {m: test_files[m] for m in methods}, set_truth, test_tiles, args.threads,
                                      methods, fit_args)
                estimator = f"{name}: " + ("Consensus" if kind == "consensus" else RECALIBRATED)
                label = estimator + ("" if args.calib_sets is None else f", {set_name} ({n_labels} spec-z)")
                row = _summary(label, score(pz, truth, label, time.perf_counter() - t0))
                row |= {"maps": _maps(folder / "consensus_model.npz"),
                        "group": f"{estimator}, sets of {size} tiles"}
                if args.dev:
                    dev = score(folder / "pz_consensus_calib.hdf5", _dev_truth(calib_truth, inside), label, 0.0)
                    row["dev"] = _summary(label, dev)
                table.append(row)
                print(f"{label} done", file=sys.stderr, flush=True)
    print(f"Inputs: {', '.join(inputs)}; calibration field: {calib_tiles.name}; test field: {test_tiles.name}\n")
    _print_table(table, errors=True)
    if args.dev:
        print("\nDevelopment sample (the calibration field's galaxies outside each set; simulated truths):\n")
        _print_table([t["dev"] | {"maps": t["maps"]} for t in table], errors=False)
        _print_within(table)
    return 0


def _print_table(table: list[dict], errors: bool) -> None:
    """One row per fit (`_summary` and its ``maps``): metrics, coverage overall and per bin, bins outside the
    tolerance; ``errors``: the F444W < 27 metrics with their bootstrap errors."""
    bins = [r["bin"] for r in table[0]["bins"]]
    print("| variant | output maps | F444W < 27 sigma_IQR / eta | all sigma_IQR / eta | cov 68 / 95 all | "
          + " | ".join(f"cov 68 / 95 {b}" for b in bins) + " | outside tolerance |")
    print("|---|---|---|---|---|" + "---|" * len(bins) + "---|")
    for t in table:
        c, a = t["cut"], t["all"]
        cut = (f"{c['sigma_iqr']:.3f}±{c['sigma_iqr_err']:.3f} / {c['eta']:.3f}±{c['eta_err']:.3f}" if errors
               else f"{c['sigma_iqr']:.3f} / {c['eta']:.3f}")
        print(f"| {t['label']} | {t['maps']} | {cut} | {a['sigma_iqr']:.3f} / {a['eta']:.3f} | "
              f"{a['cov68']:.3f} / {a['cov95']:.3f} | "
              + " | ".join(f"{r['cov68']:.3f} / {r['cov95']:.3f}" for r in t["bins"])
              + f" | {', '.join(t['outside']) or 'none'} |")


def _print_within(table: list[dict]) -> None:
    """Per variant and set size, how many sets are within the tolerance on the development sample and the test."""
    print("\n| variant, sets | sets | within the tolerance: development sample | test field |\n|---|---:|---:|---:|")
    groups: dict[str, list[dict]] = {}
    for t in table:
        groups.setdefault(t["group"], []).append(t)
    for name, rows in groups.items():
        print(f"| {name} | {len(rows)} | {sum(not r['dev']['outside'] for r in rows)} | "
              f"{sum(not r['outside'] for r in rows)} |")


if __name__ == "__main__":
    sys.exit(main())
