"""Numbers shared by several steps of the pipeline, declared once.

Every option whose default is one of these (the stages' ``Param``, the command line, the settings dataclasses)
takes it from here.
"""

from __future__ import annotations

__all__ = ["N_COMPONENTS", "IOU_THRESHOLD", "ZMIN", "ZMAX", "NZBINS", "redshift_grid"]

#: Gaussian components of each object's redshift mixture (Merz et al. 2025 use 5).
N_COMPONENTS = 5
#: Minimum intersection-over-union for a detection to match a catalog box (the paper's 0.3).
IOU_THRESHOLD = 0.3
#: Redshift range and number of points of the photo-z grid (``linspace(ZMIN, ZMAX, NZBINS)``, steps of 0.01):
#: the estimator's ``zmode`` grid, the peers' output grid and the evaluation's grid.
ZMIN = 0.0
ZMAX = 12.0
NZBINS = 1201


def redshift_grid(zmin: float = ZMIN, zmax: float = ZMAX, nzbins: int = NZBINS):
    """Return the photo-z grid ``numpy.linspace(zmin, zmax, nzbins)``."""
    import numpy as np

    return np.linspace(zmin, zmax, nzbins)
