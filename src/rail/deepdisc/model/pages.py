"""Dropping a memory-mapped model file's pages from this process's resident memory (Linux).

A model artifact loaded with ``torch.load(mmap=True)`` (`rail.deepdisc.model.artifact.load_artifact` with
``mmap=True``) keeps its tensors in the file: reading a member's weights pages them in, and they stay in the
process's resident set (its RSS) as long as the file is mapped, so after one pass over a 10-member ensemble
all of its weights are resident again. `FilePages.release` tells the kernel (``madvise(MADV_DONTNEED)``)
that the pages of some tensors are not needed now: they leave the resident set and are read again from the
page cache if the tensors are touched later. The tensors keep their values.

Only pages of a *file* mapping are released, and only when the mapping holds no page written by this process
(a written page of a private mapping would be lost), checked once by `FilePages.of`: tensors in ordinary
memory, or written to, are left alone. Elsewhere than Linux nothing is released.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FilePages"]

log = logging.getLogger(__name__)

_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
_libc = None


def _madvise():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.madvise.restype = ctypes.c_int
    return _libc.madvise


def _span(tensors: Iterable) -> tuple[int, int] | None:
    """Lowest and highest byte address of the CPU tensors' storages (None if there is none)."""
    spans = [(s.data_ptr(), s.nbytes()) for s in (t.untyped_storage() for t in tensors if t.device.type == "cpu")
             if s.nbytes() > 0]
    if not spans:
        return None
    return min(p for p, _ in spans), max(p + n for p, n in spans)


def _clean_file_mapping(lo: int, hi: int) -> tuple[int, int, str] | None:
    """The mapping of a file holding [lo, hi) with no page written by this process (``/proc/self/smaps``)."""
    if not sys.platform.startswith("linux") or _MADV_DONTNEED is None:
        return None
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        head = line.split(None, 5)
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line: start-end perms offset ...
            if found is not None:
                break  # the next mapping: the one found had no Anonymous line
            start, end = (int(x, 16) for x in head[0].split("-"))
            path = head[5].strip() if len(head) > 5 else ""
            if start <= lo and hi <= end and path.startswith("/") and not path.startswith("/dev/"):
                found = (start, end, path)
        elif found is not None and head[0] == "Anonymous:":
            return found if int(head[1]) == 0 else None
    return found


@dataclass(frozen=True)
class FilePages:
    """A clean file mapping holding a set of tensors (e.g. a memory-mapped artifact), whose pages can be released.

    Build it with `FilePages.of` once the tensors are loaded and before anything could write to them; later
    `release` calls need no look-up (a few microseconds plus the system call).
    """

    start: int
    end: int
    path: str

    @classmethod
    def of(cls, tensors: Iterable) -> FilePages | None:
        """The file mapping holding all these tensors, or None (ordinary memory, written pages, not Linux).

        Parameters
        ----------
        tensors : iterable of torch.Tensor
            E.g. every tensor of an artifact loaded with ``torch.load(mmap=True)``.

        Returns
        -------
        FilePages or None
        """
        span = _span(tensors)
        found = _clean_file_mapping(*span) if span else None
        return cls(*found) if found else None

    def release(self, tensors: Iterable) -> int:
        """Drop the pages under these tensors from the resident set; they keep their values.

        The span from the lowest to the highest byte of the tensors' storages, widened to whole pages and kept
        inside the mapping, is released at once (a member's tensors lie together in an artifact file; pages of
        neighbouring tensors that fall inside are simply read again when used). The tensors must not have been
        written to since `of` (a written page of a private mapping would revert to the file's bytes).

        Parameters
        ----------
        tensors : iterable of torch.Tensor
            Tensors inside this mapping (others are ignored: nothing is released if the span leaves it).

        Returns
        -------
        int
            Bytes of address space released (0 if nothing was).
        """
        span = _span(tensors)
        if span is None or span[0] < self.start or span[1] > self.end:
            return 0
        start = max(self.start, span[0] - span[0] % _PAGE)
        end = min(self.end, -(-span[1] // _PAGE) * _PAGE)
        if _madvise()(start, end - start, _MADV_DONTNEED) != 0:
            log.debug("madvise on %s failed (errno %d); its pages stay resident", self.path, ctypes.get_errno())
            return 0
        return end - start

