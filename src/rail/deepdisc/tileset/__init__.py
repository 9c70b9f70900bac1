"""The TileSet: the data contract between every step (format, HDF5 files, RAIL handles).

``format`` holds the in-memory `TileSet` and its checks, ``io`` reads, writes, validates and streams TileSet
files (``deepdisc-tiles``), ``handles`` holds the RAIL data handles of TileSets and model artifacts.
"""
