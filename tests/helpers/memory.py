"""This process's memory, read from /proc (Linux)."""

from pathlib import Path


def rss_file_mb() -> float:
    """This process's resident pages of mapped files (``RssFile``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")
