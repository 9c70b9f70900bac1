"""Fixtures shared by every test package (the data they build lives in `tests.helpers`)."""

from tests.helpers.tilesets import small_tileset, tileset_file  # noqa: F401  (pytest fixtures)
