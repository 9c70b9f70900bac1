"""Errors and warnings raised by pz-rail-deepdisc.

Every reader and public function raises one of these project errors with a message that names the file or
parameter, the problem and, where there is one, the fix; the command line prints that one line and exits 2.
"""

__all__ = [
    "DeepDiscError",
    "TileSetError",
    "ModelError",
    "ConfigError",
    "DustMapError",
    "PrepError",
    "DeepDiscWarning",
    "NoDetectionsWarning",
    "PrepWarning",
]


class DeepDiscError(ValueError):
    """Base class of the project's input errors (bad file, bad option).

    The message is always one line: line breaks (e.g. of a third-party error quoted in it) become spaces.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (" ".join(args[0].split()),)
        super().__init__(*args)


class TileSetError(DeepDiscError):
    """A TileSet file or in-memory TileSet breaks the ``deepdisc-tiles`` contract."""


class ModelError(DeepDiscError):
    """A model artifact is invalid or does not match the data it is applied to."""


class ConfigError(DeepDiscError):
    """A configuration option is unknown or out of range."""


class DustMapError(DeepDiscError):
    """A Milky-Way dust map is missing or unreadable."""


class PrepError(DeepDiscError):
    """A mosaic, segmentation image or catalog given to the tiler is unreadable or inconsistent."""


class DeepDiscWarning(UserWarning):
    """Base class of the project's warnings (expected but notable outcomes)."""


class NoDetectionsWarning(DeepDiscWarning):
    """Some tiles produced no detection: their objects fall back to forced (catalog-box) redshifts."""


class PrepWarning(DeepDiscWarning):
    """Tiling or spec-z compilation met something notable (a missing column, objects without coverage)."""
