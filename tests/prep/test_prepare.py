"""JADES-layout FITS files to train/val/test/full TileSets: coverage, splits, primaries, recentred tiles."""

import json
import warnings

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.dust import sfd_ebv
from rail.deepdisc.exceptions import ConfigError, DustMapError, PrepError, PrepWarning
from rail.deepdisc.prep.prepare import OUTPUTS, PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import CompileSettings
from rail.deepdisc.tileset.io import read_tileset
from rail.deepdisc.tileset.validation import validate_tileset
from tests.helpers.jades_files import TO_NJY, make_field, make_wcs, mosaic_name, write_mosaic, write_sfd_map

BANDS = ("F115W", "F277W", "F444W")
TILE_ARCSEC = (1.2, 0.9)  # 40 x 30 px at 0.03 arcsec/pix
NAN_BOX = (0, 30, 0, 40)  # no F115W coverage: the first labelled tile
ERR_PATCH = (60, 62, 100, 102)  # ERR == 0 in F444W


def settings(**kw):
    base = dict(
        bands=BANDS,
        tile_size_arcsec=TILE_ARCSEC,
        overlap_px=6,
        seed=5,
        progress_bar=False,
        specz=CompileSettings(match_radius_arcsec=0.05, match_band="F444W"),
    )
    base.update(kw)
    return PrepSettings(**base)


def run_prep(field, outdir, **kw):
    inputs = PrepInputs.from_directory(
        field.directory, bands=BANDS, catalog=field.catalog, specz=[(field.specz, "jades-dr3")]
    )
    with pytest.warns(PrepWarning, match="lie in no tile with full coverage"):
        return prepare_tilesets(inputs, outdir, settings=settings(**kw))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    field = make_field(root / "jades", bands=BANDS)
    sfd = write_sfd_map(root / "dust" / "sfd")
    summary = run_prep(field, root / "out", dust_map_dir=str(sfd))
    sets = {name: read_tileset(root / "out" / f"{name}.h5") for name in OUTPUTS}
    return field, summary, sets, root


def overlaps(tiles, k, box, h=30, w=40):
    y0, x0 = tiles["y0"][k], tiles["x0"][k]
    return y0 < box[1] and box[0] < y0 + h and x0 < box[3] and box[2] < x0 + w


def test_every_output_validates_and_is_summarised(prepared):
    field, summary, sets, root = prepared
    for name in OUTPUTS:
        assert validate_tileset(root / "out" / f"{name}.h5").n_tiles == summary["files"][name]["tiles"]
        assert sets[name].bands == BANDS and sets[name].tile_shape == (30, 40)
        assert sets[name].pixel_scale == pytest.approx(0.03)
    on_disk = json.loads((root / "out" / "prep_summary.json").read_text())
    assert on_disk["files"]["full"]["primary_objects"] == sets["full"].n_primary
    assert on_disk["objects"]["catalog"] == len(field.ids)


def test_tiles_without_coverage_are_dropped(prepared):
    _, summary, sets, _ = prepared
    for name, ts in sets.items():
        assert np.isfinite(ts.images).all()
        for k in range(ts.n_tiles):
            assert not overlaps(ts.tiles, k, NAN_BOX), name
            assert not overlaps(ts.tiles, k, ERR_PATCH), name
    assert summary["labelled_tiling"]["tiles_without_coverage"] == 2  # the NaN box and the ERR patch tiles


def test_pixels_are_nanojansky_from_the_offset_band_too(prepared):
    field, _, sets, root = prepared
    from astropy.io import fits

    ts = sets["full"]
    k = int(np.flatnonzero(ts.tiles["kind"] == "grid")[0])
    y0, x0 = int(ts.tiles["y0"][k]), int(ts.tiles["x0"][k])
    with fits.open(field.mosaics["F277W"]) as hdul:  # padded by (2, 3) px around the reference grid
        expected = hdul["SCI"].data[y0 + 2 : y0 + 32, x0 + 3 : x0 + 43] * TO_NJY
    np.testing.assert_allclose(ts.images[k, 1], expected, rtol=1e-6)


def test_split_is_by_tile_disjoint_and_labelled(prepared):
    _, summary, sets, _ = prepared
    ids = {name: set(sets[name].tiles["tile_id"].tolist()) for name in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(map(len, ids.values())) == summary["labelled_tiling"]["tiles_with_spec_z"]
    for name in ("train", "val", "test"):
        ts = sets[name]
        assert len(ts.tiles["tile_id"]) >= 1
        for k in range(ts.n_tiles):
            rows = ts.tile_objects(k)
            assert np.any(rows["primary"] & np.isfinite(rows["redshift"]))


def test_split_is_deterministic(prepared, tmp_path):
    field, _, sets, _ = prepared
    run_prep(field, tmp_path, ebv=0.0)
    for name in ("train", "val", "test"):
        again = read_tileset(tmp_path / f"{name}.h5")
        np.testing.assert_array_equal(again.tiles["tile_id"], sets[name].tiles["tile_id"])
        np.testing.assert_array_equal(again.images, sets[name].images)


def test_labels_and_dust_reach_the_objects(prepared):
    field, _, sets, root = prepared
    truth = dict(zip(field.ids.tolist(), field.z.tolist()))
    star_id = int(field.ids[5])
    for ts in sets.values():
        prim = ts.primary_objects()
        for oid, z in zip(prim["object_id"], prim["redshift"]):
            if oid == star_id:
                assert np.isnan(z)
            elif np.isfinite(z):
                assert z == pytest.approx(truth[int(oid)])
        np.testing.assert_allclose(
            ts.objects["ebv"], sfd_ebv(ts.objects["ra"], ts.objects["dec"], map_dir=root / "dust" / "sfd")
        )
    full = sets["full"].primary_objects()
    assert np.count_nonzero(np.isfinite(full["redshift"])) >= 10
    assert np.all(np.isfinite(full["mag_F444W"]))


def test_every_covered_object_is_primary_exactly_once(prepared):
    field, summary, sets, _ = prepared
    full = sets["full"]
    prim = full.primary_objects()
    assert len(np.unique(prim["object_id"])) == len(prim["object_id"])
    n_missing = summary["full_tiling"]["objects_without_coverage"]
    assert len(prim["object_id"]) + n_missing == len(field.ids)
    grid = np.flatnonzero(full.tiles["kind"] == "grid")
    pos = dict(zip(field.ids.tolist(), zip(field.x, field.y)))
    for oid in set(field.ids.tolist()) - set(prim["object_id"].tolist()):
        x, y = pos[oid]
        inside = [
            (full.tiles["x0"][k] - 0.5 <= x < full.tiles["x0"][k] + 39.5)
            and (full.tiles["y0"][k] - 0.5 <= y < full.tiles["y0"][k] + 29.5)
            for k in grid
        ]
        assert not any(inside)  # left out only when no kept tile holds it


def test_primary_tile_is_the_most_central_grid_tile(prepared):
    field, _, sets, _ = prepared
    full = sets["full"]
    pos = dict(zip(field.ids.tolist(), zip(field.x, field.y)))
    grid = np.flatnonzero(full.tiles["kind"] == "grid")

    def centrality(k, x, y):
        x0, y0 = full.tiles["x0"][k], full.tiles["y0"][k]
        return min(x - x0 + 0.5, x0 + 39.5 - x, y - y0 + 0.5, y0 + 29.5 - y)

    for row in np.flatnonzero(full.objects["primary"]):
        k = full.objects["tile"][row]
        if full.tiles["kind"][k] != "grid":
            continue
        x, y = pos[int(full.objects["object_id"][row])]
        best = max(centrality(j, x, y) for j in grid)
        assert centrality(k, x, y) == pytest.approx(best)
        assert full.objects["x"][row] == pytest.approx(x - full.tiles["x0"][k])


def test_segmaps_only_hold_listed_objects(prepared):
    _, _, sets, _ = prepared
    for ts in sets.values():
        for k in range(ts.n_tiles):
            labels = set(np.unique(ts.segmaps[k]).tolist()) - {0}
            assert labels <= set(ts.tile_objects(k)["object_id"].tolist())


def test_recentred_tiles_hold_the_whole_object(prepared, tmp_path):
    field, _, _, _ = prepared
    summary = run_prep(field, tmp_path, overlap_px=0, ebv=0.01)
    assert summary["full_tiling"]["recentred_tiles"] >= 1
    full = read_tileset(tmp_path / "full.h5")
    rec = np.flatnonzero(full.tiles["kind"] == "recentred")
    assert len(rec) == summary["full_tiling"]["recentred_tiles"]
    big = int(field.ids[0])  # straddles the x = 40 tile edge
    for k in rec:
        rows = full.tile_objects(int(k))
        owner = int(rows["object_id"][rows["primary"]][0]) if rows["primary"].any() else None
        assert owner is not None
        assert np.count_nonzero(full.segmaps[k] == owner) == np.count_nonzero(field.seg == owner)
        sel = rows["object_id"] == owner
        assert rows["bbox_x0"][sel][0] > 0 and rows["bbox_x1"][sel][0] < 40
    owners = {
        int(full.objects["object_id"][r])
        for r in np.flatnonzero(full.objects["primary"])
        if full.tiles["kind"][full.objects["tile"][r]] == "recentred"
    }
    assert big in owners


def test_without_recentred_there_are_only_grid_tiles(prepared, tmp_path):
    field, _, _, _ = prepared
    summary = run_prep(field, tmp_path, overlap_px=0, ebv=0.01, recentred=False)
    assert "recentred_tiles" not in summary["full_tiling"]
    assert set(read_tileset(tmp_path / "full.h5").tiles["kind"].tolist()) == {"grid"}


def test_missing_dust_map_is_a_clear_error(prepared, tmp_path):
    field, _, _, _ = prepared
    inputs = PrepInputs.from_directory(field.directory, bands=BANDS, catalog=field.catalog, specz=[])
    with pytest.raises(DustMapError, match="dustmaps.sfd.fetch"):
        prepare_tilesets(inputs, tmp_path / "out", settings=settings(dust_map_dir=str(tmp_path / "none")))
    assert not (tmp_path / "out" / "full.h5").exists()


def test_band_on_another_grid_is_refused(prepared, tmp_path):
    field, _, _, _ = prepared
    bad = write_mosaic(tmp_path / mosaic_name("F444W"), np.zeros((48, 80)), make_wcs((48, 80), scale=0.06))
    inputs = PrepInputs(
        mosaics={**field.mosaics, "F444W": bad}, segmentation=field.segmentation, catalog=field.catalog
    )
    with pytest.raises(PrepError, match=rf"{mosaic_name('F444W')}: pixel scale.*reproject"):
        prepare_tilesets(inputs, tmp_path / "out", settings=settings(ebv=0.0))


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="max_uncovered_fraction"):
        settings(max_uncovered_fraction=1.5)
    with pytest.raises(ConfigError, match="match_band 'F200W' is not one of the bands"):
        settings(specz=CompileSettings(match_band="F200W"))
    with pytest.raises(ConfigError, match="unknown NIRCam band"):
        settings(bands=("F999W",))


def test_partial_coverage_allowed_is_zero_filled(prepared, tmp_path):
    field, _, _, _ = prepared
    inputs = PrepInputs.from_directory(field.directory, bands=BANDS, catalog=field.catalog, specz=[])
    with pytest.warns(PrepWarning, match="full-catalog grid"), pytest.warns(PrepWarning, match="only 0 tile"):
        summary = prepare_tilesets(inputs, tmp_path, settings=settings(ebv=0.0, max_uncovered_fraction=0.5))
    assert summary["files"]["train"]["tiles"] == 0 and summary["files"]["test"]["tiles"] == 0
    assert summary["full_tiling"]["tiles_without_coverage"] == 1  # tile (0, 0) lies wholly in the NaN box
    full = read_tileset(tmp_path / "full.h5")
    assert np.isfinite(full.images).all()
    k = int(np.flatnonzero((full.tiles["x0"] == 34) & (full.tiles["y0"] == 0))[0])
    assert (full.images[k, 0, :, :6] == 0).all()  # columns 34..39 of the F115W NaN box, zero-filled
    assert (full.images[k, 0, :, 6:] != 0).all()


def test_cli_prep(prepared, tmp_path, capsys):
    field, _, _, root = prepared
    argv = [
        "prep",
        "--mosaics",
        str(field.directory),
        "--catalog",
        str(field.catalog),
        "--specz",
        f"jades-dr3:{field.specz}",
        "-o",
        str(tmp_path / "cli"),
        "--preset",
        ",".join(BANDS),
        "--overlap",
        "6",
        "--tile-size",
        "1.2",
        "0.9",
        "--match-radius",
        "0.05",
        "--dust-map-dir",
        str(root / "dust" / "sfd"),
        "--no-progress",
        "--seed",
        "5",
    ]
    with pytest.warns(PrepWarning):
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prep_summary.json" in out and out.count("TileSet") == 4
    for name in OUTPUTS:
        np.testing.assert_array_equal(
            read_tileset(tmp_path / "cli" / f"{name}.h5").tiles["tile_id"],
            read_tileset(root / "out" / f"{name}.h5").tiles["tile_id"],
        )


def test_cli_bad_input_exits_2(prepared, tmp_path, capsys):
    field, _, _, _ = prepared
    argv = [
        "prep",
        "--mosaics",
        str(tmp_path),
        "--catalog",
        str(field.catalog),
        "-o",
        str(tmp_path / "o"),
        "--preset",
        ",".join(BANDS),
        "--ebv",
        "0",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepdisc prep: error:") and "segmentation" in err and "\n" not in err


def test_rail_stage_writes_four_tilesets(prepared, tmp_path):
    from rail.tools.deepdisc_prep import DeepDiscPrep

    field, _, _, root = prepared
    outputs = {name: str(tmp_path / f"stage_{name}.h5") for name in OUTPUTS}
    stage = DeepDiscPrep.make_stage(
        name="prep_test",
        mosaic_dir=str(field.directory),
        catalog=str(field.catalog),
        specz=[f"jades-dr3:{field.specz}"],
        bands=",".join(BANDS),
        tile_size_arcsec=list(TILE_ARCSEC),
        overlap_px=6,
        seed=5,
        match_radius_arcsec=0.05,
        dust_map_dir=str(root / "dust" / "sfd"),
        progress_bar=False,
        **outputs,
    )
    with pytest.warns(PrepWarning):
        stage.run()
    stage.finalize()
    for name in OUTPUTS:
        got = read_tileset(outputs[name])
        np.testing.assert_array_equal(
            got.tiles["tile_id"], read_tileset(root / "out" / f"{name}.h5").tiles["tile_id"]
        )
        assert stage.get_handle(name).path == outputs[name]


def test_rail_stage_options_are_strict():
    from rail.tools.deepdisc_prep import DeepDiscPrep

    with pytest.raises(ConfigError, match="did you mean 'overlap_px'"):
        DeepDiscPrep.make_stage(name="prep_bad", mosaic_dir="m", catalog="c", overlap=3)


def test_simulated_mosaics_through_prep(tmp_path):
    """simulate -> prep -> TileSet -> validator, on the simulator's JADES-layout files."""
    sim = pytest.importorskip("rail.deepdisc.simulation")
    from astropy.table import Table

    tile_px = 96
    sim_settings = sim.SimulationSettings(n_tiles=9, tile_size=tile_px, bands=BANDS, seed=11)
    files = sim.simulate_mosaics(sim_settings, tmp_path / "sim")
    inputs = PrepInputs(
        mosaics={b: files["mosaics"][b] for b in BANDS},
        segmentation=files["segmentation"],
        catalog=files["catalog"],
        specz=((files["specz"], "jades-dr3"),),
    )
    side = tile_px * sim_settings.pixel_scale
    with warnings.catch_warnings():  # objects on uncovered field edges may be left out (a PrepWarning)
        warnings.simplefilter("ignore", PrepWarning)
        summary = prepare_tilesets(
            inputs,
            tmp_path / "out",
            settings=settings(
                tile_size_arcsec=(side, side), ebv=0.01, specz=CompileSettings(match_band="F444W")
            ),
        )
    for name in OUTPUTS:
        assert validate_tileset(tmp_path / "out" / f"{name}.h5").n_tiles == summary["files"][name]["tiles"]
    full = read_tileset(tmp_path / "out" / "full.h5")
    prim = full.primary_objects()
    n_placed = summary["objects"]["catalog"] - summary["objects"]["outside_mosaic"]
    assert full.n_primary == n_placed - summary["full_tiling"]["objects_without_coverage"] > 0
    assert np.isfinite(full.images).all() and np.isfinite(prim["mag_F444W"]).mean() > 0.9
    spec = Table.read(files["specz"], hdu=1)
    z_spec = set(np.round(np.asarray(spec["z_Spec"], float), 6).tolist())
    labelled = prim["redshift"][np.isfinite(prim["redshift"])]
    assert len(labelled) > 0 and set(np.round(labelled, 6).tolist()) <= z_spec


def test_stage_is_found_by_rail():
    import rail.stages

    from rail.tools.deepdisc_prep import DeepDiscPrep

    rail.stages.import_and_attach_all(silent=True)
    assert rail.stages.DeepDiscPrep is DeepDiscPrep


def test_input_and_output_errors(prepared, tmp_path):
    field, _, _, _ = prepared
    inputs = PrepInputs(
        mosaics={"F115W": field.mosaics["F115W"]}, segmentation=field.segmentation, catalog=field.catalog
    )
    with pytest.raises(PrepError, match="no mosaic given for band\\(s\\) F277W F444W"):
        prepare_tilesets(inputs, tmp_path, settings=settings(ebv=0.0))
    full_inputs = PrepInputs(mosaics=field.mosaics, segmentation=field.segmentation, catalog=field.catalog)
    with pytest.raises(ConfigError, match="unknown output\\(s\\) \\['ful'\\]"):
        prepare_tilesets(full_inputs, tmp_path, settings=settings(ebv=0.0), paths={"ful": tmp_path / "x.h5"})


def test_mosaic_smaller_than_one_tile_is_a_clear_error(prepared, tmp_path):
    field = prepared[0]
    inputs = PrepInputs.from_directory(field.directory, bands=BANDS, catalog=field.catalog,
                                       specz=[(field.specz, "jades-dr3")])
    with pytest.raises(PrepError, match="segmentation.*smaller than one tile"):
        prepare_tilesets(inputs, tmp_path / "out", settings=settings(tile_size_arcsec=(60.0, 60.0), ebv=0.0))


def test_catalog_fluxes_reach_the_objects(prepared):
    """deepdisc-tiles v2: the catalog's KRON fluxes and errors (nJy) ride along with the magnitudes."""
    from astropy.io import fits

    field = prepared[0]
    with fits.open(field.catalog) as hdul:
        kron = hdul["KRON"].data
        flux = {b: dict(zip(kron["ID"].tolist(), kron[f"{b}_KRON"].tolist())) for b in BANDS}
        err = {b: dict(zip(kron["ID"].tolist(), kron[f"{b}_KRON_e"].tolist())) for b in BANDS}
    for ts in prepared[2].values():
        prim = ts.primary_objects()
        for band in BANDS:
            expected = [flux[band][int(i)] for i in prim["object_id"]]
            np.testing.assert_allclose(prim[f"flux_{band}"], expected)
            np.testing.assert_allclose(prim[f"fluxerr_{band}"], [err[band][int(i)] for i in prim["object_id"]])
            np.testing.assert_allclose(prim[f"mag_{band}"], 31.4 - 2.5 * np.log10(expected))
