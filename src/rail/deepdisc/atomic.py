"""Atomic file writes: a temporary file beside the target, renamed over it only when complete.

A reader never sees a half-written file, and an interrupted write leaves any earlier file untouched. Every
writer of the package (TileSets, model artifacts, photo-z files, JSON/CSV tables, figures) goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["temporary_beside", "commit", "atomic_path", "write_text_atomic"]

#: Mode of a new file before the umask is applied (as ``open(path, "w")`` would create it).
DEFAULT_FILE_MODE = 0o666


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_beside(path: str | os.PathLike, *, suffix: str = ".tmp") -> Path:
    """Create an empty hidden temporary file in ``path``'s folder (made if missing) and return its path.

    Parameters
    ----------
    path : str or Path
        The file the temporary one will replace.
    suffix : str
        Ending of the temporary file's name.

    Returns
    -------
    Path
        The new empty file (mode 0600 until `commit`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Give ``tmp`` the mode of a normally created file (``mkstemp`` makes 0600) and rename it over ``path``.

    Parameters
    ----------
    tmp : str or Path
        The complete temporary file (from `temporary_beside`).
    path : str or Path
        The target, replaced in one step.

    Returns
    -------
    Path
        ``path``.
    """
    os.chmod(tmp, DEFAULT_FILE_MODE & ~_current_umask())
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path : str or Path
        The target file.
    suffix : str
        Ending of the temporary file's name (some writers need one, e.g. ``.npz``).

    Yields
    ------
    Path
        The temporary file to write.

    Examples
    --------
    >>> with atomic_path("table.csv") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("a,b")
    """
    tmp = temporary_beside(path, suffix=suffix)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(text: str | bytes, path: str | os.PathLike) -> Path:
    """Write text (UTF-8) or bytes to ``path`` atomically.

    Parameters
    ----------
    text : str or bytes
        The whole content.
    path : str or Path
        The target file.

    Returns
    -------
    Path
        ``path``.
    """
    data = text.encode() if isinstance(text, str) else text
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
