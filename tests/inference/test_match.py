"""IoU and one-to-one matching of detections to catalog boxes (hand-made boxes, hand-computed answers)."""

import numpy as np
import pytest

from rail.deepdisc.inference.match import box_iou, match_boxes


def strip(x0, x1):
    """A box of height 1 spanning [x0, x1): its IoU with another strip is the 1-D interval IoU."""
    return [x0, 0.0, x1, 1.0]


def test_box_iou_known_values():
    a = [[0, 0, 2, 2]]
    b = [[1, 0, 3, 2], [0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 1, 1]]
    # overlap 2 of union 6; identical; touching corner only; contained quarter
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0, 0.0, 0.25]])


def test_box_iou_zero_area_and_empty():
    assert box_iou([[1, 1, 1, 5]], [[0, 0, 4, 4]])[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_box_iou_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"boxes_a must have shape \(n, 4\)"):
        box_iou([[0, 0, 1]], [[0, 0, 1, 1]])


@pytest.mark.parametrize("threshold, matched", [(0.5, True), (0.5 + 1e-9, False)])
def test_threshold_is_inclusive(threshold, matched):
    # detection [0, 4) against catalog [0, 8): IoU exactly 0.5
    m = match_boxes([strip(0, 8)], [strip(0, 4)], iou_threshold=threshold)
    assert m.matched.tolist() == [matched]
    if matched:
        assert m.iou[0] == pytest.approx(0.5)
    else:
        assert np.isnan(m.iou[0])


def test_many_detections_on_one_object_match_once():
    cat = [strip(0, 10), strip(40, 50)]
    dets = [strip(1, 10), strip(0, 10), strip(2, 12)]  # IoU 0.9, 1.0, 0.667 with the first object
    m = match_boxes(cat, dets)
    assert m.detection.tolist() == [1, -1]
    assert m.iou[0] == pytest.approx(1.0)


def test_one_detection_claims_one_of_two_objects():
    cat = [strip(0, 10), strip(2, 12)]  # a detection overlapping both
    m = match_boxes(cat, [strip(1, 11)])
    assert m.matched.sum() == 1
    assert m.detection.tolist() == [0, -1]  # IoU 9/11 each: the tie goes to the first row deterministically


def test_assignment_is_optimal_not_greedy():
    # d0 overlaps A best (IoU 8/12); d1 overlaps only A (7/12). Greedy by IoU gives d0->A and leaves d1 and B
    # unmatched (total 0.667); the optimal assignment d0->B (6/14), d1->A (7/12) totals 1.012.
    cat = [strip(0, 10), strip(6, 16)]
    dets = [strip(2, 12), strip(-2, 7)]
    m = match_boxes(cat, dets)
    assert m.detection.tolist() == [1, 0]
    np.testing.assert_allclose(m.iou, [7 / 12, 6 / 14])


def test_sub_threshold_pairs_do_not_steer_the_assignment():
    # d0-A 0.9; d0-B 0.2 (below threshold) must not make the solver trade the good pair away
    cat = [strip(0, 10), strip(9, 14)]
    m = match_boxes(cat, [strip(0, 10)], iou_threshold=0.3)
    assert m.detection.tolist() == [0, -1]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_exact_ties_go_to_the_higher_score(order):
    boxes = [strip(1, 11), strip(1, 11)]
    scores = [0.4, 0.9]
    dets = [boxes[k] for k in order]
    sc = [scores[k] for k in order]
    m = match_boxes([strip(0, 10)], dets, sc)
    assert sc[m.detection[0]] == 0.9


def test_no_detections_or_no_objects():
    assert match_boxes([strip(0, 10)], np.zeros((0, 4))).detection.tolist() == [-1]
    assert match_boxes(np.zeros((0, 4)), [strip(0, 10)]).detection.shape == (0,)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"iou_threshold must be in \(0, 1\]"):
        match_boxes([strip(0, 1)], [strip(0, 1)], iou_threshold=threshold)


def test_bad_scores():
    with pytest.raises(ValueError, match="detection_scores must be 1 finite values"):
        match_boxes([strip(0, 1)], [strip(0, 1)], [np.nan])


def test_the_core_of_a_large_galaxy_is_matched_in_the_second_round():
    galaxy = [0, 0, 100, 100]  # segmentation extent of a bright galaxy
    core = [30, 25, 72, 70]  # its detected bright part: IoU 0.19
    m = match_boxes([galaxy], [core], iou_threshold=0.3)
    assert m.detection.tolist() == [0] and m.contained.tolist() == [True]
    assert m.iou[0] == pytest.approx(42 * 45 / 100**2)
    assert not match_boxes([galaxy], [core], iou_threshold=0.3, contained_fraction=0).matched.any()


@pytest.mark.parametrize("det, why", [
    ([55, 55, 95, 95], "the box centre (50, 50) lies outside the detection"),
    ([-60, -60, 60, 60], "less than half of the detection lies inside the box (a tile-wide box)"),
    ([40, 40, 50, 50], "x1/y1 are exclusive: the centre (50, 50) is just outside"),
])
def test_second_round_needs_the_centre_and_a_mostly_inside_detection(det, why):
    assert not match_boxes([[0, 0, 100, 100]], [det]).matched.any(), why


def test_second_round_is_for_large_boxes_only():
    # the same geometry scaled down to a 16 px object (below CONTAINED_MIN_SIDE): IoU decides alone
    assert not match_boxes([[0, 0, 16, 16]], [[5, 4, 12, 11]]).matched.any()
    assert match_boxes([[0, 0, 32, 32]], [[10, 8, 24, 22]]).contained.tolist() == [True]


def test_second_round_takes_only_what_the_first_left():
    small, big = [40, 40, 48, 48], [0, 0, 100, 100]  # a small neighbour on top of a big galaxy's centre
    dets = [[40, 40, 48, 48], [35, 30, 70, 65]]  # the neighbour's exact box, the galaxy's core
    m = match_boxes([small, big], dets)
    assert m.detection.tolist() == [0, 1] and m.contained.tolist() == [False, True]
    # with only the neighbour's detection, the galaxy stays unmatched (one detection, one object)
    m = match_boxes([small, big], dets[:1])
    assert m.detection.tolist() == [0, -1]
    # of two cores in one galaxy, the one covering more of its box is taken
    m = match_boxes([big], [[45, 45, 55, 55], [30, 30, 70, 70]])
    assert m.detection.tolist() == [1]
