"""Backbones (ResNet-FPN, and MViTv2/Swin-FPN) for C-band astronomical tiles, built without downloading anything.

`BACKBONES` (`rail.deepdisc.model.backbone_names`) lists the ``backbone`` names: ResNets, built here, and
transformers, built by `rail.deepdisc.model.transformer` for one tile size (``tile_size``).

`build_backbone` makes a torchvision ResNet (``weights=None``; trainable GroupNorm by default, or BatchNorm,
since nothing is pretrained) whose first convolution takes C bands, and wraps layers 1-4 in a feature pyramid
(levels ``"0"``-``"3"`` at strides 4-32 plus a max-pooled ``"pool"`` level). `load_backbone_weights` starts it
from a local checkpoint (``torch.load(weights_only=True)``): a plain ResNet ``state_dict`` (e.g. torchvision's
ImageNet file, copied by hand) or a detection checkpoint whose keys start with ``backbone.body.``; a first
convolution with a different number of input channels is adapted by averaging its filters over the input
channels and repeating them for each band (scaled to keep the response), the usual recipe when the band list
changes.

Departures from Merz et al. (2025): the FPN has `DEFAULT_FPN_CHANNELS` channels, not 256 (tiles are 128 px and
objects small; see `rail.deepdisc.model.config`), and the ResNet uses GroupNorm by default, because it is trained
from scratch with a few tiles per batch. With ``norm="batch"`` a torchvision ImageNet checkpoint loads
completely (running statistics included); with GroupNorm only its convolutions and affine parameters do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.model.backbone_names import BACKBONES, RESNETS, TRANSFORMERS, is_transformer
from rail.deepdisc.model.config import NORM_LAYERS
from rail.deepdisc.model.transformer import (
    FIRST_LAYER_KEY,
    TransformerWithFPN,
    build_transformer_backbone,
    load_transformer_weights,
)

__all__ = [
    "BACKBONES",
    "RESNETS",
    "TRANSFORMERS",
    "is_transformer",
    "first_layer_key",
    "DEFAULT_FPN_CHANNELS",
    "NORM_LAYERS",
    "GROUPNORM_GROUPS",
    "build_backbone",
    "load_backbone_weights",
    "adapt_first_conv",
]

log = logging.getLogger(__name__)

DEFAULT_FPN_CHANNELS = 64
#: Groups of the GroupNorm layers (Wu & He 2018).
GROUPNORM_GROUPS = 32
_STEM_CHANNELS = 64
_STEM_KERNEL = 7
_STEM_STRIDE = 2
_KEY_PREFIXES = ("module.", "backbone.body.", "body.", "trunk.", "model.")


def first_layer_key(name: str) -> str:
    """State-dict key, relative to the model, of backbone ``name``'s first layer (the one reading the bands)."""
    return f"backbone.body.trunk.{FIRST_LAYER_KEY}" if is_transformer(name) else "backbone.body.conv1.weight"


def build_backbone(
    name: str,
    n_bands: int,
    *,
    fpn_channels: int = DEFAULT_FPN_CHANNELS,
    norm: str = "group",
    tile_size: int = 0,
    stride_in_1x1: bool = False,
) -> BackboneWithFPN | TransformerWithFPN:
    """Make a ResNet-FPN (or transformer-FPN) backbone for ``n_bands`` input channels with random weights.

    Parameters
    ----------
    name : str
        A key of `BACKBONES`: a ResNet, or a transformer of `rail.deepdisc.model.backbone_names.TRANSFORMERS`.
    n_bands : int
        Input channels C.
    fpn_channels : int
        Channels of every pyramid level.
    norm : {"group", "batch"}
        Normalisation layers of the ResNet: ``"group"`` (GroupNorm, `GROUPNORM_GROUPS` groups: independent of
        the batch size, identical in training and inference, the usual choice when training detectors from
        scratch with a few tiles per batch) or ``"batch"`` (BatchNorm, as torchvision's ImageNet ResNets).
        Transformers use LayerNorm and take ``"group"`` (the default) only.
    tile_size : int
        Side of the square tiles a transformer is built for (ignored by ResNets, which take any size).
    stride_in_1x1 : bool
        Bottleneck ResNets (resnet50) only: downsample in the first 1x1 convolution of each stage's first block,
        as detectron2's MSRA ResNets (``STRIDE_IN_1X1``), instead of torchvision's 3x3 convolution. Same
        parameters, other features: set for weights imported from detectron2 (`rail.deepdisc.model.detectron2`).

    Returns
    -------
    BackboneWithFPN or TransformerWithFPN
        Maps (B, C, H, W) to an ordered dict of 5 feature maps with ``fpn_channels`` channels at strides 4, 8,
        16, 32, 64 (keys ``"0"``, ``"1"``, ``"2"``, ``"3"``, ``"pool"``); ``out_channels`` attribute set.

    Raises
    ------
    ConfigError
        For an unknown backbone name, non-positive sizes, or a tile size a transformer cannot take.
    """
    if name not in BACKBONES:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {name!r}")
    if norm not in NORM_LAYERS:
        raise ConfigError(f"backbone_norm must be one of {', '.join(NORM_LAYERS)}, got {norm!r}")
    if n_bands < 1 or fpn_channels < 1:
        raise ConfigError(f"n_bands and fpn_channels must be >= 1, got {n_bands} and {fpn_channels}")
    if is_transformer(name):
        if norm != "group":
            raise ConfigError(f"backbone_norm applies to the ResNets; {name} uses LayerNorm: leave backbone_norm "
                              f"at 'group'")
        return build_transformer_backbone(name, n_bands, tile_size, fpn_channels=fpn_channels)
    norm_layer = nn.BatchNorm2d if norm == "batch" else _group_norm
    resnet = getattr(torchvision.models, name)(weights=None, norm_layer=norm_layer)
    resnet.conv1 = nn.Conv2d(
        n_bands,
        _STEM_CHANNELS,
        kernel_size=_STEM_KERNEL,
        stride=_STEM_STRIDE,
        padding=_STEM_KERNEL // 2,
        bias=False,
    )
    nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
    if stride_in_1x1:
        if not isinstance(resnet.layer1[0], torchvision.models.resnet.Bottleneck):
            raise ConfigError(f"stride_in_1x1 applies to bottleneck ResNets (resnet50), not {name}")
        for layer in (resnet.layer2, resnet.layer3, resnet.layer4):
            layer[0].conv1.stride, layer[0].conv2.stride = layer[0].conv2.stride, (1, 1)
    return_layers = {f"layer{k}": str(k - 1) for k in range(1, 5)}
    return BackboneWithFPN(
        resnet, return_layers, list(RESNETS[name]), fpn_channels, extra_blocks=LastLevelMaxPool()
    )


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(GROUPNORM_GROUPS, channels), channels)


def load_backbone_weights(backbone: BackboneWithFPN | TransformerWithFPN, path: str | os.PathLike) -> list[str]:
    """Load ResNet (or timm transformer) weights from a local checkpoint into ``backbone.body`` (weights-only load).

    Parameters
    ----------
    backbone : BackboneWithFPN or TransformerWithFPN
        Made by `build_backbone`.
    path : str or Path
        A ``torch.save`` file holding a ResNet ``state_dict`` (or a dict with a ``"state_dict"`` entry); for a
        transformer, the ``state_dict`` of the same timm model (e.g. its ImageNet weights, saved by hand): the
        patch embedding is adapted to the bands and the relative-position tables to the tile size.

    Returns
    -------
    list of str
        Body parameters the file did not provide (left at their random initialisation).

    Raises
    ------
    ModelError
        If the file is missing, not loadable with ``weights_only=True``, or provides none of the body's
        weights, or a weight has an incompatible shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: backbone_weights file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ...
        raise ModelError(f"{path}: not a weights-only torch checkpoint ({type(err).__name__})") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state_dict of ResNet weights")
    state = _strip_prefixes(state)
    if isinstance(backbone, TransformerWithFPN):
        own = backbone.body.trunk.state_dict()[FIRST_LAYER_KEY]
        first = state.get(FIRST_LAYER_KEY)
        if first is not None and first.shape[1] != own.shape[1] and first.shape[2:] == own.shape[2:]:
            state[FIRST_LAYER_KEY] = adapt_first_conv(first, own.shape[1])
        return load_transformer_weights(backbone.body, state, str(path))
    return _load_body(backbone.body, state, str(path))


def _strip_prefixes(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        for prefix in _KEY_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _load_body(body: nn.Module, state: dict, source: str) -> list[str]:
    own = body.state_dict()
    used = {k: v for k, v in state.items() if k in own}
    if not used:
        raise ModelError(
            f"{source}: none of its keys match a ResNet body (e.g. 'conv1.weight', 'layer1.0.conv1.weight')"
        )
    if "conv1.weight" in used and used["conv1.weight"].shape[1] != own["conv1.weight"].shape[1]:
        used["conv1.weight"] = adapt_first_conv(used["conv1.weight"], own["conv1.weight"].shape[1])
    for key, value in used.items():
        if value.shape != own[key].shape:
            raise ModelError(
                f"{source}: weight {key!r} has shape {tuple(value.shape)}, the backbone needs "
                f"{tuple(own[key].shape)} (is it the same ResNet depth?)"
            )
    body.load_state_dict(used, strict=False)
    missing = sorted(set(own) - set(used))
    log.info("loaded %d backbone tensors from %s (%d left random)", len(used), source, len(missing))
    return missing


def adapt_first_conv(weight: torch.Tensor, n_bands: int) -> torch.Tensor:
    """Adapt a first convolution (O, C_in, k, k) to (O, n_bands, k, k).

    Each output filter becomes its mean over input channels, repeated per band and scaled by C_in / n_bands.
    """
    mean = weight.mean(dim=1, keepdim=True) * (weight.shape[1] / n_bands)
    return mean.repeat(1, n_bands, 1, 1)
