"""The backbone names and what is known of them without torch: stage channels, transformer specs, tile sizes.

`BACKBONES` (every ``backbone`` option value -> channels of its four stages at strides 4, 8, 16, 32) joins the
ResNets (`RESNETS`, built by `rail.deepdisc.model.backbone`) and the ``timm`` transformers (`TRANSFORMERS`,
built by `rail.deepdisc.model.transformer`). `rail.deepdisc.model.config` reads it for the option's choices, so
the stages and the command line know the names without importing torch or timm.
"""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "RESNETS",
    "TransformerSpec",
    "TRANSFORMERS",
    "BACKBONES",
    "TILE_MULTIPLE",
    "is_transformer",
    "check_tile_size",
]

#: Supported ResNets -> channels of layers 1-4.
RESNETS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}


@dataclass(frozen=True)
class TransformerSpec:
    """A registered transformer backbone.

    Attributes
    ----------
    family : {"mvitv2", "swin"}
    timm_name : str
        The ``timm`` model (architecture only; built with ``pretrained=False``).
    channels : tuple of int
        Channels of the four stages (strides 4, 8, 16, 32).
    """

    family: str
    timm_name: str
    channels: tuple[int, int, int, int]


#: Transformer backbones by ``backbone`` name.
TRANSFORMERS: dict[str, TransformerSpec] = {
    "mvitv2_tiny": TransformerSpec("mvitv2", "mvitv2_tiny", (96, 192, 384, 768)),
    "mvitv2_small": TransformerSpec("mvitv2", "mvitv2_small", (96, 192, 384, 768)),
    "mvitv2_base": TransformerSpec("mvitv2", "mvitv2_base", (96, 192, 384, 768)),
    "swin_tiny": TransformerSpec("swin", "swin_tiny_patch4_window7_224", (96, 192, 384, 768)),
    "swin_small": TransformerSpec("swin", "swin_small_patch4_window7_224", (96, 192, 384, 768)),
}
#: Every backbone (the ``backbone`` choices) -> channels of its four stages (strides 4, 8, 16, 32).
BACKBONES: dict[str, tuple[int, int, int, int]] = {
    **RESNETS,
    **{name: spec.channels for name, spec in TRANSFORMERS.items()},
}
#: Tiles fed to a transformer backbone are square with a side that is a multiple of this (the total stride).
TILE_MULTIPLE = 32


def is_transformer(name: str) -> bool:
    """Whether backbone ``name`` is a transformer (built for one tile size)."""
    return name in TRANSFORMERS


def check_tile_size(name: str, tile_size: int) -> int:
    """Return ``tile_size`` if backbone ``name`` can be built for it, else raise `ConfigError`.

    Parameters
    ----------
    name : str
        A key of `TRANSFORMERS`.
    tile_size : int
        Side of the square tiles, pixels.
    """
    size = int(tile_size)
    if size < TILE_MULTIPLE or size % TILE_MULTIPLE:
        raise ConfigError(
            f"backbone {name} needs square tiles whose side is a multiple of {TILE_MULTIPLE} px (its total "
            f"stride), got {tile_size} px; re-tile the data (e.g. tile_size 64, 128 or 256) or use a ResNet"
        )
    return size
