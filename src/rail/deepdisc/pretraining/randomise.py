"""Label-complete training chunks for pretraining: simulated on the fly with randomised nuisances, or read.

Pretraining (`rail.deepdisc.pretraining.loop`) streams chunks of tiles in which every object carries its true
redshift as its label (``objects/redshift`` := ``redshift_true``). Two sources:

`SimulatedChunks`
    Each chunk is a fresh simulated field: seed ``(seed, epoch, chunk, rank)``, and the nuisance settings of
    the simulator drawn uniformly from the `NuisanceRanges` (domain randomisation: PSF width, depth, noise
    correlation, SED mix, sizes), so the network cannot learn one simulator configuration's quirks. The SED
    families are randomised per galaxy instead (the base settings' ``sed_library``, e.g. ``cosmos+cww``: each
    galaxy draws its family), so every chunk and every batch holds galaxies of every family. Nothing is
    kept between chunks, so any number of tiles can be seen with flat memory.
`FileChunks`
    Chunks of whole tiles read from label-complete TileSet files (e.g. made once with ``deepdisc simulate``),
    a chunk at a time; the files must hold ``redshift_true``.

Both are deterministic functions of ``(epoch, chunk, rank)``, which is what makes a resumed pretraining run
identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError, TileSetError
from rail.deepdisc.options import check_fields, option, values_of
from rail.deepdisc.simulation import SimulationSettings, simulate_tileset
from rail.deepdisc.simulation.settings import SIMULATION_OPTIONS
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.io import read_tileset
from rail.deepdisc.tileset.validation import validate_tileset

__all__ = ["NuisanceRanges", "SimulatedChunks", "FileChunks", "label_complete", "chunk_seed"]

TRUE_REDSHIFT = "redshift_true"
#: `chunk_seed` streams: training chunks, the validation set.
TRAINING_STREAM, VALIDATION_STREAM = 0, 1
# spec-z selection settings: irrelevant here (every object is labelled with its true redshift)
_LABEL_SETTINGS = ("label_fraction", "label_bias_mag", "wrong_label_fraction")


def _range(name: str, low: float, high: float):
    """The option ``name`` of `NuisanceRanges`: a [low, high] range of the `SimulationSettings` option ``name``."""
    sim = SIMULATION_OPTIONS[name]
    return option((low, high), f"[low, high] range drawn for every chunk: {sim.help}", interval=True,
                  metavar=("LOW", "HIGH"))


@dataclass(frozen=True)
class NuisanceRanges:
    """Uniform ranges ``(low, high)`` of the simulator's nuisance settings drawn for every chunk.

    Each field names a `SimulationSettings` field; ``low == high`` fixes it. The defaults bracket the JADES
    deep fields generously (PSF width +-15-25%, depth -0.8..+0.4 mag, drizzle-like noise correlation up to 1
    px, starburst share x0.5-2, line strengths x0.5-1.5, passive fraction 0.15-0.35, sizes x0.8-1.25).

    Parameters
    ----------
    psf_fwhm_scale, depth_offset, noise_correlation_px, starburst_weight, emission_line_scale,
    passive_fraction, size_scale : tuple of 2 float
        Ranges (units of the `SimulationSettings` fields: factor, mag, pixels, factor, factor, fraction,
        factor).
    """

    psf_fwhm_scale: tuple[float, float] = _range("psf_fwhm_scale", 0.85, 1.25)
    depth_offset: tuple[float, float] = _range("depth_offset", -0.8, 0.4)
    noise_correlation_px: tuple[float, float] = _range("noise_correlation_px", 0.0, 1.0)
    starburst_weight: tuple[float, float] = _range("starburst_weight", 0.5, 2.0)
    emission_line_scale: tuple[float, float] = _range("emission_line_scale", 0.5, 1.5)
    passive_fraction: tuple[float, float] = _range("passive_fraction", 0.15, 0.35)
    size_scale: tuple[float, float] = _range("size_scale", 0.8, 1.25)

    def __post_init__(self) -> None:
        check_fields(self)
        for corner in (0, 1):  # SimulationSettings validates the extremes
            SimulationSettings(**{f.name: getattr(self, f.name)[corner] for f in dataclasses.fields(self)})

    @classmethod
    def fixed(cls) -> NuisanceRanges:
        """Ranges of zero width at the simulator defaults (no randomisation)."""
        base = SimulationSettings()
        return cls(**{f.name: (getattr(base, f.name),) * 2 for f in dataclasses.fields(cls)})

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """One value per setting, uniform in its range (fields in declaration order)."""
        return {f.name: float(rng.uniform(*getattr(self, f.name))) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, list[float]]:
        """Plain data for the artifact's provenance."""
        return values_of(self)


def chunk_seed(seed: int, epoch: int, chunk: int, rank: int = 0, *, stream: int = TRAINING_STREAM) -> int:
    """Independent seed of one chunk: a 31-bit integer from ``SeedSequence([stream, seed, epoch, chunk, rank])``.

    ``stream`` separates uses (`TRAINING_STREAM`, `VALIDATION_STREAM`); all arguments are integers >= 0.
    """
    state = np.random.SeedSequence([int(stream), int(seed), int(epoch), int(chunk), int(rank)]).generate_state(1)
    return int(state[0] >> 1)


def label_complete(tileset: TileSet) -> TileSet:
    """Return ``tileset`` with every object's label set to its true redshift.

    Raises
    ------
    TileSetError
        If the objects have no ``redshift_true`` column (not a simulated TileSet).
    """
    if TRUE_REDSHIFT not in tileset.objects:
        raise TileSetError(
            f"{tileset.source}: objects have no '{TRUE_REDSHIFT}' column; pretraining needs label-complete "
            f"simulated TileSets (deepdisc simulate writes it)"
        )
    objects = {**tileset.objects, "redshift": np.asarray(tileset.objects[TRUE_REDSHIFT], dtype=np.float64)}
    return dataclasses.replace(tileset, objects=objects)


class SimulatedChunks:
    """Chunks simulated on the fly (see the module docstring).

    Parameters
    ----------
    base : SimulationSettings
        Bands, tile size, pixel scale and every setting not randomised; ``n_tiles`` and ``seed`` are
        replaced per chunk.
    ranges : NuisanceRanges
        Randomised settings.
    tiles_per_chunk : int
        Tiles of one chunk (per rank under DDP).
    chunks_per_epoch : int
        Chunks of one epoch.
    seed : int
        Master seed.
    """

    def __init__(
        self, base: SimulationSettings, ranges: NuisanceRanges, *, tiles_per_chunk: int, chunks_per_epoch: int,
        seed: int,
    ) -> None:
        if int(tiles_per_chunk) < 2 or int(chunks_per_epoch) < 1:
            raise ConfigError(
                f"tiles_per_chunk must be >= 2 and chunks_per_epoch >= 1, got {tiles_per_chunk} and "
                f"{chunks_per_epoch}"
            )
        self.base, self.ranges, self.seed = base, ranges, int(seed)
        self.tiles_per_chunk, self.chunks_per_epoch = int(tiles_per_chunk), int(chunks_per_epoch)
        self.bands, self.pixel_scale = tuple(base.bands), float(base.pixel_scale)
        self.per_rank = True  # under DDP each rank simulates its own chunk

    def settings_for(self, epoch: int, chunk: int, rank: int = 0) -> SimulationSettings:
        """The simulation settings of one chunk (nuisances drawn, seed set)."""
        seed = chunk_seed(self.seed, epoch, chunk, rank)
        draws = self.ranges.draw(np.random.default_rng(seed))
        return dataclasses.replace(self.base, n_tiles=self.tiles_per_chunk, seed=seed, **draws)

    def chunk(self, epoch: int, chunk: int, rank: int = 0) -> TileSet:
        """Simulate one label-complete chunk."""
        settings = self.settings_for(epoch, chunk, rank)
        return label_complete(simulate_tileset(settings, progress_bar=False))

    def validation(self, n_tiles: int) -> TileSet:
        """A fixed validation set at the midpoint of every range (its own seed; never trained on)."""
        mid = {k: 0.5 * (lo + hi) for k, (lo, hi) in self.ranges.to_dict().items()}
        seed = chunk_seed(self.seed, 0, 0, stream=VALIDATION_STREAM)
        settings = dataclasses.replace(self.base, n_tiles=int(n_tiles), seed=seed, **mid)
        return label_complete(simulate_tileset(settings, progress_bar=False))

    def describe(self) -> dict:
        """Provenance of the pretraining data."""
        base = dataclasses.asdict(self.base)
        for key in ("n_tiles", "seed", *_LABEL_SETTINGS, *self.ranges.to_dict()):
            base.pop(key, None)
        return {
            "source": "simulated on the fly (rail.deepdisc.simulation)",
            "tiles_per_chunk": self.tiles_per_chunk,
            "chunks_per_epoch": self.chunks_per_epoch,
            "randomisation": self.ranges.to_dict(),
            "fixed_settings": {k: _plain(v) for k, v in base.items()},
        }


class FileChunks:
    """Chunks of whole tiles read from label-complete TileSet files, one chunk in memory at a time.

    Parameters
    ----------
    paths : sequence of str or Path
        TileSet files with ``redshift_true`` (all with the same bands and pixel scale).
    tiles_per_chunk : int
        Tiles per chunk; chunk ``c`` of every epoch is the ``c``-th run of tiles through the files.
    """

    def __init__(self, paths: Sequence[str | Path], *, tiles_per_chunk: int) -> None:
        if not paths:
            raise ConfigError("FileChunks: no TileSet files given")
        if int(tiles_per_chunk) < 2:
            raise ConfigError(f"tiles_per_chunk must be >= 2, got {tiles_per_chunk}")
        self.paths = [Path(p) for p in paths]
        summaries = [validate_tileset(p) for p in self.paths]
        first = summaries[0]
        for path, s in zip(self.paths, summaries):
            if tuple(s.bands) != tuple(first.bands) or not math.isclose(s.pixel_scale, first.pixel_scale):
                raise TileSetError(f"{path}: bands or pixel scale differ from {self.paths[0]}")
        self.bands, self.pixel_scale = tuple(first.bands), float(first.pixel_scale)
        self.tiles_per_chunk = int(tiles_per_chunk)
        self._runs = [
            (path, a, min(a + self.tiles_per_chunk, s.n_tiles))
            for path, s in zip(self.paths, summaries)
            for a in range(0, s.n_tiles, self.tiles_per_chunk)
        ]
        self.chunks_per_epoch = len(self._runs)
        self.per_rank = False  # every rank reads the same chunk and trains on its shard of it

    def chunk(self, epoch: int, chunk: int, rank: int = 0) -> TileSet:
        """Read chunk ``chunk`` (the same every epoch; the training order within it changes)."""
        path, a, b = self._runs[chunk]
        return label_complete(read_tileset(path, tiles=slice(a, b), validate=False))

    def validation(self, n_tiles: int) -> TileSet:
        """The first ``n_tiles`` tiles of the last file (also trained on: files are finite)."""
        path = self.paths[-1]
        return label_complete(read_tileset(path, tiles=slice(0, int(n_tiles)), validate=False))

    def describe(self) -> dict:
        """Provenance of the pretraining data."""
        return {
            "source": "TileSet files",
            "files": [str(p) for p in self.paths],
            "tiles_per_chunk": self.tiles_per_chunk,
            "chunks_per_epoch": self.chunks_per_epoch,
        }


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
