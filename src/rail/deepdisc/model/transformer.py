"""Transformer backbones (MViTv2, Swin) from ``timm`` with a feature pyramid, for C-band tiles.

Merz et al. (2025) compare a ResNet-50 with a Multiscale Vision Transformer (MViTv2, Li et al. 2022). Here the
hierarchical transformers of ``timm`` (MViTv2 and Swin, built with ``pretrained=False``: nothing is downloaded)
replace the ResNet body: their four stages (strides 4, 8, 16, 32) pass a per-level LayerNorm (as detectron2's
MViTv2 backbone) and feed the same torchvision feature pyramid as the ResNets (levels ``"0"``-``"3"`` plus a
max-pooled ``"pool"``), so RPN, RoI heads and redshift head are unchanged. The patch embedding takes C bands.

Both transformers are built for one square tile size (``NetworkConfig.tile_size``, set from the training
tiles): MViTv2's relative-position tables are sized for the feature maps, and Swin's windows are clamped to
them. Tiles must be square with a side that is a multiple of 32 px
(`rail.deepdisc.model.backbone_names.TILE_MULTIPLE`); a model refuses tiles of another size (`ModelError`).
Swin uses windows of `SWIN_WINDOW` pixels of the stride-4 map (not ImageNet's 7), so the power-of-two feature
maps of 64-256 px tiles split into whole windows.

`load_transformer_weights` starts a body from a local ``timm`` checkpoint (e.g. an ImageNet state dict saved by
hand with ``torch.save``): MViTv2's
relative-position tables are linearly interpolated to the new feature sizes (as detectron2 does) and Swin's bias
tables are resized bicubically (``timm``'s ``resize_rel_pos_bias_table_simple``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.model.backbone_names import TRANSFORMERS, check_tile_size

__all__ = [
    "SWIN_WINDOW",
    "FIRST_LAYER_KEY",
    "TransformerBody",
    "TransformerWithFPN",
    "build_transformer_backbone",
    "load_transformer_weights",
]

log = logging.getLogger(__name__)

#: Swin attention window (pixels of the stride-4 feature map; clamped to smaller maps by timm).
SWIN_WINDOW = 8
#: State-dict key (inside the timm trunk) of the patch embedding that reads the bands.
FIRST_LAYER_KEY = "patch_embed.proj.weight"
_N_STAGES = 4
_LEVEL_NORM_EPS = 1e-6


class TransformerBody(nn.Module):
    """A ``timm`` trunk returning its four stages as an ordered dict ``"0"``-``"3"`` of (B, C_k, H_k, W_k).

    Parameters
    ----------
    trunk : nn.Module
        A timm MViTv2 or Swin model with ``forward_intermediates`` (head and final norm pruned).
    channels : tuple of int
        Channels of the four stages.
    tile_size : int
        The only input side accepted.
    name : str
        Backbone name, for messages.
    """

    def __init__(self, trunk: nn.Module, channels: tuple[int, ...], tile_size: int, name: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.norms = nn.ModuleList(nn.LayerNorm(c, eps=_LEVEL_NORM_EPS) for c in channels)
        self.tile_size = int(tile_size)
        self.name = name

    def forward(self, x: Tensor) -> OrderedDict:
        """(B, C, S, S) normalised pixels -> stage features, each LayerNorm-ed over channels."""
        if tuple(x.shape[-2:]) != (self.tile_size, self.tile_size):
            raise ModelError(
                f"the {self.name} backbone was built for {self.tile_size} x {self.tile_size} px tiles, got "
                f"{x.shape[-2]} x {x.shape[-1]}; re-tile the data at {self.tile_size} px or retrain on these tiles"
            )
        stages = self.trunk.forward_intermediates(x, indices=_N_STAGES, intermediates_only=True, output_fmt="NCHW")
        levels = enumerate(zip(stages, self.norms))
        return OrderedDict((str(k), norm(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)) for k, (f, norm) in levels)


class TransformerWithFPN(nn.Module):
    """``body`` (a `TransformerBody`) followed by a torchvision feature pyramid, like ``BackboneWithFPN``.

    Attributes
    ----------
    body : TransformerBody
    fpn : FeaturePyramidNetwork
    out_channels : int
        Channels of every pyramid level.
    """

    def __init__(self, body: TransformerBody, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict:
        """(B, C, S, S) -> levels ``"0"``-``"3"``, ``"pool"`` at strides 4-64."""
        return self.fpn(self.body(x))


def build_transformer_backbone(name: str, n_bands: int, tile_size: int, *, fpn_channels: int) -> TransformerWithFPN:
    """Make a transformer-FPN backbone for ``n_bands`` bands and ``tile_size`` px tiles, with random weights.

    Parameters
    ----------
    name : str
        A key of `TRANSFORMERS`.
    n_bands : int
        Input channels of the patch embedding.
    tile_size : int
        Side of the square tiles (a multiple of ``TILE_MULTIPLE``).
    fpn_channels : int
        Channels of every pyramid level.

    Returns
    -------
    TransformerWithFPN

    Raises
    ------
    ConfigError
        For an unknown name or an unusable tile size.
    """
    import timm

    if name not in TRANSFORMERS:
        raise ConfigError(f"transformer backbone must be one of {', '.join(TRANSFORMERS)}, got {name!r}")
    if not int(tile_size):
        raise ConfigError(f"backbone {name} is built for one tile size: set NetworkConfig.tile_size (training sets "
                          f"it from the tiles, NetworkConfig.for_tiles)")
    size = check_tile_size(name, tile_size)
    spec = TRANSFORMERS[name]
    extra = {"window_size": SWIN_WINDOW} if spec.family == "swin" else {}
    trunk = timm.create_model(
        spec.timm_name, pretrained=False, in_chans=int(n_bands), img_size=size, num_classes=0, **extra
    )
    trunk.prune_intermediate_layers(_N_STAGES, prune_norm=True, prune_head=True)
    body = TransformerBody(trunk, spec.channels, size, name)
    return TransformerWithFPN(body, list(spec.channels), int(fpn_channels))


@torch.no_grad()
def load_transformer_weights(body: TransformerBody, state: dict, source: str) -> list[str]:
    """Load ``timm`` weights (e.g. ImageNet, from a local file) into a `TransformerBody`'s trunk.

    Parameters
    ----------
    body : TransformerBody
    state : dict
        A timm state dict, prefixes such as ``module.`` removed, the patch embedding already adapted to the
        bands (`rail.deepdisc.model.backbone.load_backbone_weights` does both).
    source : str
        Where it came from, for messages.

    Returns
    -------
    list of str
        Trunk parameters the state dict did not provide (left random).

    Raises
    ------
    ModelError
        If no key matches the trunk, or a tensor has a shape that cannot be adapted (another model size).
    """
    trunk = body.trunk
    own = trunk.state_dict()
    used = {key: _fit(key, value, own[key], source) for key, value in state.items() if key in own}
    if not used:
        raise ModelError(
            f"{source}: none of its keys match a timm {body.name} trunk (e.g. {FIRST_LAYER_KEY!r}); is it a "
            f"timm state dict of the same architecture?"
        )
    trunk.load_state_dict(used, strict=False)
    missing = sorted(set(own) - set(used))
    log.info("loaded %d %s tensors from %s (%d left random)", len(used), body.name, source, len(missing))
    return missing


def _fit(key: str, value: Tensor, own: Tensor, source: str) -> Tensor:
    if value.shape == own.shape:
        return value
    if key.endswith(("rel_pos_h", "rel_pos_w")) and value.ndim == 2 and value.shape[1] == own.shape[1]:
        # detectron2's get_rel_pos: linear interpolation of the (2S - 1, head_dim) table
        return F.interpolate(value.T[None].float(), size=own.shape[0], mode="linear")[0].T.to(own.dtype)
    if key.endswith("relative_position_bias_table") and value.ndim == 2 and value.shape[1] == own.shape[1]:
        from timm.layers.pos_embed_rel import resize_rel_pos_bias_table_simple  # bicubic on the (2w-1)^2 grid

        window = (int(round((own.shape[0] ** 0.5 + 1) / 2)),) * 2
        return resize_rel_pos_bias_table_simple(value, new_window_size=window, new_bias_shape=tuple(own.shape))
    raise ModelError(
        f"{source}: weight {key!r} has shape {tuple(value.shape)}, the backbone needs {tuple(own.shape)} (is it the "
        f"same model size?)"
    )
