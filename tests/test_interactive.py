"""Every stage works through ``rail.interactive`` as rail_base's own stages do."""

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rail.stages
from rail.core.stage import RailStage

from rail.deepdisc import STAGE_MODULES

ROOT = Path(__file__).resolve().parents[1]
#: Width that RAIL's interactive docstrings wrap at (DOCSTRING_LINE_LENGTH minus the indentation).
RENDER_WIDTH = 84


def _our_stages() -> dict[str, type]:
    rail.stages.import_and_attach_all(silent=True)
    return {name: cls for name, (cls, _) in RailStage.pipeline_stages.items() if cls.__module__ in STAGE_MODULES}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.pop("RAIL_INTERACTIVE_ALLOW_FAILURE", None)
    return env


def _run_python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_every_stage_declares_its_own_interactive_function():
    stages = _our_stages()
    assert len(stages) >= 15
    names = {}
    for name, cls in stages.items():
        function = cls.__dict__.get("interactive_function")
        assert function, f"{name} has no interactive_function of its own"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", function), function
        assert getattr(cls, cls.entrypoint_function or "", None), f"{name}: no entrypoint {cls.entrypoint_function}"
        names.setdefault(function, []).append(name)
    assert all(len(v) == 1 for v in names.values()), names


def test_interactive_docstrings_render_and_require_only_real_arguments():
    from rail.utils.interactive.docstring_utils import create_interactive_docstring

    for name, cls in _our_stages().items():
        docstring, required = create_interactive_docstring(name)
        entry = getattr(cls, cls.entrypoint_function)
        accepted = set(inspect.signature(entry).parameters) | {tag for tag, _ in cls.inputs} | set(cls.config_options)
        assert set(required) <= accepted, (name, required)
        # the entrypoint's first data argument is named in the docstring (RAIL maps ``input`` onto it)
        assert "Parameters\n----------" in docstring and "Returns\n-------" in docstring, name
        assert "\ninput : " not in docstring, (name, docstring[:2000])


@pytest.mark.parametrize("which", ["class", "entrypoint"])
def test_stage_docstrings_fit_rails_rendering_width(which):
    """RAIL re-wraps longer lines of the interactive docstrings one by one, breaking sentences apart."""
    too_long = []
    for name, cls in _our_stages().items():
        if which == "class":
            doc = inspect.cleandoc(cls.__doc__.split("\nParameters\n----------\n")[0])  # ceci appends its options
        else:
            doc = inspect.getdoc(getattr(cls, cls.entrypoint_function))
        too_long += [f"{name} ({which}): {line}" for line in doc.splitlines() if len(line) > RENDER_WIDTH]
    assert not too_long, "\n".join(too_long)


def test_import_rail_interactive_with_the_package_installed(tmp_path):
    out = _run_python(
        "import json, rail.interactive as ri; "
        "print(json.dumps({'est': sorted(n for n in dir(ri.estimation.algos.deepdisc) if not n.startswith('_')), "
        "'sim': hasattr(ri.creation.engines.deepdisc_simulator, 'deepdisc_simulator'), "
        "'prep': hasattr(ri.tools.deepdisc_prep, 'deepdisc_prep'), "
        "'eval': hasattr(ri.evaluation.deepdisc_evaluators, 'deepdisc_dist_to_point_evaluator')}))",
        tmp_path)
    found = json.loads(out.strip().splitlines()[-1])
    assert found == {"est": ["deepdisc_estimator", "deepdisc_informer"], "sim": True, "prep": True, "eval": True}


INTERACTIVE_RUN = """
import json
import rail.interactive as ri
from rail.deepdisc.logs import set_rail_log_level

set_rail_log_level("WARNING")
sim = ri.creation.engines.deepdisc_simulator.deepdisc_simulator
train = sim(n_samples=6, tile_size=64, seed=3, label_fraction=0.9, progress_bar=False)["output"]
test = sim(n_samples=2, tile_size=64, seed=4, progress_bar=False)["output"]
model = ri.estimation.algos.deepdisc.deepdisc_informer(
    training_data=train, members=1, epochs=1, progress_bar=False, num_threads=2)["model"]
pz = ri.estimation.algos.deepdisc.deepdisc_estimator(input_data=test, model=model, progress_bar=False)["output"]
metrics = ri.evaluation.deepdisc_evaluators.deepdisc_metrics_evaluator(data=pz, truth=test)["output"]
catalog = ri.tools.deepdisc_catalog.tileset_to_catalog(data=test)["output"]
print(json.dumps({"n_primary": int(test.n_primary), "npdf": int(pz.npdf), "ancil": sorted(pz.ancil),
                  "members": len(model["members"]), "metrics_n": metrics["n_objects"],
                  "catalog_rows": len(catalog["object_id"])}))
"""


@pytest.mark.slow
def test_simulate_inform_estimate_through_rail_interactive(tmp_path):
    found = json.loads(_run_python(INTERACTIVE_RUN, tmp_path).strip().splitlines()[-1])
    n = found["n_primary"]
    assert n > 0 and found["npdf"] == found["metrics_n"] == found["catalog_rows"] == n
    assert {"object_id", "zmode", "zmean", "zmedian", "detected", "forced"} <= set(found["ancil"])
    assert found["members"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # output_mode "return": nothing written


def test_prep_in_return_mode_writes_nothing(tmp_path, monkeypatch):
    """``rail.interactive`` runs stages with output_mode "return": prep builds in a temporary folder."""
    import numpy as np

    from rail.deepdisc.exceptions import PrepWarning
    from rail.deepdisc.prep.prepare import OUTPUTS
    from rail.tools.deepdisc_prep import DeepDiscPrep
    from tests.helpers.jades_files import make_field

    bands = ("F115W", "F277W", "F444W")
    field = make_field(tmp_path / "jades", bands=bands)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    stage = DeepDiscPrep.make_stage(
        name="prep_return", mosaic_dir=str(field.directory), catalog=str(field.catalog),
        specz=[f"jades-dr3:{field.specz}"], bands=",".join(bands), tile_size_arcsec=[1.2, 0.9], seed=5,
        match_radius_arcsec=0.05, ebv=0.01, progress_bar=False, output_mode="return", force_exact=True)
    with pytest.warns(PrepWarning):
        sets = stage.prepare()
    assert sorted(sets) == sorted(OUTPUTS)
    full = sets["full"].data
    assert full.n_primary > 0 and np.all(full.objects["ebv"] == 0.01)
    assert sets["train"].data.n_tiles > 0
    assert list(work.iterdir()) == []
