"""A process's memory figures as the benchmarks and memory tests report them (Linux ``/proc``).

The peak is ``VmHWM`` (the high-water mark of the process's own address space), not ``getrusage``'s
``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts at its parent's resident size at the fork (and survives
``exec``), so a small worker started by a big parent would report the parent's peak. Where ``/proc`` is absent
(macOS) the functions fall back to ``ru_maxrss`` (bytes there, kB on Linux).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

__all__ = ["status_mb", "peak_rss_mb", "reset_peak"]


def status_mb(key: str, pid: int | str = "self") -> float:
    """One ``kB`` figure of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``, ``RssFile``, ...), in MB (2**20 B).

    Returns NaN when the process or the key does not exist.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB: ``VmHWM``, else ``ru_maxrss``."""
    peak = status_mb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def reset_peak() -> bool:
    """Start a new peak (``VmHWM`` := ``VmRSS``, Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
