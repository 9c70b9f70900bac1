"""The documentation site (docs/, Sphinx) builds with warnings as errors: API reference, CLI and guides."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("docs_html")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / ".doctrees"), str(ROOT / "docs"), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # docutils reports some problems (bad indentation in help texts) without failing the build
    assert "ERROR" not in done.stderr and "WARNING" not in done.stderr, done.stderr[-4000:]
    return out


def test_every_guide_is_in_the_site(site):
    guides = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert {"contracts", "real-data", "usage", "simulator", "pretraining"} <= set(guides)
    for stem in guides:
        assert (site / f"{stem}.html").is_file(), stem


def test_reference_documents_stages_cli_and_library(site):
    stages = (site / "api" / "stages.html").read_text()
    for name in ("DeepDiscInformer", "DeepDiscEstimator", "DeepDiscSimulator", "DeepDiscPrep",
                 "DeepDiscDistToPointEvaluator", "TileSetToCatalog", "EazyEstimator", "NIRCamBPZEstimator"):
        assert re.search(rf'id="rail\.[\w.]*\.{name}"', stages), name
    assert "iou_threshold" in stages  # the options, as numpydoc parameters
    cli = html.unescape(re.sub(r"<[^>]+>", "", (site / "cli.html").read_text()))
    for command in ("simulate", "prep", "pretrain", "train", "estimate", "peers", "evaluate", "report", "info"):
        assert f"deepdisc {command} [-h]" in cli, command
    assert "Examples" in cli
    library = (site / "api" / "library.html").read_text()
    assert "validate_tileset" in library and "load_artifact" in library
