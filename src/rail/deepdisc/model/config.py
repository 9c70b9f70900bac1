"""`NetworkConfig`: the plain-data description of a DeepDISC network, enough to rebuild it.

Settings for small, faint, blended galaxies in 0.03"/pix tiles (`NetworkConfig`, defaults chosen for 64-256 px
tiles holding tens of objects of a few to ~100 px; torchvision's stock values are for 800 px photographs):

============================  ===========  ===============  ==========================================
setting                       torchvision  here             why
============================  ===========  ===============  ==========================================
input size                    800 px       tile size        tiles are never resized
anchor sizes (px)             32-512       4-64             objects span a few to ~100 px
FPN channels                  256          64               9-band 128 px tiles; ~4x fewer FPN FLOPs
RPN pre-NMS train / test      2000 / 1000  600 / 300        tens of objects per tile, not thousands
RPN post-NMS train / test     2000 / 1000  300 / 150        idem
RPN sampled anchors / image   256          128              same positive fraction (0.5)
sampled RoIs / image          512          128              ~15 objects: few positives to balance
box head width                1024         256              one class ("object")
mask head channels            256          64               28 x 28 masks of small sources
backbone normalisation        frozen BN    GroupNorm        trained from scratch, small batches
============================  ===========  ===============  ==========================================

Measured (``benchmarks/bench_train.py``, 128 px, 9 bands, 15 objects per tile): one training step costs
about 0.12 CPU-s per tile with ResNet-18 and 0.2 with ResNet-50; the RoI sampling sizes keep every object's
positive RoIs (up to 25% of 128 per tile), so small objects still train the box and mask heads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from rail.deepdisc.constants import N_COMPONENTS
from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.options import check_fields, option

__all__ = ["NetworkConfig", "FEATURE_LEVELS", "BACKBONES", "NORM_LAYERS", "NORMALISATIONS"]

#: Supported ResNets -> channels of layers 1-4 (`rail.deepdisc.model.backbone.build_backbone`).
BACKBONES: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}
#: Backbone normalisation layers (see `rail.deepdisc.model.backbone.build_backbone`).
NORM_LAYERS = ("group", "batch")
#: Input normalisations (see `rail.deepdisc.model.normalise`).
NORMALISATIONS = ("zscore", "asinh")

#: FPN levels pooled by the RoI heads (strides 4, 8, 16, 32); anchors also use the extra "pool" level.
FEATURE_LEVELS = ("0", "1", "2", "3")
_ARTIFACT_EXTRA_KEYS = ("training",)


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild the architecture (plain data; see the module docstring for the values).

    Parameters
    ----------
    bands : tuple of str
        Input bands, in channel order.
    pixel_scale : float
        Arcsec per pixel of the training tiles.
    backbone : {"resnet18", "resnet34", "resnet50"}
        ResNet of the ResNet-FPN backbone.
    backbone_norm : {"group", "batch"}
        Normalisation layers of the ResNet (see `rail.deepdisc.model.backbone.build_backbone`).
    n_components : int
        Gaussian components K of each redshift mixture.
    head_hidden : tuple of int
        Hidden widths of the redshift MLP.
    normalisation : {"zscore", "asinh"}
        Input normalisation kind (statistics live in the model's buffers).
    fpn_channels : int
        Channels of the feature pyramid.
    anchor_sizes : tuple of float
        Anchor side (px), one per pyramid level ``0, 1, 2, 3, pool``.
    aspect_ratios : tuple of float
        Anchor height/width ratios, the same at every level.
    rpn_pre_nms_train, rpn_post_nms_train, rpn_pre_nms_test, rpn_post_nms_test : int
        RPN proposals kept per image before and after NMS, in training and at inference.
    rpn_nms_threshold : float
        IoU of the RPN's non-maximum suppression.
    rpn_batch_size : int
        Anchors sampled per image for the RPN loss.
    box_batch_size : int
        RoIs sampled per image for the box and mask losses.
    representation_size : int
        Width of the box head's two fully connected layers.
    mask_channels : int
        Channels of the mask head's convolutions.
    detections_per_image : int
        Maximum detections kept per tile.
    box_score_threshold, box_nms_threshold : float
        Score cut and NMS IoU of the final detections.
    pixel_pool_size : int
        The redshift head also sees brightness-free colour and shape features of each box's input pixels,
        RoI-aligned to ``pixel_pool_size`` x ``pixel_pool_size`` per band (a direct path for colours, see
        `rail.deepdisc.model.network.pixel_features`; 0 = off, as in the paper).
    """

    bands: tuple[str, ...]
    pixel_scale: float
    backbone: str = option("resnet18", "ResNet-FPN backbone: resnet18 (fast CPU default), resnet34, resnet50 (the "
                           "paper's fiducial)", choices=tuple(BACKBONES))
    backbone_norm: str = option("group", "ResNet normalisation layers: group (GroupNorm, for training from scratch) "
                                "or batch (BatchNorm, to load ImageNet-style backbone_weights fully)",
                                choices=NORM_LAYERS)
    n_components: int = option(N_COMPONENTS, "Gaussian components of each object's redshift mixture", low=1)
    head_hidden: tuple[int, ...] = option((1024, 64), "hidden layer widths of the redshift MLP head", low=1,
                                          nonempty=True)
    normalisation: str = option("zscore", "per-band input scaling: zscore (from training pixels) or asinh",
                                choices=NORMALISATIONS)
    fpn_channels: int = 64
    anchor_sizes: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0, 64.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_train: int = 600
    rpn_post_nms_train: int = 300
    rpn_pre_nms_test: int = 300
    rpn_post_nms_test: int = 150
    rpn_nms_threshold: float = 0.7
    rpn_batch_size: int = 128
    box_batch_size: int = 128
    representation_size: int = 256
    mask_channels: int = 64
    detections_per_image: int = 100
    box_score_threshold: float = 0.05
    box_nms_threshold: float = 0.5
    pixel_pool_size: int = option(4, "the redshift head also reads each box's colours and its pixels pooled to this "
                                  "size per band (0 = the paper's head, RoI features only)", low=0)

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        for name in ("anchor_sizes", "aspect_ratios"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.bands:
            raise ConfigError("NetworkConfig: bands is empty")
        if not (math.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise ConfigError(f"NetworkConfig: pixel_scale must be > 0 arcsec/pix, got {self.pixel_scale!r}")
        if len(self.anchor_sizes) != len(FEATURE_LEVELS) + 1 or min(self.anchor_sizes) <= 0:
            raise ConfigError(
                f"anchor_sizes must be {len(FEATURE_LEVELS) + 1} positive sizes (px), one per "
                f"pyramid level, got {self.anchor_sizes}"
            )
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            raise ConfigError(f"aspect_ratios must be positive, got {self.aspect_ratios}")
        for name in (
            "fpn_channels",
            "rpn_pre_nms_train",
            "rpn_post_nms_train",
            "rpn_pre_nms_test",
            "rpn_post_nms_test",
            "rpn_batch_size",
            "box_batch_size",
            "representation_size",
            "mask_channels",
            "detections_per_image",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("rpn_nms_threshold", "box_score_threshold", "box_nms_threshold"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """Plain data (str, int, float, list) for the model artifact."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        """Rebuild from `to_dict` output or an artifact ``config`` (whose ``normalisation`` may be a dict).

        Raises
        ------
        ModelError
            If ``d`` holds keys this version does not know.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - set(_ARTIFACT_EXTRA_KEYS))
        if unknown:
            raise ModelError(
                f"model config has unknown key(s) {', '.join(unknown)}; it was written by a newer "
                f"pz-rail-deepdisc"
            )
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("normalisation"), dict):
            kwargs["normalisation"] = kwargs["normalisation"]["kind"]
        return cls(**kwargs)
