"""examples/tutorial.ipynb: checked in without outputs, and runs top to bottom."""

import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"


def test_tutorial_is_checked_in_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    assert all("widgets" not in cell.metadata for cell in nb.cells)


def test_tutorial_covers_the_workflow():
    text = "\n".join(cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells)
    for needed in ("simulate_tileset", "DeepDiscInformer", "DeepDiscEstimator", "evaluate_files", "pit.png",
                   "coverage.png", "example_tiles.png", "zphot_vs_ztrue.png", "write_pipeline", "rail.interactive",
                   "deepdisc prep", "DeepDiscPrep"):
        assert needed in text, needed


@pytest.mark.slow
def test_tutorial_runs_top_to_bottom(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - start
    assert (tmp_path / "tutorial_output" / "report" / "pit.png").is_file()
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    print(f"\ntutorial notebook: {seconds:.0f} s")
