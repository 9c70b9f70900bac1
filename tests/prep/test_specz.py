"""Spec-z compilation: readers and each rule (quality, range, radius, brightest, priority, agreement)."""

import dataclasses

import numpy as np
import pytest
from astropy.table import Table

from rail.deepdisc.exceptions import ConfigError, PrepError
from rail.deepdisc.prep.catalog import PhotCatalog
from rail.deepdisc.prep.specz import CompileSettings, compile_specz, specz_sources
from rail.deepdisc.prep.specz_tables import SPECZ_FORMATS, SpeczFormat, SpeczTable, read_specz
from tests.helpers.jades_files import write_nirspec

RA0, DEC0 = 53.16, -27.78
ARCSEC = 1 / 3600


def phot(offsets_arcsec, mags, star=None):
    """Photometric objects at RA offsets (arcsec, along the equator of the field) with F444W magnitudes."""
    n = len(offsets_arcsec)
    ra = RA0 + np.asarray(offsets_arcsec) * ARCSEC / np.cos(np.radians(DEC0))
    return PhotCatalog(
        object_id=np.arange(n) + 1,
        ra=ra,
        dec=np.full(n, DEC0),
        mag={"F444W": np.asarray(mags, float)},
        magerr={"F444W": np.full(n, 0.1)},
        star=np.zeros(n, bool) if star is None else np.asarray(star),
    )


def table(name, offsets_arcsec, z):
    ra = RA0 + np.asarray(offsets_arcsec, float) * ARCSEC / np.cos(np.radians(DEC0))
    return SpeczTable(name, ra, np.full(len(ra), DEC0), np.asarray(z, float), n_read=len(ra))


def test_jades_dr3_reader_decodes_flags_and_keeps_abc(tmp_path):
    path = write_nirspec(
        tmp_path / "nirspec.fits", [RA0] * 5, [DEC0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0], ["A", "B", "C", "D", "E"]
    )
    t = read_specz(path, "jades-dr3")
    assert t.z.tolist() == [1.0, 2.0, 3.0]
    assert t.removed["quality"] == 2 and t.n_read == 5


def test_jades_flags_are_selectable(tmp_path):
    path = write_nirspec(tmp_path / "nirspec.fits", [RA0] * 3, [DEC0] * 3, [1.0, 2.0, 3.0], ["A", "B", "C"])
    fmt = dataclasses.replace(SPECZ_FORMATS["jades-dr3"], accepted_flags=("a",))
    assert read_specz(path, fmt).z.tolist() == [1.0]


def test_muse_confidence_threshold_and_z_range(tmp_path):
    t = Table(
        {
            "MUSE_ID": [1, 2, 3, 4, 5],
            "RA": [RA0] * 5,
            "DEC": [DEC0] * 5,
            "Z_MUSE": [0.5, 1.5, 2.5, -99.0, 0.0],
            "CONFID": [1, 2, 3, 3, 3],
        }
    )
    path = tmp_path / "muse.fits"
    t.write(path)
    got = read_specz(path, "muse-hudf")
    assert got.z.tolist() == [1.5, 2.5]
    assert got.removed == {"quality": 1, "z_range": 2, "no_position": 0}
    strict = read_specz(path, dataclasses.replace(SPECZ_FORMATS["muse-hudf"], min_quality=3))
    assert strict.z.tolist() == [2.5]


def test_generic_table_with_custom_columns(tmp_path):
    path = tmp_path / "compilation.ecsv"
    Table({"ra_deg": [RA0, np.nan], "dec_deg": [DEC0, DEC0], "zbest": [0.7, 1.1]}).write(path)
    got = read_specz(path, SpeczFormat("mine", "ra_deg", "dec_deg", "zbest"))
    assert got.z.tolist() == [0.7] and got.removed["no_position"] == 1


def test_missing_column_lists_the_columns(tmp_path):
    path = write_nirspec(tmp_path / "nirspec.fits", [RA0], [DEC0], [1.0], ["A"])
    with pytest.raises(PrepError, match=r"no column\(s\) zspec .*columns: NIRSpec_ID"):
        read_specz(path, SpeczFormat("x", "RA_TARG", "Dec_TARG", "zspec"))


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown spec-z format 'vvds'"):
        read_specz(tmp_path / "x.fits", "vvds")
    with pytest.raises(PrepError, match="spec-z catalog not found"):
        read_specz(tmp_path / "x.fits", "jades-dr3")


def test_format_needs_a_consistent_quality_rule():
    with pytest.raises(ConfigError, match="needs accepted_flags or min_quality"):
        SpeczFormat("x", "ra", "dec", "z", quality="q")
    with pytest.raises(ConfigError, match="not both"):
        SpeczFormat("x", "ra", "dec", "z", quality="q", accepted_flags=("A",), min_quality=1)


def test_match_radius():
    p = phot([0.0, 10.0], [25.0, 25.0])
    got = compile_specz([table("a", [0.3, 10.7], [1.0, 2.0])], p)
    assert got.redshift[0] == 1.0 and np.isnan(got.redshift[1])
    assert got.removed["a"]["unmatched"] == 1


def test_brightest_in_band_wins_among_candidates():
    p = phot([0.0, 0.4], [27.0, 24.0])  # the farther object is brighter
    got = compile_specz([table("a", [0.1], [3.0])], p)
    assert np.isnan(got.redshift[0]) and got.redshift[1] == 3.0


def test_several_entries_of_one_catalog_on_one_object_keep_the_nearest():
    p = phot([0.0], [25.0])
    got = compile_specz([table("a", [0.3, 0.05], [1.0, 1.2])], p)
    assert got.redshift[0] == 1.2 and got.removed["a"]["duplicate"] == 1


def test_agreeing_catalogs_keep_the_priority_value():
    p = phot([0.0], [25.0])
    got = compile_specz([table("first", [0.0], [2.00]), table("second", [0.0], [2.25])], p)
    assert got.redshift[0] == 2.00 and got.origin[0] == "first"
    swapped = compile_specz([table("second", [0.0], [2.25]), table("first", [0.0], [2.00])], p)
    assert swapped.redshift[0] == 2.25 and swapped.origin[0] == "second"


def test_disagreeing_catalogs_are_rejected():
    p = phot([0.0, 5.0], [25.0, 25.0])
    # object 1: |dz|/(1+z) = 0.35/3 > 0.1 ; object 2: 0.25/3 < 0.1
    got = compile_specz([table("a", [0.0, 5.0], [2.0, 2.0]), table("b", [0.0, 5.0], [2.35, 2.25])], p)
    assert np.isnan(got.redshift[0]) and got.redshift[1] == 2.0
    assert got.removed["combined"]["disagreement"] == 1
    loose = compile_specz(
        [table("a", [0.0], [2.0]), table("b", [0.0], [2.35])],
        phot([0.0], [25.0]),
        settings=CompileSettings(max_dz=0.2),
    )
    assert loose.redshift[0] == 2.0


def test_stars_lose_their_labels():
    p = phot([0.0, 5.0], [25.0, 25.0], star=[True, False])
    got = compile_specz([table("a", [0.0, 5.0], [0.001, 1.0])], p)
    assert np.isnan(got.redshift[0]) and got.redshift[1] == 1.0
    assert got.removed["combined"]["star"] == 1 and got.n_labelled == 1


def test_summary_is_logged(caplog):
    with caplog.at_level("INFO", logger="rail.deepdisc.prep.specz"):
        compile_specz([table("a", [0.0, 20.0], [1.0, 2.0])], phot([0.0], [25.0]))
    assert "unmatched -1" in caplog.text and "1 labelled" in caplog.text


def test_names_must_be_unique_and_band_known():
    p = phot([0.0], [25.0])
    with pytest.raises(ConfigError, match="unique"):
        compile_specz([table("a", [0.0], [1.0]), table("a", [0.0], [1.0])], p)
    with pytest.raises(ConfigError, match="match_band 'F115W'"):
        compile_specz([table("a", [0.0], [1.0])], p, settings=CompileSettings(match_band="F115W"))


def test_specz_sources_parses_formats_and_priorities():
    got = specz_sources(
        ["n.fits", "muse-hudf:m.fits", "jades-dr3:n2.fits", "generic:g.csv"],
        jades_flags=["A"],
        muse_min_confidence=3,
        generic_columns=["ra", "dec", "z"],
    )
    assert [f.name for _, f in got] == ["jades-dr3", "muse-hudf", "jades-dr3#2", "generic"]
    assert got[0][1].accepted_flags == ("A",) and got[1][1].min_quality == 3
    assert str(got[3][0]) == "g.csv" and got[3][1].z == "z"
    with pytest.raises(ConfigError, match="3 or 4 column names"):
        specz_sources(["generic:g.csv"])


def test_source_options_set_the_formats_the_stage_and_command_read():
    from rail.deepdisc.prep.specz import SpeczSourceOptions

    opts = SpeczSourceOptions(jades_flags="A,B", muse_min_confidence=3, specz_columns=["ra,dec", "z"])
    (p1, jades), (p2, muse), (p3, generic) = opts.sources(["n.fits", "muse-hudf:m.fits", "generic:g.ecsv"])
    assert (str(p1), str(p2), str(p3)) == ("n.fits", "m.fits", "g.ecsv")
    assert jades.accepted_flags == ("A", "B") and muse.min_quality == 3
    assert (generic.ra, generic.dec, generic.z, generic.quality) == ("ra", "dec", "z", None)
    with pytest.raises(ConfigError, match="quality column 'q' needs a minimum quality"):
        SpeczSourceOptions(specz_columns="ra,dec,z,q").sources(["generic:g.ecsv"])
    with pytest.raises(ConfigError, match="muse_min_confidence must be in"):
        SpeczSourceOptions(muse_min_confidence=0)
