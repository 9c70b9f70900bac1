"""pz-rail-deepdisc: image-based photometric redshifts for JWST deep fields (DeepDISC) as a RAIL plugin.

The library lives in one module per concern (``tiles``, ``tileio``, ``presets``, ``artifact``, ...); this
package re-exports the public API. The RAIL stages (`DeepDiscInformer`, `DeepDiscEstimator`, ...) are imported
lazily, so ``import rail.deepdisc`` stays light.
"""

from __future__ import annotations

import importlib
import logging

from .exceptions import (
    ConfigError,
    DeepDiscError,
    DeepDiscWarning,
    DustMapError,
    ModelError,
    NoDetectionsWarning,
    TileSetError,
)
from .presets import FILTER_PRESETS, get_preset, resolve_bands
from .tileio import (
    TileSetSummary,
    TileSetWriter,
    iter_tileset,
    plan_chunks,
    read_tileset,
    validate_tileset,
    write_tileset,
)
from .tiles import TileSet, concatenate_tilesets, empty_objects, object_columns

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - running from a source tree without an install
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> module holding it; imported on first access (module-level __getattr__, PEP 562)
_LAZY = {
    "DeepDiscInformer": "rail.estimation.algos.deepdisc",
    "DeepDiscEstimator": "rail.estimation.algos.deepdisc",
    "TileSetHandle": "rail.deepdisc.handles",
    "DeepDiscModelHandle": "rail.deepdisc.handles",
}

__all__ = [
    "ConfigError",
    "DeepDiscError",
    "DeepDiscWarning",
    "DustMapError",
    "ModelError",
    "NoDetectionsWarning",
    "TileSetError",
    "FILTER_PRESETS",
    "get_preset",
    "resolve_bands",
    "TileSet",
    "TileSetSummary",
    "TileSetWriter",
    "concatenate_tilesets",
    "empty_objects",
    "object_columns",
    "iter_tileset",
    "plan_chunks",
    "read_tileset",
    "validate_tileset",
    "write_tileset",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
