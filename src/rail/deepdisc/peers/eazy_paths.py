"""Where the EAZY peer finds its templates and template error function: eazy-photoz folders and ``.param`` files.

eazy-py ships no templates: its users keep an eazy-photoz checkout and run eazy from it, so the paths in
eazy's parameters and in templates ``.param`` files (``templates/fsps_full/tweak_fsps_QSF_12_v3_001.dat``)
are relative to that folder, the *template root*. This package ships eazy-py's defaults (the 12
``tweak_fsps_QSF_12_v3`` FSPS templates and ``template_error_10.def``) in the same layout
(`PACKAGED_EAZY_ROOT`, with their attribution), so the peer runs offline; any other eazy-photoz folder is
given as ``templates_root``.

Resolution: an absolute path is used as it is. A relative ``.param`` file or template error file
(`resolve_eazy_path`) is looked up in the template root, then in the working folder. A template listed in a
``.param`` file (`read_eazy_param`) is looked up in ``templates_root`` when given, then in the ``.param`` file's
folder and the folders above it (so an unmodified file of a user's eazy-photoz checkout works as it is), then
in the package's copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "PACKAGED_EAZY_ROOT",
    "DEFAULT_EAZY_TEMPLATES",
    "DEFAULT_TEMPLATE_ERROR",
    "EazyTemplateEntry",
    "eazy_root",
    "resolve_eazy_path",
    "is_eazy_param",
    "read_eazy_param",
    "write_eazy_param",
]

#: eazy-photoz files shipped with the package (eazy-py's defaults; README.md there has the attribution).
PACKAGED_EAZY_ROOT = Path(str(resources.files("rail.deepdisc"))) / "data" / "eazy-photoz"
#: eazy-py's default templates (``TEMPLATES_FILE``), relative to the template root.
DEFAULT_EAZY_TEMPLATES = "templates/fsps_full/tweak_fsps_QSF_12_v3.param"
#: eazy-py's default template error function (``TEMP_ERR_FILE``), relative to the template root.
DEFAULT_TEMPLATE_ERROR = "templates/uvista_nmf/template_error_10.def"


@dataclass(frozen=True)
class EazyTemplateEntry:
    """One line of a templates ``.param`` file, its path resolved.

    Parameters
    ----------
    path : Path
        The template file (absolute).
    to_angstrom : float
        Factor from the file's wavelength unit to Angstrom (third column; 1 when absent).
    extra : tuple of str
        Further columns, kept as written (eazy-py ignores them).
    """

    path: Path
    to_angstrom: float = 1.0
    extra: tuple[str, ...] = ()


def eazy_root(templates_root: str | os.PathLike | None) -> Path:
    """The template root: ``templates_root``, or the package's eazy-photoz files when empty.

    Parameters
    ----------
    templates_root : path or None
        An eazy-photoz folder (the one holding ``templates/``), or ``""``/None.

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        If the folder does not exist.
    """
    if not templates_root:
        return PACKAGED_EAZY_ROOT
    root = Path(templates_root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"templates_root {str(templates_root)!r} is not a folder: give an eazy-photoz folder")
    return root


def resolve_eazy_path(path: str | os.PathLike, root: Path, *, what: str = "file") -> Path:
    """Find an eazy input file: absolute as given, else in the template root, else in the working folder.

    Parameters
    ----------
    path : path
        File name as an eazy user writes it (``templates/uvista_nmf/template_error_10.def``).
    root : Path
        Template root (`eazy_root`).
    what : str
        What the file is, for the error message.

    Returns
    -------
    Path
        The existing file.

    Raises
    ------
    ConfigError
        If no candidate exists, naming the places tried.
    """
    given = Path(path).expanduser()
    tried = [given] if given.is_absolute() else [root / given, Path.cwd() / given]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{what} {str(path)!r} not found (tried {', '.join(str(t) for t in tried)}): give templates_root, "
        "the eazy-photoz folder its paths are relative to"
    )


def is_eazy_param(spec: str | os.PathLike) -> bool:
    """Whether a template-set name is an eazy templates file (``*.param``, e.g. ``*.spectra.param``)."""
    return str(spec).endswith(".param")


def read_eazy_param(
    spec: str | os.PathLike, templates_root: str | os.PathLike | None = None
) -> list[EazyTemplateEntry]:
    """Read an eazy templates ``.param`` file (``N path [to_angstrom ...]`` per line), resolving every path.

    Listed paths are relative to an eazy-photoz folder. They are looked up in ``templates_root`` when it is
    given, then in the ``.param`` file's folder and each folder above it (an unmodified file inside a user's
    eazy-photoz checkout resolves there), then in the package's eazy-photoz files.

    Parameters
    ----------
    spec : path
        The ``.param`` file (resolved with `resolve_eazy_path`).
    templates_root : path, optional
        An eazy-photoz folder ("" or None: none given).

    Returns
    -------
    list of EazyTemplateEntry

    Raises
    ------
    ConfigError
        If the file or a listed template is missing or a line is malformed.
    """
    root = eazy_root(templates_root)
    param = resolve_eazy_path(spec, root, what="templates file").resolve()
    bases = ([root] if templates_root else []) + [param.parent, *param.parent.parents]
    if not templates_root:
        bases.append(PACKAGED_EAZY_ROOT)
    entries, missing = [], []
    for number, line in enumerate(param.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise ConfigError(f"{param}, line {number}: expected 'N path [to_angstrom]', got {line.strip()!r}")
        listed = Path(fields[1]).expanduser()
        candidates = [listed] if listed.is_absolute() else [base / listed for base in bases]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            missing.append(str(listed))
            continue
        try:
            to_angstrom = float(fields[2]) if len(fields) > 2 else 1.0
        except ValueError:
            raise ConfigError(f"{param}, line {number}: to_angstrom {fields[2]!r} is not a number") from None
        entries.append(EazyTemplateEntry(found.resolve(), to_angstrom, tuple(fields[3:])))
    if missing:
        raise ConfigError(
            f"templates file {param}: missing SED file(s) {', '.join(missing[:3])} (looked in "
            f"{', '.join(str(b) for b in bases[:3])}, ...): give templates_root, the eazy-photoz folder its "
            "paths are relative to"
        )
    if not entries:
        raise ConfigError(f"templates file {param} lists no template")
    return entries


def write_eazy_param(entries: list[EazyTemplateEntry], path: str | os.PathLike) -> Path:
    """Write a templates ``.param`` file with absolute paths (eazy then reads it from any folder).

    Parameters
    ----------
    entries : list of EazyTemplateEntry
        Templates, in order.
    path : path
        Output file.

    Returns
    -------
    Path
    """
    rows = [
        " ".join([str(k), str(e.path), repr(float(e.to_angstrom)), *e.extra]) for k, e in enumerate(entries, 1)
    ]
    return write_text_atomic("\n".join(rows) + "\n", path)
