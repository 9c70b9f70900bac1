"""ceci options shared by the peers' RAIL stages (EAZY and BPZ), so that both read and write alike.

Both peers fit the same template set by default (CWWSB4, not the simulator's COSMOS set), deredden with the
same column, read flat catalog tables such as those of `rail.tools.deepdisc_catalog.TileSetToCatalog`, and
resample their PDFs onto the default grid of `DeepDiscEstimator` (``linspace(0, 12, 1201)``), which keeps the
three outputs directly comparable.
"""

from __future__ import annotations

from ceci.config import StageParameter as Param

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.peers.templates import DEFAULT_TEMPLATES

__all__ = ["TABLE_OPTIONS", "TEMPLATE_OPTIONS", "DEREDDEN_OPTIONS", "PDF_GRID_OPTIONS"]

#: Layout of the input catalog.
TABLE_OPTIONS = dict(
    hdf5_groupname=Param(str, "", msg="HDF5 group of the input table ('' = top level)"),
)

#: Template set fitted (`rail.deepdisc.peers.templates.load_template_set`).
TEMPLATE_OPTIONS = dict(
    templates=Param(str, DEFAULT_TEMPLATES, msg="template set: a BPZ .list, an EAZY templates .param, a folder "
                    "of .sed/.dat SEDs, or a list name in pz-rail-base's SED folder (default CWWSB4: not the "
                    "simulator's COSMOS set)"),
)

#: Milky-Way extinction removed from the magnitudes before fitting.
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
