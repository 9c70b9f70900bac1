"""Route the prints of eazy-py and BPZ into :mod:`logging`.

eazy-py and ``desc_bpz`` report progress with ``print`` (and eazy shows tqdm bars); library code of this
package never prints, so their output is captured and forwarded, line by line, to this module's logger at
DEBUG level.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

__all__ = ["captured_output"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def captured_output(level: int = logging.DEBUG) -> Iterator[None]:
    """Capture ``stdout`` and ``stderr`` inside the block and log them once it ends.

    Parameters
    ----------
    level : int
        Logging level of the forwarded lines.
    """
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logger.log(level, "%s", line.rstrip())
