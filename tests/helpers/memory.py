"""This process's memory, read from /proc (Linux)."""

from rail.deepdisc.memory import status_mb


def rss_file_mb() -> float:
    """This process's resident pages of mapped files (``RssFile``), MB."""
    value = status_mb("RssFile")
    if value != value:
        raise AssertionError("no RssFile in /proc/self/status")
    return value
