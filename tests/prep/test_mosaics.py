"""Mosaic access: units, coverage, whole-pixel offsets, grid mismatch errors, file discovery, footprints."""

import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from rail.deepdisc.exceptions import PrepError
from rail.deepdisc.prep.mosaics import find_mosaics, flux_scale_to_njy, open_mosaics
from rail.deepdisc.prep.segmentation import find_segmentation, footprint_boxes, open_segmentation
from tests.helpers.jades_files import (
    PIXAR_SR,
    PIXEL_SCALE,
    file_backed,
    make_wcs,
    mosaic_name,
    write_mosaic,
    write_segmentation,
    write_small_segmentation,
)

SHAPE = (20, 30)


@pytest.fixture
def seg(tmp_path):
    with open_segmentation(write_small_segmentation(tmp_path, SHAPE)) as s:
        yield s


def test_flux_scale_uses_pixar_sr_then_pixar_a2_then_wcs():
    wcs = make_wcs(SHAPE)
    expected = PIXAR_SR * 1e15
    assert flux_scale_to_njy(fits.Header({"BUNIT": "MJy/sr", "PIXAR_SR": PIXAR_SR}), wcs) == pytest.approx(
        expected
    )
    assert flux_scale_to_njy(fits.Header({"PIXAR_A2": PIXEL_SCALE**2}), wcs) == pytest.approx(
        expected, rel=1e-9
    )
    assert flux_scale_to_njy(fits.Header({"BUNIT": "MJy/sr"}), wcs) == pytest.approx(expected, rel=1e-6)
    assert flux_scale_to_njy(fits.Header({"BUNIT": "nJy"}), wcs) == 1.0
    assert flux_scale_to_njy(fits.Header({"BUNIT": "uJy"}), wcs) == 1e3


def test_flux_scale_rejects_unknown_units():
    with pytest.raises(PrepError, match="f.fits: BUNIT 'electrons/s' is not supported"):
        flux_scale_to_njy(fits.Header({"BUNIT": "electrons/s"}), make_wcs(SHAPE), source="f.fits")


def test_window_in_njy_and_coverage(tmp_path, seg):
    sci = np.full(SHAPE, 2.0, np.float32)
    sci[0, 0] = np.nan
    err = np.full(SHAPE, 0.1, np.float32)
    err[1, 1] = 0.0
    wht = np.ones(SHAPE, np.float32)
    wht[2, 2] = 0.0
    path = write_mosaic(tmp_path / mosaic_name("F444W"), sci, make_wcs(SHAPE), err=err, wht=wht)
    with open_mosaics({"F444W": path}, seg) as stack:
        images, covered = stack.read(0, 0, 4, 4)
        assert images.dtype == np.float32 and images.shape == (1, 4, 4)
        assert images[0, 3, 3] == pytest.approx(2.0 * PIXAR_SR * 1e15, rel=1e-6)
        assert not covered[0, 0, 0] and not covered[0, 1, 1] and not covered[0, 2, 2]
        assert covered[0].sum() == 13
        assert stack.uncovered_fraction(0, 0, 4, 4) == pytest.approx(3 / 16)
        # a window hanging off the mosaic edge has no coverage there
        _, edge = stack.read(18, 28, 4, 4)
        assert edge[0, :2, :2].all() and not edge[0, 2:].any() and not edge[0, :, 2:].any()


def test_whole_pixel_offsets_between_bands_are_aligned(tmp_path, seg):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=SHAPE).astype(np.float32)
    big = np.pad(ref, ((2, 1), (3, 4)), constant_values=np.nan)
    wcs_big = make_wcs(SHAPE, crpix_shift=(2, 3))  # reference pixel (0, 0) is pixel (2, 3) of this file
    a = write_mosaic(tmp_path / mosaic_name("F150W"), ref, make_wcs(SHAPE))
    b = write_mosaic(tmp_path / mosaic_name("F444W"), big, wcs_big)
    with open_mosaics({"F150W": a, "F444W": b}, seg) as stack:
        images, covered = stack.read(5, 7, 10, 12)
        np.testing.assert_array_equal(images[0], images[1])
        assert covered.all()


@pytest.mark.parametrize(
    "wcs, match",
    [
        (make_wcs(SHAPE, scale=0.06), "pixel scale/orientation"),
        (make_wcs(SHAPE, crpix_shift=(0.0, 0.4)), "not a whole number of pixels"),
    ],
)
def test_band_on_another_grid_is_a_clear_error(tmp_path, seg, wcs, match):
    path = write_mosaic(tmp_path / mosaic_name("F200W"), np.zeros(SHAPE), wcs)
    with pytest.raises(PrepError, match=rf"{mosaic_name('F200W')}: .*{match}.*reproject"):
        open_mosaics({"F200W": path}, seg)


def test_projection_mismatch(tmp_path, seg):
    w = make_wcs(SHAPE)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    path = write_mosaic(tmp_path / mosaic_name("F200W"), np.zeros(SHAPE), w)
    with pytest.raises(PrepError, match="projection"):
        open_mosaics({"F200W": path}, seg)


def test_missing_sci_and_missing_file(tmp_path, seg):
    path = tmp_path / "table.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "D", array=[1.0])])]
    ).writeto(path)
    with pytest.raises(PrepError, match="no SCI image"):
        open_mosaics({"F200W": path}, seg)
    with pytest.raises(PrepError, match="F090W mosaic not found"):
        open_mosaics({"F090W": tmp_path / "nope.fits"}, seg)


def test_find_mosaics_by_jades_names(tmp_path):
    for band in ("F115W", "F444W"):
        write_mosaic(tmp_path / mosaic_name(band), np.zeros(SHAPE), make_wcs(SHAPE))
    write_segmentation(
        tmp_path / "hlsp_jades_jwst_nircam_goods-s-deep_segmentation_v2.0_drz.fits",
        np.zeros(SHAPE, np.int32),
        make_wcs(SHAPE),
    )
    found = find_mosaics(tmp_path, ["F115W", "F444W"])
    assert found["F444W"].name == mosaic_name("F444W") and list(found) == ["F115W", "F444W"]
    assert find_segmentation(tmp_path).name.endswith("segmentation_v2.0_drz.fits")
    with pytest.raises(PrepError, match="no FITS mosaic for band F090W"):
        find_mosaics(tmp_path, ["F090W"])
    write_mosaic(tmp_path / "other_f444w_v1_drz.fits", np.zeros(SHAPE), make_wcs(SHAPE))
    with pytest.raises(PrepError, match="several mosaics match band F444W"):
        find_mosaics(tmp_path, ["F444W"])


def test_windows_and_footprints_stream_without_loading_the_mosaic(tmp_path):
    shape = (1024, 1024)  # 4 MB per float32 image, 8 MB as int64 labels
    labels = np.zeros(shape, np.int32)
    labels[100:110, 200:230] = 5
    labels[900:1000, 10:20] = 6
    with open_segmentation(write_segmentation(tmp_path / "seg.fits", labels, make_wcs(shape))) as seg:
        path = write_mosaic(tmp_path / mosaic_name("F444W"), np.ones(shape), make_wcs(shape))
        with open_mosaics({"F444W": path}, seg) as stack:
            assert file_backed(stack._bands[0]._sci.pixels)  # a view of the file, not an array in memory
            stack.read(0, 0, 8, 8)  # warm-up (lazy imports)
            tracemalloc.start()
            try:
                images, covered = stack.read(500, 500, 250, 277)
                boxes = footprint_boxes(seg, np.array([5, 6]), rows_per_strip=64)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert covered.all() and images.shape == (1, 250, 277)
    np.testing.assert_array_equal(boxes, [[200, 100, 230, 110], [10, 900, 20, 1000]])
    assert peak < 2 * 2**20  # well below one image (4 MB) or the int64 labels (8 MB)


def test_tile_compressed_mosaic(tmp_path, seg):
    sci = np.arange(SHAPE[0] * SHAPE[1], dtype=np.float32).reshape(SHAPE)
    hdr = make_wcs(SHAPE).to_header()
    hdr["BUNIT"], hdr["PIXAR_SR"] = "MJy/sr", PIXAR_SR
    path = tmp_path / mosaic_name("F444W")
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.CompImageHDU(sci, hdr, name="SCI", compression_type="GZIP_2", quantize_level=0),
        ]
    ).writeto(path)
    with open_mosaics({"F444W": path}, seg) as stack:
        images, covered = stack.read(3, 4, 5, 6)
    np.testing.assert_allclose(images[0], sci[3:8, 4:10] * PIXAR_SR * 1e15, rtol=1e-6)
    assert covered.all()
