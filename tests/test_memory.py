"""`rail.deepdisc.memory`: peak RSS as the benchmarks and the memory tests report it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rail.deepdisc.memory import peak_rss_mb, reset_peak, status_mb

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
CHILD = "from rail.deepdisc.memory import peak_rss_mb; import resource; " \
        "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


ALLOCATE = "from rail.deepdisc.memory import peak_rss_mb, status_mb; import numpy as np; " \
           "before = peak_rss_mb(); block = np.ones(200 * 2**20 // 8); print(before, peak_rss_mb(), status_mb('VmRSS'))"


@linux_only
def test_peak_follows_this_process_allocations():
    """In a fresh process (whose earlier peak is known to be small), 200 MB more raise the peak by as much."""
    out = subprocess.run([sys.executable, "-c", ALLOCATE], capture_output=True, text=True, check=True).stdout.split()
    before, after, rss = (float(x) for x in out)
    assert after >= before + 180
    assert after >= rss >= 200


@linux_only
def test_child_does_not_report_its_parents_memory():
    block = np.ones(400 * 2**20 // 8)  # the parent holds 400 MB more than the child ever will
    parent = status_mb("VmRSS")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    child_peak, child_maxrss = float(out[0]), float(out[1])
    assert child_peak < parent - 300, (child_peak, parent)
    # what the module avoids: ru_maxrss of a child starts at the parent's size (Linux keeps it across exec)
    assert child_maxrss >= child_peak
    del block


@linux_only
def test_reset_starts_a_new_peak():
    block = np.ones(200 * 2**20 // 8)
    rss_with_block = status_mb("VmRSS")
    del block
    assert peak_rss_mb() >= rss_with_block
    assert reset_peak()
    assert peak_rss_mb() < rss_with_block - 100


def test_unknown_key_and_process_are_nan():
    assert np.isnan(status_mb("NoSuchKey"))
    assert np.isnan(status_mb("VmHWM", pid=2**31 - 1))
