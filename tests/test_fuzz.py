"""Corrupt input never gives a traceback: hundreds of damaged files against every command and stage.

Hypothesis draws damaged copies of a small valid TileSet, model artifact, photo-z file and set of JADES-layout
FITS files (truncated, bit-flipped, zeroed, emptied; datasets, attributes, keys or HDUs removed; wrong dtypes,
shapes and values), then runs each command that reads that kind of file (``deepdisc info``, ``estimate``,
``evaluate``, ``train``, ``peers``, ``pretrain``, ``prep``) and each stage that reads it. Every run must either
succeed (the damage left a valid file) or answer with exit status 2 and one line on stderr naming the file;
a stage must raise the package's own error, one line naming the file. The count of damaged inputs tried is
printed and recorded in ``benchmarks/README.md`` (Reliability).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import traceback
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.presets import get_preset
from rail.deepdisc.tileset.io import validate_tileset, write_tileset
from tests.helpers import fakenet
from tests.helpers.evalhelpers import make_photoz_for
from tests.helpers.jades_files import make_field
from tests.helpers.tilesets import make_tileset

pytestmark = pytest.mark.slow

BANDS = tuple(get_preset("COSMOSWEB4"))
FITS_BANDS = ("F115W", "F277W", "F444W")
#: Examples per file kind (hypothesis); the total is printed by the last test.
EXAMPLES = {"tiles": 120, "model": 70, "photoz": 70, "fits": 60}
#: Reproducible draws, no shrinking (a failing example is reported as drawn: shrinking would rerun commands).
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck),
                phases=(Phase.explicit, Phase.generate))
TRIED: dict[str, int] = {}


# --- valid inputs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_good")
    ts = make_tileset(n_tiles=3, size=32, bands=BANDS, objects_per_tile=3, seed=4)
    write_tileset(ts, root / "tiles.h5")
    fakenet.make_fake_artifact(root / "model.pt", BANDS)
    make_photoz_for(ts, seed=1).write_to(str(root / "pz.hdf5"))
    field = make_field(root / "jades", bands=FITS_BANDS, n_objects=12, n_specz=6, shape=(64, 96))
    return {"root": root, "tiles": root / "tiles.h5", "model": root / "model.pt", "pz": root / "pz.hdf5",
            "field": field}


@pytest.fixture(autouse=True)
def fake_network(monkeypatch):
    fakenet.install(monkeypatch)  # the estimator builds the tiny FakeNet from the (fake) artifact


# --- damage -----------------------------------------------------------------------------------------------

BYTE_DAMAGE = ("truncate", "flip", "zero_block", "garbage_tail", "empty", "text")


def damage_bytes(path: Path, kind: str, data: st.DataObject) -> None:
    raw = bytearray(path.read_bytes())
    n = len(raw)
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, n - 1), label="keep")]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            pos = data.draw(st.integers(0, n - 1), label="pos")
            raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    elif kind == "zero_block":
        start = data.draw(st.integers(0, n - 1), label="start")
        size = data.draw(st.integers(1, 4096), label="size")
        raw[start:start + size] = bytes(len(raw[start:start + size]))
    elif kind == "garbage_tail":
        raw += bytes(data.draw(st.binary(min_size=1, max_size=256), label="tail"))
    elif kind == "empty":
        raw = bytearray()
    elif kind == "text":
        raw = bytearray(b"this is not a data file\n")
    path.write_bytes(bytes(raw))


def _h5_items(f: h5py.File) -> list[str]:
    names = []
    f.visit(names.append)
    return sorted(names)


H5_DAMAGE = ("delete_item", "delete_attr", "bad_attr", "retype", "reshape", "nan_values", "shuffle_rows")


def damage_hdf5(path: Path, kind: str, data: st.DataObject) -> None:
    with h5py.File(path, "r+") as f:  # the intact copy of a valid file
        items = _h5_items(f)
        datasets = [n for n in items if isinstance(f[n], h5py.Dataset)]
        if kind == "delete_item":
            del f[data.draw(st.sampled_from(items), label="item")]
        elif kind == "delete_attr":
            holders = [n for n in ["/", *items] if len(f[n].attrs)]
            if holders:
                holder = f[data.draw(st.sampled_from(holders), label="holder")]
                del holder.attrs[data.draw(st.sampled_from(sorted(holder.attrs)), label="attr")]
        elif kind == "bad_attr":
            holder = f[data.draw(st.sampled_from(["/", *items]), label="holder")]
            names = sorted(holder.attrs) or ["format"]
            holder.attrs[data.draw(st.sampled_from(names), label="attr")] = data.draw(st.sampled_from(
                ["x", -1.0, np.nan, 0, np.array([1, 2, 3]), np.array(["a", "b"], dtype="S1"), 1e300]),
                label="value")
        elif kind in ("retype", "reshape", "nan_values", "shuffle_rows"):
            name = data.draw(st.sampled_from(datasets), label="dataset")
            values = f[name][()]
            del f[name]
            f.create_dataset(name, data=_changed(values, kind, data))


def _changed(values, kind: str, data: st.DataObject):
    values = np.asarray(values)
    if kind == "retype":
        target = data.draw(st.sampled_from(["int8", "float16", "S4", "bool", "complex64", "uint64"]),
                           label="dtype")
        try:
            return values.astype(target)
        except (TypeError, ValueError):
            return np.zeros(values.shape, dtype=target)
    if kind == "reshape":
        how = data.draw(st.sampled_from(["drop_last", "flatten", "add_axis", "scalar", "empty"]), label="how")
        if how == "drop_last" and values.ndim and len(values):
            return values[:-1]
        if how == "flatten":
            return values.reshape(-1)
        if how == "add_axis":
            return values[..., None]
        if how == "empty":
            return values[:0]
        return values.reshape(-1)[:1].reshape(()) if values.size else np.zeros(())
    if kind == "nan_values" and values.dtype.kind == "f" and values.size:
        out = values.copy()
        out.reshape(-1)[data.draw(st.integers(0, values.size - 1), label="at")] = \
            data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e38]), label="value")
        return out
    if kind == "shuffle_rows" and values.ndim and len(values) > 1:
        return values[np.random.default_rng(data.draw(st.integers(0, 99), label="seed")).permutation(len(values))]
    return values


MODEL_DAMAGE = ("drop_key", "wrong_type", "bad_version", "no_members", "bad_member", "bad_state", "pickled")


def damage_model(path: Path, kind: str, data: st.DataObject) -> None:
    art = torch.load(path, weights_only=True)
    wrong = data.draw(st.sampled_from(["x", -3, None, [], {}, 1.5, torch.zeros(2)]), label="wrong")
    if kind == "drop_key":
        art.pop(data.draw(st.sampled_from(sorted(art)), label="key"))
    elif kind == "wrong_type":
        where = data.draw(st.sampled_from(["top", "config", "member"]), label="where")
        holder = art if where == "top" else art["config"] if where == "config" else art["members"][0]
        holder[data.draw(st.sampled_from(sorted(holder)), label="key")] = wrong
    elif kind == "bad_version":
        art["version"] = data.draw(st.sampled_from([0, 1, 99, "3", None]), label="version")
    elif kind == "no_members":
        art["members"] = []
    elif kind == "bad_member":
        art["members"] = [wrong]
    elif kind == "bad_state":
        state = art["members"][0]["state_dict"]
        key = data.draw(st.sampled_from(sorted(state)), label="tensor")
        how = data.draw(st.sampled_from(["drop", "shape", "dtype", "nan"]), label="how")
        if how == "drop":
            state.pop(key)
        elif how == "shape":
            state[key] = torch.zeros(3, 2)
        elif how == "dtype":
            state[key] = state[key].to(torch.int8)
        else:
            state[key] = torch.full_like(state[key], float("nan"))
    elif kind == "pickled":  # a pickled object: weights_only loading must refuse it
        art = {"format": "deepdisc-model", "payload": Path("x")}
    torch.save(art, path)


FITS_DAMAGE = ("drop_hdu", "drop_header_key", "wrong_data", "nan_image")


def damage_fits(path: Path, kind: str, data: st.DataObject) -> None:
    from astropy.io import fits

    hdus = fits.open(path, mode="update", memmap=False)
    try:
        k = data.draw(st.integers(0, len(hdus) - 1), label="hdu")
        image = hdus[k].is_image and hdus[k].data is not None
        if kind == "drop_hdu" and k > 0:  # (astropy cannot make a table the primary HDU)
            del hdus[k]
        elif kind == "drop_header_key":
            keys = [key for key in hdus[k].header
                    if key not in ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT")
                    and not key.startswith("NAXIS")]
            if keys:
                del hdus[k].header[data.draw(st.sampled_from(keys), label="key")]
        elif kind == "wrong_data" and image:
            shape = data.draw(st.sampled_from([(3,), (2, 2), (1, 4, 4)]), label="shape")
            hdus[k].data = np.zeros(shape, dtype=data.draw(st.sampled_from(["int16", "float32"]), label="dtype"))
        elif kind == "nan_image" and image:
            hdus[k].data = np.full(hdus[k].data.shape, np.nan, dtype=np.float32)
    finally:
        hdus.close(output_verify="silentfix+ignore")


# --- running and judging ----------------------------------------------------------------------------------


#: Set DEEPDISC_FUZZ_COLLECT=1 to list every finding instead of stopping at the first (for fixing them).
COLLECT = bool(os.environ.get("DEEPDISC_FUZZ_COLLECT"))
FINDINGS: list[str] = []


def _where(exc: BaseException) -> str:
    """The innermost frame of this package in a traceback (where to fix it)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/rail/" in f.filename and "test" not in f.filename]
    return f" [at {frames[-1].filename.split('/src/')[-1]}:{frames[-1].lineno}]" if frames else ""


def _finding(message: str) -> None:
    if not COLLECT:
        raise AssertionError(message)
    FINDINGS.append(message)


def run_cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        except Exception as exc:  # noqa: BLE001 - the finding: an exception escaped the CLI
            _finding(f"deepdisc {argv[0]}: {type(exc).__name__} escaped{_where(exc)}: {exc}")
            return 0, ""
    return int(code or 0), err.getvalue()


_PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar (not an error line)


def check_cli(argv: list[str], damaged: Path) -> None:
    code, err = run_cli(argv)
    if code == 0:
        return
    lines = [line for line in re.split(r"[\r\n]|\x1b\[A", err) if line.strip() and not _PROGRESS.search(line)]
    if code != 2:
        _finding(f"deepdisc {argv[0]} exited {code}: {err[-2000:]}")
    elif len(lines) != 1 or "Traceback" in err:
        _finding(f"deepdisc {argv[0]}: stderr is not one line:\n{err[-2000:]}")
    elif damaged.name not in lines[0]:
        _finding(f"deepdisc {argv[0]}: the error does not name the file: {lines[0]}")


def check_stage(call, damaged: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except DeepDiscError as err:
            text = str(err)
            if "\n" in text.strip() or damaged.name not in text:
                _finding(f"stage error is not one line naming the file: {text}")
        except Exception as exc:  # noqa: BLE001 - the finding
            _finding(f"stage raised {type(exc).__name__} (not the package's error){_where(exc)}: {exc}")


def _valid_tileset(path: Path) -> bool:
    try:
        validate_tileset(path)
    except DeepDiscError:
        return False
    return True


@contextlib.contextmanager
def workdir():
    folder = Path(tempfile.mkdtemp(prefix="fuzz_"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _count(kind: str) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1


# --- the tests --------------------------------------------------------------------------------------------

TILE_DAMAGE = BYTE_DAMAGE + H5_DAMAGE


@settings(FUZZ, max_examples=EXAMPLES["tiles"])
@given(kind=st.sampled_from(TILE_DAMAGE), data=st.data())
def test_damaged_tileset(good, kind, data):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator
    from rail.tools.deepdisc_catalog import TileSetToCatalog

    _count("tiles")
    with workdir() as tmp:
        bad = tmp / "damaged_tiles.h5"
        shutil.copy(good["tiles"], bad)
        (damage_bytes if kind in BYTE_DAMAGE else damage_hdf5)(bad, kind, data)
        check_cli(["info", str(bad)], bad)
        check_cli(["estimate", str(good["model"]), str(bad), "-o", str(tmp / "pz.hdf5")], bad)
        check_cli(["evaluate", str(good["pz"]), str(bad), "-o", str(tmp / "ev")], bad)
        check_stage(lambda: DeepDiscEstimator.make_stage(
            name="fuzz_est", model=str(good["model"]), output=str(tmp / "pz_stage.hdf5"),
            progress_bar=False).estimate(str(bad)), bad)
        check_stage(lambda: TileSetToCatalog.make_stage(name="fuzz_cat", output_mode="return")(str(bad)), bad)
        if not _valid_tileset(bad):  # commands that would start training on a valid file
            check_cli(["train", str(bad), "-o", str(tmp / "m.pt"), "--members", "1", "--epochs", "1"], bad)
            check_cli(["peers", str(bad), "-o", str(tmp / "peers"), "--train", str(bad)], bad)
            check_cli(["pretrain", "-o", str(tmp / "pre.pt"), "--tile-files", str(bad), "--epochs", "1"], bad)


@settings(FUZZ, max_examples=EXAMPLES["model"])
@given(kind=st.sampled_from(BYTE_DAMAGE + MODEL_DAMAGE), data=st.data())
def test_damaged_model(good, kind, data):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    _count("model")
    with workdir() as tmp:
        bad = tmp / "damaged_model.pt"
        shutil.copy(good["model"], bad)
        (damage_bytes if kind in BYTE_DAMAGE else damage_model)(bad, kind, data)
        check_cli(["info", str(bad)], bad)
        check_cli(["estimate", str(bad), str(good["tiles"]), "-o", str(tmp / "pz.hdf5")], bad)
        check_stage(lambda: DeepDiscEstimator.make_stage(
            name="fuzz_est_model", model=str(bad), output=str(tmp / "pz_stage.hdf5"),
            progress_bar=False).estimate(str(good["tiles"])), bad)


@settings(FUZZ, max_examples=EXAMPLES["photoz"])
@given(kind=st.sampled_from(BYTE_DAMAGE + H5_DAMAGE), data=st.data())
def test_damaged_photoz(good, kind, data):
    from rail.core.data import QPHandle

    from rail.evaluation.deepdisc_evaluators import DeepDiscMetricsEvaluator

    _count("photoz")
    with workdir() as tmp:
        bad = tmp / "damaged_pz.hdf5"
        shutil.copy(good["pz"], bad)
        (damage_bytes if kind in BYTE_DAMAGE else damage_hdf5)(bad, kind, data)
        check_cli(["info", str(bad)], bad)
        check_cli(["evaluate", str(bad), str(good["tiles"]), "-o", str(tmp / "ev")], bad)
        check_cli(["evaluate", str(good["pz"]), str(good["tiles"]), "-o", str(tmp / "ev2"),
                   "--peer", f"peer={bad}"], bad)
        check_stage(lambda: DeepDiscMetricsEvaluator.make_stage(name="fuzz_metrics", output_mode="return").evaluate(
            QPHandle("input", path=str(bad)), str(good["tiles"])), bad)


@settings(FUZZ, max_examples=EXAMPLES["fits"])
@given(target=st.sampled_from(["mosaic", "catalog", "segmentation", "specz"]),
       kind=st.sampled_from(BYTE_DAMAGE + FITS_DAMAGE), data=st.data())
def test_damaged_fits(good, target, kind, data):
    from rail.tools.deepdisc_prep import DeepDiscPrep

    _count("fits")
    field = good["field"]
    with workdir() as tmp:
        mosaics = tmp / "jades"
        shutil.copytree(field.directory, mosaics)
        files = {"mosaic": mosaics / field.mosaics[FITS_BANDS[-1]].name if field.mosaics else None,
                 "catalog": mosaics / field.catalog.name, "segmentation": mosaics / field.segmentation.name,
                 "specz": mosaics / field.specz.name}
        if files["mosaic"] is None:
            files["mosaic"] = sorted(mosaics.glob("*f444w*"))[0]
        bad = files[target]
        (damage_bytes if kind in BYTE_DAMAGE else damage_fits)(bad, kind, data)
        common = ["--mosaics", str(mosaics), "--catalog", str(files["catalog"]), "--specz",
                  f"jades-dr3:{files['specz']}", "--preset", ",".join(FITS_BANDS), "--ebv", "0",
                  "--tile-size", "1.2", "0.9"]
        check_cli(["prep", *common, "-o", str(tmp / "out")], bad)
        check_stage(lambda: DeepDiscPrep.make_stage(
            name="fuzz_prep", mosaic_dir=str(mosaics), catalog=str(files["catalog"]),
            specz=[f"jades-dr3:{files['specz']}"], bands=",".join(FITS_BANDS), ebv=0.0,
            tile_size_arcsec=[1.2, 0.9], progress_bar=False, output_mode="return").prepare(), bad)


def test_count_of_damaged_inputs():
    """Runs last in this module: the number of damaged inputs tried (recorded in benchmarks/README.md)."""
    assert not FINDINGS, "\n".join(sorted(set(FINDINGS)))
    total = sum(TRIED.values())
    print(f"\nfuzz: {total} damaged inputs ({', '.join(f'{k} {v}' for k, v in TRIED.items())}), no traceback")
    assert total >= sum(EXAMPLES.values()) * 0.9
