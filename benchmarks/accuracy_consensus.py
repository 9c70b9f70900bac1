"""The consensus row of the accuracy benchmark (`bench_accuracy.py`): `deepdisc combine` as a user runs it.

The consensus (issue 22) is fitted on labelled objects that none of its inputs trained on: the spec-z of a
*calibration field*, which every input estimates. The fitted model then combines the inputs' photo-z of the test
field. This is the real-survey situation of a spec-z sample held out from training; the calibration labels are
as biased (bright, low redshift, a few percent wrong) as the training labels.

Where the calibration field comes from (`bench_accuracy.py --calib-domain`):

* ``target`` (default): simulated like the *test* field (its nuisances and held-out SED family, another seed),
  its spec-z drawn like the training ones. In a survey the held-out spec-z lie in the very images whose
  objects are estimated, so they share those objects' PSF, depth and galaxy population; only their selection
  (bright, low redshift) differs.
* ``train``: simulated like the training field. The calibration then cannot see the test field's shift, and
  every method looks better on it than on the test field (the consensus's coverage on the calibration objects
  is near nominal, on the test field ~0.1 under).

The DeepDISC input is the best DeepDISC model of the run: the pretrained + fine-tuned ensemble when the run has
one (``--pretrain`` / ``--pretrained``), else the labels-only ensemble.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

#: The methods combined, as in the comparison pipeline (`rail.deepdisc.pipelines.CONSENSUS_METHODS`): the
#: network and the two template fitters, whose failures differ most (the DeepDISC row is replaced by the
#: fine-tuned ensemble's when the run has one: `consensus_inputs`).
CONSENSUS_INPUTS = ("DeepDISC ensemble", "EAZY", "BPZ")
LABEL = "Consensus"
#: Issue 22's coverage tolerances at 68% and 95%, and the fewest objects of a magnitude bin it checks.
COVERAGE_TOLERANCE = (0.05, 0.03)
MIN_BIN_OBJECTS = 50


def _name(label: str) -> str:
    return label.split()[0]


def consensus_inputs(deepdisc: str = CONSENSUS_INPUTS[0]) -> tuple[str, ...]:
    """The estimators combined: ``deepdisc`` (the score label of the DeepDISC model used) and the templates."""
    return (deepdisc, *CONSENSUS_INPUTS[1:])


def run_consensus(
    cli: Callable[[list[str], int], tuple[float, float]],
    out: Path,
    calib: Mapping[str, Path],
    test: Mapping[str, Path],
    calib_tiles: Path,
    test_tiles: Path,
    threads: int,
    inputs: tuple[str, ...] = CONSENSUS_INPUTS,
    fit_args: tuple[str, ...] = (),
) -> tuple[Path, dict]:
    """Fit the consensus on the calibration field's spec-z, apply it to the test field.

    Parameters
    ----------
    cli : callable
        Runs ``deepdisc ARGS`` in a child process and returns (wall s, CPU s) (`bench_accuracy._cli`).
    out : Path
        Folder for the model and the consensus files.
    calib, test : mapping
        Photo-z file of every method of ``inputs`` on the calibration and the test field.
    calib_tiles, test_tiles : Path
        The two TileSets (spec-z of the calibration objects, magnitudes of the bad-fraction bins).
    threads : int
        Threads of the child processes.
    inputs : tuple of str
        The estimators combined (`consensus_inputs`).
    fit_args : tuple of str
        More ``deepdisc combine`` options of the fit (e.g. ``("--output-pit", "none")``).

    Returns
    -------
    (Path, dict)
        The test field's consensus file, and the timings: ``fit_s`` (fit, including combining the calibration
        field) and ``estimate_s`` (combining the test field).
    """
    model = out / "consensus_model.npz"
    fit_s, _ = cli(["combine", *(f"{_name(m)}={calib[m]}" for m in inputs), "--truth", str(calib_tiles),
                    "-o", str(out / "pz_consensus_calib.hdf5"), "--save-model", str(model), *fit_args], threads)
    target = out / "pz_consensus.hdf5"
    t0 = time.perf_counter()
    cli(["combine", *(f"{_name(m)}={test[m]}" for m in inputs), "--model", str(model), "--tiles",
         str(test_tiles), "-o", str(target)], threads)
    return target, {"fit_s": fit_s, "estimate_s": time.perf_counter() - t0}


def coverage_outside(rows: list[dict], levels: tuple[float, float]) -> list[str]:
    """The bins of score rows (``all`` and every magnitude bin with at least `MIN_BIN_OBJECTS`) whose 68% / 95%
    coverage is outside `COVERAGE_TOLERANCE` of ``levels``."""
    tol68, tol95 = COVERAGE_TOLERANCE
    checked = [r for r in rows if r["binning"] == "all" or (r["binning"] == "mag" and r["n"] >= MIN_BIN_OBJECTS)]
    return [r["bin"] for r in checked if abs(r["cov68"] - levels[0]) > tol68 or abs(r["cov95"] - levels[1]) > tol95]


def consensus_targets(results: list[dict], levels: tuple[float, float]) -> list[str]:
    """Issue 22's targets as a markdown table: the consensus against every input at F444W < 27 (sigma_IQR,
    eta), and its 68% / 95% coverage overall and in every magnitude bin with at least `MIN_BIN_OBJECTS`. The
    inputs of each result are its ``consensus_inputs`` (default `CONSENSUS_INPUTS`)."""
    lines = ["Consensus targets (issue 22): beats every input in "
             "sigma_IQR and eta at F444W < 27; 68% / 95% coverage within "
             f"{COVERAGE_TOLERANCE[0]:.2f} / {COVERAGE_TOLERANCE[1]:.2f} of nominal overall and per magnitude bin "
             f"with >= {MIN_BIN_OBJECTS} objects:", "",
             "| preset | inputs | sigma_IQR consensus / best input | eta consensus / best input | coverage 68% / 95% "
             "(bins outside) | met |", "|---|---|---|---|---|---|"]
    for res in results:
        by = {s["estimator"]: s["rows"] for s in res["scores"]}
        if LABEL not in by:
            continue

        def cut(name):
            return next(r for r in by[name] if r["binning"] == "cut")

        inputs = tuple(res.get("consensus_inputs", CONSENSUS_INPUTS))
        c = cut(LABEL)
        sig = min(cut(m)["sigma_iqr"] for m in inputs)
        eta = min(cut(m)["eta"] for m in inputs)
        outside = coverage_outside(by[LABEL], levels)
        overall = by[LABEL][0]
        met = c["sigma_iqr"] < sig and c["eta"] < eta and not outside
        lines.append(f"| {res['preset']} | {', '.join(inputs)} | {c['sigma_iqr']:.3f} / {sig:.3f} | "
                     f"{c['eta']:.3f} / {eta:.3f} | {overall['cov68']:.2f} / {overall['cov95']:.2f} "
                     f"({', '.join(outside) or 'none'}) | {'yes' if met else 'no'} |")
    return lines + [""]
