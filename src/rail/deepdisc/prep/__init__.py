"""From real FITS mosaics, a segmentation image and catalogs to TileSets (``deepdisc prep``, `DeepDiscPrep`).

``catalog`` and ``specz`` read the photometric and spec-z catalogs, ``mosaics``, ``segmentation`` and
``windows`` read the images without loading them, ``tiling`` holds the tile geometry (grids, primary
assignment, re-centred cutouts, splits), ``plan`` streams planned tiles into files, ``prepare`` runs it all.
"""
