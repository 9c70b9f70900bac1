"""`NetworkConfig`: the plain-data description of a DeepDISC network, enough to rebuild it.

Settings for small, faint, blended galaxies in 0.03"/pix tiles (`NetworkConfig`, defaults chosen for 64-256 px
tiles holding tens of objects of a few to ~100 px; torchvision's stock values are for 800 px photographs):

============================  ===========  ===============  ==========================================
setting                       torchvision  here             why
============================  ===========  ===============  ==========================================
input size                    800 px       tile size        tiles are never resized
anchor sizes (px)             32-512       4-181            objects span a few to ~100 px; 4 sizes per
                                                            level (1, 1.4, 2, 2.8 x stride) so most get an
                                                            anchor at IoU >= 0.5 (`rail.deepdisc.model.anchors`)
RPN foreground IoU            0.7          0.5              with 0.7 few small boxes have any positive anchor
FPN channels                  256          64               9-band 128 px tiles; ~4x fewer FPN FLOPs
RPN pre-NMS train / test      2000 / 1000  600 / 1000       tens of objects per tile, not thousands; at
RPN post-NMS train / test     2000 / 1000  300 / 500        test, 150 proposals left faint objects without one
                                                            (multi-size anchors: a bright object holds many)
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
from dataclasses import asdict, dataclass, fields, replace

from rail.deepdisc.constants import N_COMPONENTS
from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.model.backbone_names import BACKBONES, check_tile_size, is_transformer
from rail.deepdisc.options import check_fields, option

__all__ = ["NetworkConfig", "FEATURE_LEVELS", "OPTIONAL_DEFAULTS", "LEGACY_DEFAULTS", "FILE_ONLY_OPTIONS", "BACKBONES",
           "NORM_LAYERS", "NORMALISATIONS", "HEAD_KINDS", "PIXEL_ZEROS"]

#: Backbone normalisation layers (see `rail.deepdisc.model.backbone.build_backbone`).
NORM_LAYERS = ("group", "batch")
#: Input normalisations (see `rail.deepdisc.model.normalise`).
NORMALISATIONS = ("zscore", "asinh")
#: Redshift-head variants: ``"normed"`` (this package's, see `rail.deepdisc.model.redshift_head`) and
#: ``"merz25"`` (the head of Merz et al. 2025 / grantmerz/deepdisc's ``RedshiftPDFCasROIHeads``, for imported
#: detectron2 models).
HEAD_KINDS = ("normed", "merz25")
#: What the redshift head's pixel features are measured from (`rail.deepdisc.model.pixels`): each tile's sky
#: level (default) or the normaliser's centre (model files written before the option).
PIXEL_ZEROS = ("tile_sky", "mean")
#: `NetworkConfig` options that the model file sets, not the user (the training tiles set ``tile_size``, named
#: ``transformer_tile_size`` apart from the simulated tile side; ``deepdisc import-detectron2`` the others): left
#: out of the stage and command options.
FILE_ONLY_OPTIONS = ("transformer_tile_size", "head_kind", "stride_in_1x1")

#: FPN levels pooled by the RoI heads (strides 4, 8, 16, 32); anchors also use the extra "pool" level.
FEATURE_LEVELS = ("0", "1", "2", "3")
_ARTIFACT_EXTRA_KEYS = ("training",)
#: IoU below which an anchor is background in the RPN loss.
RPN_BG_IOU_THRESHOLD = 0.3
#: Fields written to a model file only when they differ from these defaults, so files (and checkpoint
#: fingerprints) of networks that do not use them stay as they were before the fields existed.
OPTIONAL_DEFAULTS = {"tile_size": 0, "head_kind": "normed", "stride_in_1x1": False}
#: Values of fields that model files written before the field existed were built with (`NetworkConfig.from_dict`
#: fills them in when a file lacks the key): one anchor size per level, the RPN's 0.7 foreground IoU, pixel
#: features measured from the normaliser's centre. New files always write these fields.
LEGACY_DEFAULTS = {"anchor_scales": (1.0,), "rpn_fg_iou_threshold": 0.7, "pixel_zero": "mean"}
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild the architecture (plain data; see the module docstring for the values).

    Parameters
    ----------
    bands : tuple of str
        Input bands, in channel order.
    pixel_scale : float
        Arcsec per pixel of the training tiles.
    backbone : str
        A key of `rail.deepdisc.model.backbone_names.BACKBONES`: ``resnet18``, ``resnet34``, ``resnet50`` (ResNet-FPN)
        or a transformer (``mvitv2_tiny``, ``swin_tiny``, ...: `rail.deepdisc.model.transformer`).
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
        Base anchor side (px), one per pyramid level ``0, 1, 2, 3, pool``.
    anchor_scales : tuple of float
        Each level has anchors of side ``anchor_sizes[level] * scale`` for every scale here (see
        `rail.deepdisc.model.anchors`; model files without this key have ``(1.0,)``).
    aspect_ratios : tuple of float
        Anchor height/width ratios, the same at every level.
    rpn_pre_nms_train, rpn_post_nms_train, rpn_pre_nms_test, rpn_post_nms_test : int
        RPN proposals kept per image before and after NMS, in training and at inference.
    rpn_nms_threshold : float
        IoU of the RPN's non-maximum suppression.
    rpn_fg_iou_threshold : float
        IoU with an object box from which an anchor counts as positive in the RPN loss (background below 0.3;
        model files without this key have 0.7, torchvision's value).
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
        `rail.deepdisc.model.pixels.pixel_features`; 0 = off, as in the paper).
    pixel_zero : {"tile_sky", "mean"}
        What those features' flux is measured from: each tile's sky level, every box pixel averaged, or the
        normaliser's centre (the training pixels' mean) with 8 x 8 samples per box (model files without this
        key; see `rail.deepdisc.model.pixels`).
    tile_size : int
        Side of the square tiles a transformer backbone is built for (set from the training tiles by
        `for_tiles`); 0 for the ResNets, which take any tile size (and then it is left out of `to_dict`, so
        ResNet model files are unchanged).
    head_kind : {"normed", "merz25"}
        The redshift head (`rail.deepdisc.model.redshift_head.RedshiftMixtureHead`): this package's, or that of
        Merz et al. (2025), for models imported from detectron2 (needs ``pixel_pool_size=0``).
    stride_in_1x1 : bool
        detectron2's ResNet variant (see `rail.deepdisc.model.backbone.build_backbone`); bottleneck ResNets only.
    """

    bands: tuple[str, ...]
    pixel_scale: float
    backbone: str = option("resnet18", "backbone of the feature pyramid: resnet18 (fast CPU default), resnet34, "
                           "resnet50 (the paper's ResNet), mvitv2_tiny/small/base (the paper's transformer), "
                           "swin_tiny/small (transformers need square tiles, side a multiple of 32 px)",
                           choices=tuple(BACKBONES))
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
    anchor_scales: tuple[float, ...] = (1.0, _SQRT2, 2.0, 2.0 * _SQRT2)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_train: int = 600
    rpn_post_nms_train: int = 300
    rpn_pre_nms_test: int = 1000
    rpn_post_nms_test: int = 500
    rpn_nms_threshold: float = 0.7
    rpn_fg_iou_threshold: float = 0.5
    rpn_batch_size: int = 128
    box_batch_size: int = 128
    representation_size: int = 256
    mask_channels: int = 64
    detections_per_image: int = 100
    box_score_threshold: float = 0.05
    box_nms_threshold: float = 0.5
    pixel_pool_size: int = option(4, "the redshift head also reads each box's colours and its pixels pooled to this "
                                  "size per band (0 = the paper's head, RoI features only)", low=0)
    pixel_zero: str = option("tile_sky", "what those pixels' flux is measured from: tile_sky (each tile's sky, every "
                             "box pixel averaged) or mean (the training pixels' mean, 8x8 samples per box: models "
                             "written before this option)", choices=PIXEL_ZEROS)
    tile_size: int = option(0, "side of the square tiles a transformer backbone is built for, pixels (set from the "
                            "training tiles; 0 for the ResNets)", low=0, flag="",
                            name="transformer_tile_size")
    head_kind: str = option("normed", "redshift head: normed (this package's) or merz25 (Merz et al. 2025, set by "
                            "deepdisc import-detectron2)", choices=HEAD_KINDS, flag="")
    stride_in_1x1: bool = option(False, "downsample in the first 1x1 convolution of bottleneck ResNets (detectron2's "
                                 "STRIDE_IN_1X1, set by deepdisc import-detectron2)", flag="")

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        for name in ("anchor_sizes", "anchor_scales", "aspect_ratios"):
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
        if not self.anchor_scales or min(self.anchor_scales) <= 0:
            raise ConfigError(f"anchor_scales must be positive factors, got {self.anchor_scales}")
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            raise ConfigError(f"aspect_ratios must be positive, got {self.aspect_ratios}")
        if is_transformer(self.backbone) and self.backbone_norm != "group":
            raise ConfigError(f"backbone_norm applies to the ResNets; {self.backbone} uses LayerNorm: leave "
                              f"backbone_norm at 'group'")
        if self.tile_size and not is_transformer(self.backbone):
            raise ConfigError(f"tile_size is set for transformer backbones only (0 for {self.backbone}), got "
                              f"{self.tile_size!r}")
        if self.tile_size:
            check_tile_size(self.backbone, self.tile_size)
        if self.head_kind == "merz25" and self.pixel_pool_size:
            raise ConfigError(f"the merz25 redshift head sees the RoI features only: pixel_pool_size must be 0, "
                              f"got {self.pixel_pool_size}")
        if self.stride_in_1x1 and self.backbone != "resnet50":
            raise ConfigError(f"stride_in_1x1 applies to bottleneck ResNets (resnet50), not {self.backbone}")
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
        if not RPN_BG_IOU_THRESHOLD <= float(self.rpn_fg_iou_threshold) <= 1.0:
            raise ConfigError(f"rpn_fg_iou_threshold must be in [{RPN_BG_IOU_THRESHOLD}, 1] (the background IoU "
                              f"is {RPN_BG_IOU_THRESHOLD}), got {self.rpn_fg_iou_threshold!r}")

    def to_dict(self) -> dict:
        """Plain data (str, int, float, list) for the model artifact (`OPTIONAL_DEFAULTS` fields only when set)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {k: v for k, v in out.items() if k not in OPTIONAL_DEFAULTS or v != OPTIONAL_DEFAULTS[k]}

    def differences(self, other: NetworkConfig, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """The option names (sorted) whose values differ between ``self`` and ``other``, ``ignore`` left out.

        Compares the artifact form (`to_dict`), so an optional field at its default equals an absent one.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in set(mine) | set(theirs) if k not in ignore and mine.get(k) != theirs.get(k))

    def for_tiles(self, shape) -> NetworkConfig:
        """The config for tiles of ``shape`` (..., H, W): sets ``tile_size`` for transformer backbones.

        Parameters
        ----------
        shape : sequence of int
            Shape of the tile images; the last two are the height and width.

        Returns
        -------
        NetworkConfig
            ``self`` for a ResNet; for a transformer, a copy with ``tile_size = H``.

        Raises
        ------
        ConfigError
            If a transformer cannot take the tiles (not square, side not a multiple of its stride), or the config
            was built for another tile size.
        """
        if not is_transformer(self.backbone):
            return self
        height, width = (int(n) for n in tuple(shape)[-2:])
        if height != width:
            raise ConfigError(f"backbone {self.backbone} needs square tiles, got {height} x {width} px; re-tile the "
                              f"data or use a ResNet")
        if self.tile_size and self.tile_size != height:
            raise ConfigError(f"the {self.backbone} network was built for {self.tile_size} px tiles, these are "
                              f"{height} px; re-tile the data at {self.tile_size} px")
        return replace(self, tile_size=check_tile_size(self.backbone, height))

    def keeping_anchors_of(self, other: NetworkConfig) -> NetworkConfig:
        """A copy with ``other``'s anchors, RPN matching and pixel zero point (the `LEGACY_DEFAULTS` fields).

        For the model a training run fine-tunes (``--init``), whose RPN and redshift-head weights must fit.
        """
        return replace(self, **{k: getattr(other, k) for k in LEGACY_DEFAULTS})

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
        kwargs = {**LEGACY_DEFAULTS, **{k: v for k, v in d.items() if k in known}}
        if isinstance(kwargs.get("normalisation"), dict):
            kwargs["normalisation"] = kwargs["normalisation"]["kind"]
        return cls(**kwargs)
