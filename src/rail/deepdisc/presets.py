"""Filter presets: named NIRCam band lists, as data.

A preset is an ordered band list; TileSets, models and simulations refer to presets by name. The order is the
channel order of the images (blue to red).

============== ========================================================================
name           bands
============== ========================================================================
``JADES9``     F090W F115W F150W F200W F277W F335M F356W F410M F444W (Merz et al. 2025)
``NEXUS6``     F090W F115W F150W F200W F356W F444W
``COSMOSWEB4`` F115W F150W F277W F444W
============== ========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import Option

__all__ = ["FILTER_PRESETS", "NIRCAM_BANDS", "BANDS", "get_preset", "resolve_bands", "split_band_list", "parse_bands"]

#: Every NIRCam band the package knows, blue to red (pivot wavelength order).
NIRCAM_BANDS: tuple[str, ...] = (
    "F070W", "F090W", "F115W", "F140M", "F150W", "F162M", "F182M", "F200W", "F210M",
    "F250M", "F277W", "F300M", "F335M", "F356W", "F360M", "F410M", "F430M", "F444W",
    "F460M", "F480M",
)

FILTER_PRESETS: dict[str, tuple[str, ...]] = {
    "JADES9": ("F090W", "F115W", "F150W", "F200W", "F277W", "F335M", "F356W", "F410M", "F444W"),
    "NEXUS6": ("F090W", "F115W", "F150W", "F200W", "F356W", "F444W"),
    "COSMOSWEB4": ("F115W", "F150W", "F277W", "F444W"),
}


def get_preset(name: str) -> tuple[str, ...]:
    """Return the band list of a named filter preset.

    Parameters
    ----------
    name : str
        Preset name, case-insensitive (``JADES9``, ``NEXUS6``, ``COSMOSWEB4``).

    Returns
    -------
    tuple of str
        Band names in channel order.

    Raises
    ------
    ConfigError
        If the preset is unknown.

    Examples
    --------
    >>> get_preset("nexus6")
    ('F090W', 'F115W', 'F150W', 'F200W', 'F356W', 'F444W')
    """
    key = name.strip().upper()
    if key not in FILTER_PRESETS:
        raise ConfigError(f"unknown filter preset {name!r}: choose one of {', '.join(FILTER_PRESETS)}")
    return FILTER_PRESETS[key]


def resolve_bands(bands: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a preset name or an explicit band list into a validated band tuple.

    Parameters
    ----------
    bands : str or sequence of str
        A preset name (``"JADES9"``) or band names (``["F150W", "F444W"]``).

    Returns
    -------
    tuple of str
        Upper-case band names, in the given (or preset) order.

    Raises
    ------
    ConfigError
        If a band is unknown, repeated, or the list is empty.

    Examples
    --------
    >>> resolve_bands(["f150w", "F444W"])
    ('F150W', 'F444W')
    """
    if isinstance(bands, str):
        return get_preset(bands)
    out = tuple(str(b).strip().upper() for b in bands)
    if not out:
        raise ConfigError("band list is empty: give a preset name or at least one band")
    unknown = [b for b in out if b not in NIRCAM_BANDS]
    if unknown:
        raise ConfigError(f"unknown NIRCam band(s) {', '.join(unknown)}: known bands are {' '.join(NIRCAM_BANDS)}")
    if len(set(out)) != len(out):
        raise ConfigError(f"band list {' '.join(out)} repeats a band")
    return out


def split_band_list(text: str) -> str | tuple[str, ...]:
    """Read a band option as typed on a command line or in a configuration file.

    Parameters
    ----------
    text : str
        A preset name (``"JADES9"``) or comma-separated bands (``"F150W,F444W"``; empty items are skipped).

    Returns
    -------
    str or tuple of str
        The preset name unchanged, or the bands as given; `resolve_bands` validates either.

    Examples
    --------
    >>> split_band_list("F150W,F444W,")
    ('F150W', 'F444W')
    >>> split_band_list("JADES9")
    'JADES9'
    """
    return text if "," not in text else tuple(b for b in text.split(",") if b)


def parse_bands(value: str | Sequence[str]) -> tuple[str, ...]:
    """Read a band option given anywhere: a preset, comma-separated bands, or a list (of bands or one preset).

    Examples
    --------
    >>> parse_bands("F150W,f444w")
    ('F150W', 'F444W')
    >>> parse_bands(["COSMOSWEB4"])
    ('F115W', 'F150W', 'F277W', 'F444W')
    """
    if isinstance(value, str):
        return resolve_bands(split_band_list(value))
    value = tuple(value)
    if len(value) == 1 and isinstance(value[0], str) and ("," in value[0] or value[0].upper() in FILTER_PRESETS):
        return resolve_bands(split_band_list(value[0]))
    return resolve_bands(value)


#: The band option of the simulator, the data preparation and pretraining (``--preset`` on their command lines
#: except ``deepdisc pretrain --bands``), stored resolved as a band tuple.
BANDS = Option("bands", "JADES9", "filter preset (JADES9, NEXUS6, COSMOSWEB4) or comma-separated band list, in "
               "channel order", type=str, convert=parse_bands, flag="preset")
