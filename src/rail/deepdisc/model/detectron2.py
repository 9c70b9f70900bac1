"""Import of detectron2-format DeepDISC checkpoints (grantmerz/deepdisc, LSSTDESC/rail_deepdisc) as model files.

grantmerz/deepdisc trains a detectron2 Mask R-CNN (or Cascade Mask R-CNN) on a ResNet-FPN backbone with a
mixture-density redshift head (``RedshiftPDFCasROIHeads.redshift_fc``: Linear-Tanh-Linear-Tanh-Linear on the
7x7 RoIAligned FPN features of each box plus E(B-V)). `convert_detectron2` maps its weights onto this package's
torchvision network, key by key (`detectron2_key_map`), with `NetworkConfig` fields that reproduce the
architecture (`detectron2_config`): ``backbone_norm="batch"`` (detectron2's FrozenBN is a BatchNorm in eval mode),
``stride_in_1x1`` (detectron2's MSRA ResNets downsample in the 1x1 convolution), FPN, box-head and mask-head
widths read from the tensors, ``head_kind="merz25"`` (the paper's head) and ``pixel_pool_size=0``.

Conventions that differ and are converted:

* classes: detectron2's box classifier puts background *last* (``num_classes + 1`` scores), torchvision's
  *first*; detectron2's box regression and mask predictor have no background rows/channel (torchvision's are
  filled with zeros: it never uses them);
* E(B-V): detectron2 feeds it in magnitudes, this package divided by `EBV_SCALE` (the first layer's E(B-V)
  column is multiplied by `EBV_SCALE`);
* input: detectron2 normalises with ``(x - pixel_mean) / pixel_std`` per channel, which this package's
  ``zscore`` normaliser does with the ``--mean`` / ``--std`` given at import, in the ``--bands`` order.

What is not the same computation (the weights apply, the outputs differ slightly): torchvision rounds anchor
corners to integers; RoIAlign samples 2 x 2 points per bin where detectron2's ROIAlignV2 adapts the count to
the box; a Cascade R-CNN checkpoint has three box heads, of which only one (``cascade_stage``) can be used here
(box regression weights (10, 10, 5, 5), as its first stage). Anything else in the checkpoint (other heads, other
backbones such as MViTv2/Swin in detectron2's layout, keypoints) is refused, naming the keys.

Reading checkpoints and writing the model file: `rail.deepdisc.model.detectron2_io`.
"""

from __future__ import annotations

import logging
import re

import torch
from torch import Tensor

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.config import LEGACY_DEFAULTS, NetworkConfig
from rail.deepdisc.model.network import build_model
from rail.deepdisc.model.redshift_head import EBV_SCALE

__all__ = [
    "D2_ANCHOR_SIZES",
    "PIXEL_STATS",
    "detectron2_config",
    "detectron2_key_map",
    "convert_detectron2",
    "to_detectron2",
]

log = logging.getLogger(__name__)

#: Anchor sizes (px) of grantmerz/deepdisc's photo-z configurations (``demo_r50_btk_photoz.py``).
D2_ANCHOR_SIZES = (8.0, 16.0, 32.0, 64.0, 128.0)
_BN = ("weight", "bias", "running_mean", "running_var")
_RESNET_DEPTHS = {(2, 2, 2, 2, False): "resnet18", (3, 4, 6, 3, False): "resnet34", (3, 4, 6, 3, True): "resnet50"}
_CASCADE = re.compile(r"^roi_heads\.box_(head|predictor)\.(\d+)\.")
_BG_FIRST, _BG_PAD = "bg_first", "bg_pad"
_EBV_COLUMN = "ebv_column"
#: detectron2's input normalisation buffers (in older checkpoints): the defaults of ``mean`` / ``std``.
PIXEL_STATS = ("pixel_mean", "pixel_std")


def _shape(state: dict, key: str, source: str) -> torch.Size:
    if key not in state:
        raise ModelError(f"{source}: has no {key!r}; not a detectron2 Mask R-CNN with a ResNet-FPN backbone and a "
                         f"DeepDISC redshift head")
    return state[key].shape


def _redshift_layers(state: dict) -> list[int]:
    return sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"roi_heads\.redshift_fc\.(\d+)\.weight", k)))


def detectron2_config(
    state: dict[str, Tensor],
    bands,
    pixel_scale: float,
    *,
    anchor_sizes=D2_ANCHOR_SIZES,
    aspect_ratios=(0.5, 1.0, 2.0),
    stride_in_1x1: bool = True,
    cascade_stage: int | None = None,
    source: str = "checkpoint",
    **overrides,
) -> NetworkConfig:
    """The `NetworkConfig` that reproduces a detectron2 DeepDISC network's architecture.

    Parameters
    ----------
    state : dict
        detectron2 weights (`load_detectron2_state`).
    bands : sequence of str
        Input bands, in the checkpoint's channel order.
    pixel_scale : float
        Arcsec per pixel of the images it was trained on.
    anchor_sizes, aspect_ratios : sequence of float
        The detectron2 config's anchor generator (not stored in the weights).
    stride_in_1x1 : bool
        detectron2's ``RESNETS.STRIDE_IN_1X1`` (True for MSRA-initialised ResNets, the default there).
    cascade_stage : int, optional
        For a Cascade R-CNN checkpoint, the box head to use (only stage 0 has torchvision's box weights).
    source : str
        Name of the checkpoint, for messages.
    **overrides
        Further `NetworkConfig` fields (thresholds, detections per image, ...).

    Raises
    ------
    ModelError
        If the weights are not those of a supported detectron2 architecture.
    """
    blocks = tuple(len({k.split(".")[3] for k in state if k.startswith(f"backbone.bottom_up.res{r}.")})
                   for r in range(2, 6))
    bottleneck = "backbone.bottom_up.res2.0.conv3.weight" in state
    backbone = _RESNET_DEPTHS.get((*blocks, bottleneck))
    if not any(blocks):
        keys = sorted(state, key=lambda k: not k.startswith("backbone.bottom_up."))
        example = next((k for k in keys if k.startswith("backbone.")), "no backbone.* key")
        raise ModelError(f"{source}: the backbone is not a detectron2 ResNet (no backbone.bottom_up.res2-5.*, e.g. "
                         f"{example}); detectron2 MViTv2/Swin/ViT backbones do not map onto timm's: retrain with "
                         f"deepdisc train --backbone mvitv2_tiny instead")
    if backbone is None:
        raise ModelError(f"{source}: backbone with {blocks} blocks per stage (bottleneck: {bottleneck}) is not one of "
                         f"{', '.join(_RESNET_DEPTHS.values())} (keys backbone.bottom_up.res2-5.*)")
    stages = _cascade_stages(state)
    if stages and cascade_stage is None:
        raise ModelError(f"{source}: Cascade R-CNN checkpoint ({len(stages)} box heads, keys roi_heads.box_head.0-"
                         f"{len(stages) - 1}.*); this network has one box head: choose one with cascade_stage 0 "
                         f"(--cascade-stage 0; detections then come from that stage only)")
    if cascade_stage is not None and cascade_stage != 0:
        raise ModelError(f"{source}: cascade_stage must be 0 (stages > 0 regress boxes with other weights), got "
                         f"{cascade_stage}")
    prefix = "roi_heads.box_head.0." if stages else "roi_heads.box_head."
    layers = _redshift_layers(state)
    if not layers:
        raise ModelError(f"{source}: has no redshift head (roi_heads.redshift_fc.*): not a DeepDISC photo-z model")
    out = _shape(state, f"roi_heads.redshift_fc.{layers[-1]}.weight", source)[0]
    if out % 3:
        raise ModelError(f"{source}: roi_heads.redshift_fc.{layers[-1]} has {out} outputs, not 3 per component")
    n_anchors = _shape(state, "proposal_generator.rpn_head.objectness_logits.weight", source)[0]
    if n_anchors != len(aspect_ratios):
        raise ModelError(f"{source}: the RPN predicts {n_anchors} anchors per location, but {len(aspect_ratios)} "
                         f"aspect ratios were given")
    return NetworkConfig(
        bands=tuple(bands), pixel_scale=float(pixel_scale), backbone=backbone, backbone_norm="batch",
        stride_in_1x1=bool(stride_in_1x1 and bottleneck), head_kind="merz25", pixel_pool_size=0,
        n_components=out // 3,
        head_hidden=tuple(int(_shape(state, f"roi_heads.redshift_fc.{i}.weight", source)[0]) for i in layers[:-1]),
        fpn_channels=int(_shape(state, "backbone.fpn_lateral2.weight", source)[0]),
        representation_size=int(_shape(state, prefix + "fc1.weight", source)[0]),
        mask_channels=int(_shape(state, "roi_heads.mask_head.mask_fcn1.weight", source)[0]),
        anchor_sizes=tuple(float(a) for a in anchor_sizes), aspect_ratios=tuple(float(a) for a in aspect_ratios),
        **{**LEGACY_DEFAULTS, **overrides},  # detectron2: one anchor size per level, RPN foreground IoU 0.7
    )


def _cascade_stages(state: dict) -> list[int]:
    return sorted({int(m.group(2)) for k in state if (m := _CASCADE.match(k))})


def detectron2_key_map(keys, config: NetworkConfig, *, cascade: bool = False) -> dict[str, tuple[str, str | None]]:
    """Our state-dict key -> (detectron2 key, conversion) for a network built from ``config``.

    Parameters
    ----------
    keys : iterable of str
        Our network's state-dict keys (``build_model(config).state_dict()``).
    config : NetworkConfig
    cascade : bool
        Map the box head to stage 0 of a Cascade R-CNN (``roi_heads.box_head.0.*``).

    Returns
    -------
    dict
        Conversions: ``None`` (copied), ``"bg_first"`` (classifier rows: background last -> first), ``"bg_pad"``
        (regression rows or mask channels: a zero background block first), ``"ebv_column"`` (first redshift
        layer). Our keys without a detectron2 counterpart (normaliser, BatchNorm counters, width calibration)
        are left out: the importer sets them.
    """
    stage = "0." if cascade else ""
    out = {}
    for key in keys:
        d2 = _d2_key(key, stage, len(config.head_hidden))
        if d2 is not None:
            out[key] = d2
    return out


#: (our key pattern, detectron2 key template[, conversion]); ``{k}`` is group k, ``{k+n}`` group k plus n.
_RULES = (
    (r"backbone\.body\.conv1\.weight", "backbone.bottom_up.stem.conv1.weight"),
    (r"backbone\.body\.bn1\.(\w+)", "backbone.bottom_up.stem.conv1.norm.{0}"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.conv(\d)\.weight", "backbone.bottom_up.res{0+1}.{1}.conv{2}.weight"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.bn(\d)\.(\w+)", "backbone.bottom_up.res{0+1}.{1}.conv{2}.norm.{3}"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.downsample\.0\.weight", "backbone.bottom_up.res{0+1}.{1}.shortcut.weight"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.downsample\.1\.(\w+)",
     "backbone.bottom_up.res{0+1}.{1}.shortcut.norm.{2}"),
    (r"backbone\.fpn\.inner_blocks\.(\d)\.0\.(\w+)", "backbone.fpn_lateral{0+2}.{1}"),
    (r"backbone\.fpn\.layer_blocks\.(\d)\.0\.(\w+)", "backbone.fpn_output{0+2}.{1}"),
    (r"rpn\.head\.conv\.0\.0\.(\w+)", "proposal_generator.rpn_head.conv.{0}"),
    (r"rpn\.head\.cls_logits\.(\w+)", "proposal_generator.rpn_head.objectness_logits.{0}"),
    (r"rpn\.head\.bbox_pred\.(\w+)", "proposal_generator.rpn_head.anchor_deltas.{0}"),
    (r"roi_heads\.box_head\.fc6\.(\w+)", "roi_heads.box_head.STAGEfc1.{0}"),
    (r"roi_heads\.box_head\.fc7\.(\w+)", "roi_heads.box_head.STAGEfc2.{0}"),
    (r"roi_heads\.box_predictor\.cls_score\.(\w+)", "roi_heads.box_predictor.STAGEcls_score.{0}", _BG_FIRST),
    (r"roi_heads\.box_predictor\.bbox_pred\.(\w+)", "roi_heads.box_predictor.STAGEbbox_pred.{0}", _BG_PAD),
    (r"roi_heads\.mask_head\.(\d)\.0\.(\w+)", "roi_heads.mask_head.mask_fcn{0+1}.{1}"),
    (r"roi_heads\.mask_predictor\.conv5_mask\.(\w+)", "roi_heads.mask_head.deconv.{0}"),
    (r"roi_heads\.mask_predictor\.mask_fcn_logits\.(\w+)", "roi_heads.mask_head.predictor.{0}", _BG_PAD),
    (r"redshift_head\.mlp\.(0)\.(weight)", "roi_heads.redshift_fc.{0}.{1}", _EBV_COLUMN),
    (r"redshift_head\.mlp\.(\d+)\.(\w+)", "roi_heads.redshift_fc.{0}.{1}"),
    (r"redshift_head\.output\.(\w+)", "roi_heads.redshift_fc.OUTPUT.{0}"),
)
_FIELD = re.compile(r"\{(\d)(?:\+(\d))?\}")


def _d2_key(key: str, stage: str, hidden: int) -> tuple[str, str | None] | None:
    if key.endswith("num_batches_tracked"):
        return None
    for pattern, template, *conversion in _RULES:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        text = _FIELD.sub(lambda f: str(int(m.group(int(f.group(1)) + 1)) + int(f.group(2))) if f.group(2)
                          else m.group(int(f.group(1)) + 1), template)
        text = text.replace("STAGE", stage).replace("OUTPUT", str(2 * hidden))
        return text, (conversion[0] if conversion else None)
    return None


def convert_detectron2(state: dict[str, Tensor], config: NetworkConfig, *, source: str = "checkpoint") -> dict:
    """Our network's state dict from detectron2 weights (see the module docstring for the conventions).

    Parameters
    ----------
    state : dict
        detectron2 weights.
    config : NetworkConfig
        From `detectron2_config` (or the same architecture).
    source : str
        Name of the checkpoint, for messages.

    Returns
    -------
    dict of str -> Tensor
        Every key of ``build_model(config).state_dict()``: the normaliser at identity, BatchNorm counters at 0,
        width calibration 1.

    Raises
    ------
    ModelError
        Naming the detectron2 keys that map to nothing here, those the network needs but the checkpoint lacks,
        and tensors of another shape.
    """
    own = build_model(config).state_dict()
    stages = _cascade_stages(state)
    mapping = detectron2_key_map(own, config, cascade=bool(stages))
    used = {d2 for d2, _ in mapping.values()}
    ignored = {k for k in state if (stages and _CASCADE.match(k) and int(_CASCADE.match(k).group(2)) != 0)
               or k.endswith("num_batches_tracked") or k in PIXEL_STATS}
    unknown = sorted(k for k in state if k not in used and k not in ignored)
    if unknown:
        raise ModelError(f"{source}: {len(unknown)} tensor(s) map to nothing in this network: "
                         f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
    missing = sorted(d2 for d2, _ in mapping.values() if d2 not in state)
    if missing:
        raise ModelError(f"{source}: lacks {len(missing)} tensor(s) this network needs: "
                         f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    out = {}
    for key, value in own.items():
        if key not in mapping:
            out[key] = value  # normaliser (set by the caller), BatchNorm counters, std_scale
            continue
        d2, conversion = mapping[key]
        tensor = _convert(state[d2].to(value.dtype), conversion, value.shape)
        if tensor.shape != value.shape:
            raise ModelError(f"{source}: {d2} has shape {tuple(state[d2].shape)}, the network needs "
                             f"{tuple(value.shape)} for {key}")
        out[key] = tensor
    if stages:
        log.warning("%s: used cascade stage 0 of %d; ignored the box heads of the later stages", source, len(stages))
    return out


def _convert(t: Tensor, conversion: str | None, shape: torch.Size) -> Tensor:
    if conversion == _BG_FIRST:  # detectron2: [classes..., background]; torchvision: [background, classes...]
        return torch.cat([t[-1:], t[:-1]])
    if conversion == _BG_PAD and 0 < shape[0] - t.shape[0] <= t.shape[0]:  # torchvision's unused background block
        return torch.cat([torch.zeros_like(t[: shape[0] - t.shape[0]]), t])
    if conversion == _EBV_COLUMN:  # our E(B-V) input is divided by EBV_SCALE
        t = t.clone()
        t[:, -1] *= EBV_SCALE
    return t


def to_detectron2(own: dict[str, Tensor], config: NetworkConfig) -> dict[str, Tensor]:
    """The inverse of `convert_detectron2`: our weights in detectron2's key layout (plain Mask R-CNN).

    Background rows of the box regression and the mask predictor are dropped (torchvision never uses them).
    """
    out = {}
    for key, (d2, conversion) in detectron2_key_map(own, config).items():
        t = own[key].clone()
        if conversion == _BG_FIRST:
            t = torch.cat([t[1:], t[:1]])
        elif conversion == _BG_PAD:  # one class: the second half (4 regression rows or 1 mask channel)
            t = t[t.shape[0] // 2 :]
        elif conversion == _EBV_COLUMN:
            t[:, -1] /= EBV_SCALE
        out[d2] = t
    return out
