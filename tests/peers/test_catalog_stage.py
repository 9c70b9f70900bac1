"""`TileSetToCatalog`: TileSet file -> photometric table for catalog estimators."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.tools.deepdisc_catalog import TileSetToCatalog


def test_tileset_file_to_table(tileset_file, small_tileset):
    stage = TileSetToCatalog.make_stage(name="to_cat", output_mode="return", chunk_size=4)
    table = stage(str(tileset_file)).data
    np.testing.assert_array_equal(table["object_id"], small_tileset.primary_objects()["object_id"])
    assert "mag_F444W" in table and len(table["magerr_F115W"]) == small_tileset.n_primary


def test_in_memory_tileset_with_band_subset(small_tileset):
    stage = TileSetToCatalog.make_stage(name="to_cat_mem", output_mode="return", bands=["F150W"])
    table = stage(small_tileset).data
    assert "mag_F150W" in table and "mag_F444W" not in table


def test_misspelled_option():
    with pytest.raises(ConfigError, match="did you mean 'measure_missing'"):
        TileSetToCatalog.make_stage(name="to_cat_bad", measure_mising=True)
