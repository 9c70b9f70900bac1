"""Running a trained ensemble on TileSets: one photo-z mixture per catalog object (`DeepDiscEstimator`).

``predictor`` runs the members over chunks of tiles, ``match`` pairs detections with catalog boxes, ``photoz``
holds a chunk's output, ``writer`` and ``spooled`` write chunks in row order from one or many MPI ranks.
"""
