"""ceci options shared by the peers' RAIL stages (EAZY and BPZ), so that both read and write alike.

Both estimators resample their PDFs onto the same default grid as `DeepDiscEstimator` (``linspace(0, 12,
1201)``), which keeps the three outputs directly comparable, and read flat catalog tables such as those of
`rail.tools.deepdisc_catalog.TileSetToCatalog`.
"""

from __future__ import annotations

from ceci.config import StageParameter as Param

__all__ = ["TABLE_OPTIONS", "PDF_GRID_OPTIONS"]

#: Layout of the input catalog.
TABLE_OPTIONS = dict(
    hdf5_groupname=Param(str, "", msg="HDF5 group of the input table ('' = top level)"),
)

#: Redshift grid of the output PDFs (``linspace(zmin, zmax, nzbins)``).
PDF_GRID_OPTIONS = dict(
    zmin=Param(float, 0.0, msg="lowest redshift of the output PDF grid"),
    zmax=Param(float, 12.0, msg="highest redshift of the output PDF grid"),
    nzbins=Param(int, 1201, msg="points of the output PDF grid"),
)
