"""What a trained network's features know about redshift (``deepdisc features``; Merz et al. 2025, appendix).

Per-object pooled features, their embedding, and a lower bound on the mutual information with redshift:
``features`` extracts the redshift head's inputs for catalog or matched boxes, ``information`` bounds
I(features; z) with normalising flows, ``report`` reduces, plots and writes a folder.
"""

__all__: list[str] = []
