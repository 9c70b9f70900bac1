"""ceci options shared by the peers' RAIL stages (EAZY, BPZ and the catalog machine-learning peers).

All of them read flat catalog tables such as those of `rail.tools.deepdisc_catalog.TileSetToCatalog`,
deredden with the same column, and the template fitters resample their PDFs onto the default grid of
`DeepDiscEstimator` (``linspace(0, 12, 1201)``), which keeps the outputs directly comparable. Each peer
declares its own template set (EAZY: eazy-py's FSPS set; BPZ: pz-rail-bpz's COSMOS SEDs).
"""

from __future__ import annotations

from ceci.config import StageParameter as Param

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN

__all__ = ["TABLE_OPTIONS", "PHOTOMETRY_OPTIONS", "DEREDDEN_OPTIONS", "PDF_GRID_OPTIONS"]

#: Layout of the input catalog.
TABLE_OPTIONS = dict(
    hdf5_groupname=Param(str, "", msg="HDF5 group of the input table ('' = top level)"),
)

#: Which photometry is fitted.
PHOTOMETRY_OPTIONS = dict(
    use_fluxes=Param(
        bool,
        True,
        msg="fit the flux_<BAND>/fluxerr_<BAND> columns (nJy) when the table has them (a non-detection is a "
        "measured flux near zero); False, or a table without them, uses mag_<BAND>/magerr_<BAND>",
    ),
)

#: Milky-Way extinction removed from the photometry before fitting.
DEREDDEN_OPTIONS = dict(
    ebv_col=Param(str, "ebv", msg="column of Milky-Way E(B-V) used to deredden ('' = none)"),
    deredden=Param(bool, True, msg="remove Milky-Way extinction (G23, R_V=3.1, band-averaged) before fitting"),
)

#: Redshift grid of the output PDFs (``linspace(zmin, zmax, nzbins)``).
PDF_GRID_OPTIONS = dict(
    zmin=Param(float, ZMIN, msg="lowest redshift of the output PDF grid"),
    zmax=Param(float, ZMAX, msg="highest redshift of the output PDF grid"),
    nzbins=Param(int, NZBINS, msg="points of the output PDF grid"),
)
