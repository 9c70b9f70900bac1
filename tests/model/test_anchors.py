"""RPN anchors: known geometry, coverage of large boxes (old vs new defaults), old model files keep their anchors."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.anchors import (
    anchor_coverage,
    best_anchor_iou,
    describe_anchor_coverage,
    level_anchor_sizes,
    tile_anchors,
)
from rail.deepdisc.model.config import LEGACY_DEFAULTS, NetworkConfig
from rail.deepdisc.model.network import build_model

TILE = (128, 128)


def _config(**kw):
    return NetworkConfig(bands=("F277W", "F444W"), pixel_scale=0.03, **kw)


def _random_boxes(rng, sides, tile=128):
    x0 = rng.uniform(0, tile - sides)
    y0 = rng.uniform(0, tile - sides)
    return np.stack([x0, y0, x0 + sides, y0 + sides], axis=1)


def test_an_anchor_box_has_iou_one_and_sizes_follow_the_scales():
    cfg = _config(anchor_scales=(1.0, 2.0))
    assert level_anchor_sizes(cfg) == ((4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 128.0))
    anchors = tile_anchors(cfg, TILE)
    assert len(anchors) == sum((128 // s) ** 2 for s in (4, 8, 16, 32, 64)) * 2 * 3
    # a 4x4 box on the stride-4 grid of level 0 is exactly an anchor; shifted by half a stride it is not
    assert best_anchor_iou(cfg, [[2, 2, 6, 6]], TILE)[0] == pytest.approx(1.0)
    single = _config(anchor_scales=(1.0,))
    assert best_anchor_iou(single, [[2, 4, 6, 8]], TILE)[0] == pytest.approx(1 / 3)  # half a 4 px anchor
    assert best_anchor_iou(single, [[4, 4, 8, 8]], TILE)[0] == pytest.approx(1 / 4)  # a quarter of an 8 px one


def test_old_anchors_leave_large_boxes_without_a_positive_anchor_new_ones_cover_them():
    old, new = _config(**LEGACY_DEFAULTS), _config()
    big = [[14, 14, 114, 114]]  # a bright galaxy's 100 px segmentation box
    assert best_anchor_iou(old, big, TILE)[0] < 0.5 <= best_anchor_iou(new, big, TILE)[0]
    text, poor = describe_anchor_coverage(old, big, TILE)
    assert poor and "64-inf px 0% of 1" in text
    assert describe_anchor_coverage(new, big, TILE)[1] is False
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, rng.uniform(10, 110, 400))  # objects of F444W ~ 20-28 in 0.03"/px tiles
    rows_old = anchor_coverage(old, boxes, TILE, size_edges=(8, 32, 128))
    rows_new = anchor_coverage(new, boxes, TILE, size_edges=(8, 32, 128))
    assert all(r["positive"] < 0.2 for r in rows_old)  # IoU >= 0.7 almost never with one size per stride
    assert all(r["positive"] > 0.9 for r in rows_new)
    assert sum(r["n"] for r in rows_new) == 400


def test_old_model_files_keep_one_anchor_size_and_rpn_threshold():
    new = _config()
    old_dict = {k: v for k, v in new.to_dict().items() if k not in LEGACY_DEFAULTS}  # a file written by 0.3
    old = NetworkConfig.from_dict(old_dict)
    assert old.anchor_scales == (1.0,) and old.rpn_fg_iou_threshold == 0.7
    model_old, model_new = build_model(old), build_model(new)
    assert model_old.rpn.head.cls_logits.out_channels == 3  # 1 size x 3 aspect ratios: old weights still fit
    assert model_new.rpn.head.cls_logits.out_channels == 12
    assert model_old.rpn.proposal_matcher.high_threshold == 0.7
    assert model_new.rpn.proposal_matcher.high_threshold == 0.5
    assert NetworkConfig.from_dict(new.to_dict()) == new  # new files write and read the new keys
    # fine-tuning an old model: the requested (new-default) network takes the old file's anchors, so its weights fit
    tuned = new.keeping_anchors_of(old)
    assert tuned.anchor_scales == (1.0,) and tuned.rpn_fg_iou_threshold == 0.7
    build_model(tuned).load_state_dict(model_old.state_dict())
    with pytest.raises(RuntimeError, match="size mismatch"):
        model_new.load_state_dict(model_old.state_dict())


@pytest.mark.parametrize("kw, match", [({"anchor_scales": ()}, "anchor_scales"),
                                       ({"anchor_scales": (1.0, -2.0)}, "anchor_scales"),
                                       ({"rpn_fg_iou_threshold": 0.2}, "rpn_fg_iou_threshold")])
def test_bad_anchor_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        _config(**kw)
