"""Checked-in files hold nothing machine-specific and refer to nothing outside the repository."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Data files a user or a pipeline reads; their strings must be portable.
DATA_SUFFIXES = (".yml", ".yaml", ".json", ".ipynb")
#: Everything else of the project (code, docs, build files): may not point outside the repository.
TEXT_SUFFIXES = DATA_SUFFIXES + (".py", ".md", ".toml", ".cfg", ".txt", ".rst", "")

_ABSOLUTE = re.compile(
    r"(?:^|[\s'\"=(\[,:{])"            # start of a value or token
    r"(?:/(?!/)[A-Za-z_.][\w.@+-]*/"   # /dir/... (not a URL's //host)
    r"|~[\w.-]*/"                      # ~/... or ~user/...
    r"|[A-Za-z]:\\)"                   # C:\...
)
_CACHE = re.compile(r"(?:^|[/\\\s'\"])\.cache(?:[/\\]|$)|\$HOME\b|%USERPROFILE%")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # an exported tree without git
        skip = {".git", ".venv", "build", "dist", "demo_output", ".pytest_cache", "__pycache__", "_build"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in sorted(names) if (ROOT / n).is_file()]


def _strings(obj):
    """Every string (keys and values) in a parsed YAML/JSON document."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _strings(item)


def _machine_strings() -> list[str]:
    """Folders of this machine that must never appear in a checked-in data file."""
    names = {str(Path.home()), os.environ.get("TMPDIR", ""), "/tmp/", str(ROOT)}
    return sorted(n for n in names if len(n) > 4)


def machine_specific(text: str) -> list[str]:
    """The absolute paths, home-relative paths and cache folders in ``text`` (one entry per hit)."""
    hits = [m.group(0).strip() for m in _ABSOLUTE.finditer(text)]
    hits += [m.group(0).strip() for m in _CACHE.finditer(text)]
    hits += [name for name in _machine_strings() if name in text]
    return hits


def _load(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml"):
        return list(yaml.safe_load_all(text))
    return json.loads(text)


@pytest.mark.parametrize("text", [
    "bpz_ref_data_path: /root/.cache/pz-rail-deepdisc/bpz/CWWSB4-1a2b",
    "model: /home/user/model.pt",
    "dust: ~/dustmaps/SFD.fits",
    "folder: C:\\Users\\me\\tiles.h5",
    "data: .cache/pz-rail-deepdisc",
    f"where: {Path.home()}",
])
def test_scanner_finds_machine_specific_paths(text):
    assert machine_specific(text)


@pytest.mark.parametrize("text", [
    "output_dir: demo_output/JADES9", "see https://github.com/LSSTDESC/rail", "ratio: 1/2", "z/(1+z)",
    "metric_integration_limits: [0.0, 12.0]", "tiles = sim / 'tiles.h5'",
])
def test_scanner_passes_portable_strings(text):
    assert not machine_specific(text)


def test_checked_in_data_files_are_portable():
    """No YAML, JSON or notebook holds an absolute path, a home-relative path or a cache folder."""
    files = [p for p in _tracked_files() if p.suffix in DATA_SUFFIXES]
    assert any(p.suffix in (".yml", ".yaml") for p in files)
    bad = []
    for path in files:
        for text in _strings(_load(path)):
            bad += [f"{path.relative_to(ROOT)}: {hit!r}" for hit in machine_specific(text)]
    assert not bad, "machine-specific paths in checked-in files:\n" + "\n".join(bad)


@pytest.mark.parametrize("pipeline", sorted(p.name for p in (ROOT / "examples" / "pipelines").glob("*.yml")
                                            if not p.stem.endswith("_config")))
def test_checked_in_pipelines_pass_ceci_dry_run_on_a_fresh_machine(pipeline, tmp_path):
    """``ceci --dry-run`` of every checked-in pipeline, with an empty HOME and cache (nothing prepared)."""
    import sys

    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    env.pop("RAIL_DEEPDISC_CACHE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    before = set(_tracked_files())
    done = subprocess.run([sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())",
                           "--dry-run", f"examples/pipelines/{pipeline}"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Pipeline successful" in done.stdout
    assert set(_tracked_files()) == before


def test_no_file_refers_outside_the_repository():
    """Nothing points at the team's shared folder or its design notes: the contracts live in docs/."""
    pattern = re.compile(r"DESIGN\.md|\.\./shared\b|\bshared/[A-Z][\w-]*\.md")
    bad = []
    for path in _tracked_files():
        if path.suffix not in TEXT_SUFFIXES or path.name == "CHANGELOG.md":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        bad += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                if pattern.search(line)]
    assert not bad, "references outside the repository:\n" + "\n".join(bad)
