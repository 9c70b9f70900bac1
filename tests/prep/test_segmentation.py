"""Segmentation image: integer labels, windows, scaled (uint32) labels, footprint boxes, file discovery."""

import numpy as np
import pytest
from astropy.io import fits

from rail.deepdisc.exceptions import PrepError
from rail.deepdisc.prep.segmentation import find_segmentation, footprint_boxes, open_segmentation
from tests.helpers.jades_files import PIXEL_SCALE, file_backed, make_wcs, write_small_segmentation

SHAPE = (20, 30)


@pytest.fixture
def seg(tmp_path):
    with open_segmentation(write_small_segmentation(tmp_path, SHAPE)) as s:
        yield s


def test_segmentation_must_hold_integers(tmp_path):
    path = tmp_path / "seg.fits"
    fits.PrimaryHDU(np.zeros(SHAPE, np.float32), make_wcs(SHAPE).to_header()).writeto(path)
    with pytest.raises(PrepError, match="floating-point pixels"):
        open_segmentation(path)


def test_footprint_boxes_across_strips(seg):
    boxes = footprint_boxes(seg, np.array([123456, 7, 42]), rows_per_strip=3)
    np.testing.assert_array_equal(boxes[0], [20, 10, 22, 19])
    np.testing.assert_array_equal(boxes[1], [3, 2, 9, 5])
    assert np.isnan(boxes[2]).all()


def test_segmentation_reads_windows_with_zero_outside(seg):
    window = seg.read(-2, -3, 6, 8)
    assert window.shape == (6, 8) and window[:2].sum() == 0 and window[4, 6] == 7
    assert seg.pixel_scale_arcsec() == pytest.approx(PIXEL_SCALE)


def test_find_segmentation_needs_exactly_one(tmp_path):
    with pytest.raises(PrepError, match="found none; pass it with --segmentation"):
        find_segmentation(tmp_path)


def test_scaled_integer_segmentation_is_read_through_sections(tmp_path):
    labels = np.zeros(SHAPE, np.uint32)  # stored as int32 with BZERO = 2**31
    labels[3:6, 4:8] = 3_000_000_000
    path = tmp_path / "seg.fits"
    fits.PrimaryHDU(labels, make_wcs(SHAPE).to_header()).writeto(path)
    assert fits.getheader(path)["BZERO"] == 2**31
    with open_segmentation(path) as seg:
        assert not file_backed(seg._image.pixels)
        window = seg.read(2, 3, 5, 6)
    assert window.dtype == np.int64 and window[1, 1] == 3_000_000_000 and window.sum() == 12 * 3_000_000_000
