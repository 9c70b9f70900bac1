"""The consensus row of the accuracy benchmark (`bench_accuracy.py`): `deepdisc combine` as a user runs it.

The consensus (issue 22) is fitted on labelled objects that none of its inputs trained on: the spec-z of a
*calibration field*, simulated like the training field (same nuisance settings, same label selection, another
seed), which every input estimates. The fitted model then combines the inputs' photo-z of the test field. This
is the real-survey situation of a spec-z sample held out from training; the calibration labels are as biased
(bright, low redshift, a few percent wrong) as the training labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

#: The methods combined, as in the comparison pipeline (`rail.deepdisc.pipelines.CONSENSUS_METHODS`): the
#: network and the two template fitters, whose failures differ most.
CONSENSUS_INPUTS = ("DeepDISC ensemble", "EAZY", "BPZ")
LABEL = "Consensus"


def _name(label: str) -> str:
    return label.split()[0]


def run_consensus(
    cli: Callable[[list[str], int], tuple[float, float]],
    out: Path,
    calib: Mapping[str, Path],
    test: Mapping[str, Path],
    calib_tiles: Path,
    test_tiles: Path,
    threads: int,
) -> tuple[Path, dict]:
    """Fit the consensus on the calibration field's spec-z, apply it to the test field.

    Parameters
    ----------
    cli : callable
        Runs ``deepdisc ARGS`` in a child process and returns (wall s, CPU s) (`bench_accuracy._cli`).
    out : Path
        Folder for the model and the consensus files.
    calib, test : mapping
        Photo-z file of every method of `CONSENSUS_INPUTS` on the calibration and the test field.
    calib_tiles, test_tiles : Path
        The two TileSets (spec-z of the calibration objects, magnitudes of the bad-fraction bins).
    threads : int
        Threads of the child processes.

    Returns
    -------
    (Path, dict)
        The test field's consensus file, and the timings: ``fit_s`` (fit, including combining the calibration
        field) and ``estimate_s`` (combining the test field).
    """
    model = out / "consensus_model.npz"
    fit_s, _ = cli(["combine", *(f"{_name(m)}={calib[m]}" for m in CONSENSUS_INPUTS), "--truth", str(calib_tiles),
                    "-o", str(out / "pz_consensus_calib.hdf5"), "--save-model", str(model)], threads)
    target = out / "pz_consensus.hdf5"
    t0 = time.perf_counter()
    cli(["combine", *(f"{_name(m)}={test[m]}" for m in CONSENSUS_INPUTS), "--model", str(model), "--tiles",
         str(test_tiles), "-o", str(target)], threads)
    return target, {"fit_s": fit_s, "estimate_s": time.perf_counter() - t0}
