"""Structural variants of the consensus model on an accuracy benchmark run: why its brightest bin is over-covered.

On the realistic benchmark (`bench_accuracy.py`, 103 calibration spec-z) the consensus of DeepDISC and EAZY is
within the coverage tolerance in every magnitude bin but the brightest, F444W 18-25, where EAZY's sharp PDFs
dominate the product and the one ``beta`` (fitted mostly on fainter objects, where the two methods' widths are
alike and their errors correlated) widens them (68% coverage 0.78). This script refits the consensus on the
run's calibration spec-z with changes to the model's structure that no ``deepdisc combine`` option offers, and
prints each variant's coverage per magnitude bin on the test field, and the labels' cross-validated
log-likelihood where the fit has one (`rail.deepdisc.consensus.fit.CrossValidation`):

- ``beta`` scaled per object by how much the methods' widths differ (``1 + (beta - 1) g``, ``g`` = the
  effective number of methods minus one from the PDFs' inverse variances: 1 for equal widths, 0 when one method
  dominates; correlated Gaussian errors give such a fall);
- a width floor added to EAZY's PDFs (a Gaussian of ``s (1 + z)``), for template mismatch at the bright end;
- the output PIT maps by magnitude, and the brightest group's map alone;
- one ``beta`` per magnitude group fitted on the calibration spec-z of each group (reported, not applied);
- the grid: Gaussian PDFs of a few grid steps, their 68% and 95% coverage as measured on the 0.01 grid.

Nothing here is a default: the test field scores the variants, so none was adopted on these figures
(`consensus_variants.py --dev` compares designs on a development sample instead).

Run (after ``bench_accuracy.py --workdir W ...``)::

    PYTHONPATH=src python benchmarks/consensus_structure.py --workdir W --preset JADES9
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import MAG_EDGES, simulate  # noqa: E402
from consensus_variants import _files  # noqa: E402

LEVELS = (0.68, 0.95)


def _pdfs(files: list[Path], tiles: Path, column: str, zgrid: np.ndarray):
    """Each method's PDFs on the grid, the truths and F444W magnitudes of the file's rows."""
    from rail.deepdisc.consensus.io import labels_of, read_table
    from rail.deepdisc.consensus.sources import check_same_rows, method_chunks

    n = check_same_rows(files)
    z, mag, _ = labels_of(read_table(tiles), n, column=column)
    parts: list[list[np.ndarray]] = [[] for _ in files]
    for _, _, pdfs, _ in method_chunks(files, zgrid, 2000):
        for j, p in enumerate(pdfs):
            parts[j].append(p)
    return [np.concatenate(p) for p in parts], z, mag


def _coverage(zgrid, pdfs, z, mag) -> str:
    """68% / 95% coverage overall and per magnitude bin of `MAG_EDGES`, as table cells."""
    from rail.deepdisc.consensus.calibration import pit_of
    from rail.deepdisc.evaluation.coverage import coverage_from_pit

    pit = pit_of(zgrid, pdfs, z)
    cells = []
    for lo, hi in [(MAG_EDGES[0], MAG_EDGES[-1]), *zip(MAG_EDGES[:-1], MAG_EDGES[1:])]:
        k = (mag >= lo) & (mag < hi)
        cells.append(" / ".join(f"{c:.2f}" for c in coverage_from_pit(pit[k], LEVELS).coverage))
    return " | ".join(cells)


def _floor(zgrid: np.ndarray, pdfs: np.ndarray, s: float) -> np.ndarray:
    """PDFs convolved with a Gaussian of ``s (1 + z)``."""
    from rail.deepdisc.consensus.grid import normalise_rows

    sig = s * (1.0 + zgrid)
    kernel = np.exp(-0.5 * ((zgrid[:, None] - zgrid[None, :]) / sig[None, :]) ** 2) / sig[None, :]
    return normalise_rows(zgrid, pdfs @ kernel.T)


def _dominance(model, pdfs, mag, zgrid) -> tuple[np.ndarray, np.ndarray]:
    """The used methods' log-product and ``g`` per object (see the module docstring)."""
    from rail.deepdisc.consensus.apply import calibrated_pdfs

    logp, prec = 0.0, []
    for j in np.flatnonzero(model.used):
        cal = calibrated_pdfs(model, j, pdfs[j], mag, with_bad=False)
        w = cal / cal.sum(axis=1, keepdims=True)
        mean = w @ zgrid
        prec.append(1.0 / np.maximum(w @ zgrid**2 - mean**2, 1e-8))
        logp = logp + np.log(np.maximum(calibrated_pdfs(model, j, pdfs[j], mag), 1e-300))
    prec = np.asarray(prec)
    n_eff = prec.sum(axis=0) ** 2 / (prec**2).sum(axis=0)
    return logp, (n_eff - 1.0) / max(len(prec) - 1, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="the bench_accuracy.py run's --workdir")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--floor", type=float, nargs="+", default=[0.005, 0.01, 0.02], help="EAZY width floors s")
    args = p.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore", RuntimeWarning)  # empty magnitude bins of the grid test
    from rail.deepdisc.consensus.apply import combined_posterior
    from rail.deepdisc.consensus.fit import CrossValidation, combine_pdfs, fit_consensus
    from rail.deepdisc.consensus.grid import normalise_rows
    from rail.deepdisc.consensus.hb import _beta_loglike, combine_log_product, fit_beta, maximise_on_log_scale
    from rail.deepdisc.consensus.model import OUTPUT_PIT_POSITIONS, ConsensusSettings, map_rows
    from rail.deepdisc.consensus.output_maps import apply_output_maps

    workdir = Path(args.workdir)
    run = json.loads((workdir / "accuracy.json").read_text())
    res = next(r for r in run["results"] if r["preset"] == args.preset)
    out = workdir / args.preset
    suffix = "_calib" if run["args"]["calib_domain"] == "train" else "_calib_target"
    inputs = list(res["consensus_inputs"])
    calib_files, test_files = _files(run, out, inputs, suffix)
    _, test_tiles, calib_tiles = simulate(out, args.preset, argparse.Namespace(**run["args"]))
    settings = ConsensusSettings()
    zg = settings.zgrid
    cal, cz, cm = _pdfs([calib_files[m] for m in inputs], calib_tiles, "redshift", zg)
    lab = np.isfinite(cz)
    cal, cz, cm = [c[lab] for c in cal], cz[lab], cm[lab]
    test, tz, tm = _pdfs([test_files[m] for m in inputs], test_tiles, "redshift_true", zg)
    ok = np.isfinite(tz)
    test, tz, tm = [t[ok] for t in test], tz[ok], tm[ok]
    eazy = next(j for j, m in enumerate(inputs) if m.startswith("EAZY"))

    def fitted(pdfs, s=settings):
        return fit_consensus(pdfs, cz, cm, methods=inputs, settings=s)

    def cv(pdfs) -> str:
        used = list(np.flatnonzero(fitted(pdfs).used))
        return f"{CrossValidation(pdfs, cz, cm, inputs, settings).score(used, grow=False):.1f}"

    bins = ["all", *(f"{a:g}-{b:g}" for a, b in zip(MAG_EDGES[:-1], MAG_EDGES[1:]))]
    print(f"{len(cz)} calibration spec-z, {len(tz)} test galaxies; inputs {', '.join(inputs)}\n")
    print("| variant | CV log-likelihood | " + " | ".join(f"cov 68 / 95 {b}" for b in bins) + " |")
    print("|---|---:|" + "---|" * len(bins))
    model = fitted(cal)
    print(f"| default (beta {model.beta:.2f}) | {cv(cal)} | {_coverage(zg, combine_pdfs(model, test, tm), tz, tm)} |")
    for i, name in enumerate(inputs):
        print(f"| {name} alone, uncalibrated | - | {_coverage(zg, test[i], tz, tm)} |")
    # beta scaled by the methods' width ratio: fitted on the calibration labels (in-sample log-likelihood)
    lc, gc = _dominance(model, cal, cm, zg)
    lt, gt = _dominance(model, test, tm, zg)
    beta = maximise_on_log_scale(lambda b: _beta_loglike(zg, lc, cz, 1 + (b - 1) * gc), 1.0, 6.0)
    scaled, plain = _beta_loglike(zg, lc, cz, 1 + (beta - 1) * gc), _beta_loglike(zg, lc, cz, model.beta)
    print(f"| beta scaled by the width ratio (beta {beta:.2f}; in-sample log-likelihood {scaled:.1f} against "
          f"{plain:.1f}) | - | {_coverage(zg, combine_log_product(zg, lt, 1 + (beta - 1) * gt), tz, tm)} |")
    for s in args.floor:
        floored_cal = [(_floor(zg, c, s) if j == eazy else c) for j, c in enumerate(cal)]
        floored_test = [(_floor(zg, t, s) if j == eazy else t) for j, t in enumerate(test)]
        print(f"| EAZY width floor {s:g} (1 + z) | {cv(floored_cal)} | "
              f"{_coverage(zg, combine_pdfs(fitted(floored_cal), floored_test, tm), tz, tm)} |")
    maps = fitted(cal, replace(settings, output_pit="magnitude"))
    post = combined_posterior(maps, test, tm)
    rows = map_rows(maps.output_pit_knots.shape[0], maps.output_pit_edges, tm)
    bright = maps.output_pit_knots.copy()
    bright[2:] = np.asarray(OUTPUT_PIT_POSITIONS)  # every group but the brightest: the identity
    edges = ", ".join(f"{e:.2f}" for e in maps.output_pit_edges)
    for name, knots in ((f"output maps by magnitude (forced; groups split at {edges})", maps.output_pit_knots),
                        ("the brightest group's output map alone", bright)):
        mapped = apply_output_maps(zg, post.copy(), knots, rows, OUTPUT_PIT_POSITIONS)
        print(f"| {name} | - | {_coverage(zg, mapped, tz, tm)} |")
    print("\nbeta fitted on each magnitude group of the calibration spec-z (same calibrated inputs):\n")
    for lo, hi in zip(MAG_EDGES[:-1], MAG_EDGES[1:]):
        k = (cm >= lo) & (cm < hi)
        if k.sum() >= 10:
            print(f"- F444W {lo:g}-{hi:g}: {k.sum()} spec-z, beta {fit_beta(zg, lc[k], cz[k], 0.3, 6.0):.2f}")
    print("\nThe grid alone: Gaussian PDFs of sigma = k grid steps, truths drawn from them (4000 objects):\n")
    rng = np.random.default_rng(1)
    step = zg[1] - zg[0]
    for k in (1, 1.5, 2, 3, 5):
        mu = rng.uniform(0.5, 3.0, 4000)
        zt = mu + k * step * rng.standard_normal(4000)
        pdfs = normalise_rows(zg, np.exp(-0.5 * ((zg[None] - mu[:, None]) / (k * step)) ** 2))
        print(f"- {k:g} steps: coverage {_coverage(zg, pdfs, zt, np.full(4000, 20.0)).split(' | ')[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
