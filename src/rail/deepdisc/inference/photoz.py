"""The estimator's output for a chunk of objects: combined mixtures, point estimates and flags.

`PhotoZChunk` holds what ``docs/contracts.md`` puts in the photo-z file for each primary object, in file
order: one Gaussian mixture (the ensemble members' components, weighted) and the ancil columns
`ANCIL_COLUMNS`. `PhotoZChunk.to_qp` gives the ``qp.Ensemble`` of ``qp.mixmod`` that RAIL writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.mixture import Mixture, to_qp

__all__ = ["ANCIL_COLUMNS", "PhotoZChunk", "empty_chunk"]

#: Ancil columns of the output, in order (``docs/contracts.md``).
ANCIL_COLUMNS = ("object_id", "zmode", "zmean", "zmedian", "detected", "forced", "recentred", "score")


@dataclass(frozen=True)
class PhotoZChunk:
    """Photo-z of the primary objects of one chunk, in file order.

    ``mixture`` holds (N, sum of member components) arrays; the other (N,) arrays are named as the output's
    ancil columns (`ANCIL_COLUMNS`). ``tiles_unmatched`` counts the chunk's tiles with primary objects of
    which no member matched any (all forced; 0 in ``forced_all`` mode); ``ebv_missing`` counts objects
    without a finite E(B-V), which the network was given as 0.
    """

    mixture: Mixture
    object_id: np.ndarray
    zmode: np.ndarray
    zmean: np.ndarray
    zmedian: np.ndarray
    detected: np.ndarray
    forced: np.ndarray
    recentred: np.ndarray
    score: np.ndarray
    tiles_unmatched: int = 0
    ebv_missing: int = 0

    @property
    def n_objects(self) -> int:
        """Number of objects N."""
        return int(len(self.object_id))

    def ancil(self) -> dict[str, np.ndarray]:
        """Return the ancil columns (flags as int8 0/1)."""
        return {name: getattr(self, name) for name in ANCIL_COLUMNS}

    def to_qp(self):
        """Return the chunk as a ``qp.Ensemble`` of ``qp.mixmod`` with the ancil columns."""
        return to_qp(self.mixture, self.ancil())


def empty_chunk() -> PhotoZChunk:
    """Return a chunk of zero objects (a chunk of tiles without primary objects)."""
    none = np.zeros(0)
    flags = np.zeros(0, dtype=np.int8)
    return PhotoZChunk(mixture=Mixture(np.zeros((0, 1)), np.zeros((0, 1)), np.ones((0, 1))),
                       object_id=np.zeros(0, dtype=np.int64), zmode=none, zmean=none, zmedian=none,
                       detected=flags, forced=flags, recentred=flags, score=none)
