"""Peak-memory probe for the estimator: ``python -m tests.helpers.rsshelper MODEL TILES OUT CHUNK_TILES``.

Runs `DeepDiscEstimator` with the stand-in network in a fresh process and prints ``PEAK_RSS_KB <n>`` (the
process's own peak resident set size, ``VmHWM``: `rail.deepdisc.memory`; ``ru_maxrss`` would start at the
parent's size). `make_big_tileset` writes test files of any
length chunk by chunk, so making them does not need the memory being measured.
"""

import sys

from rail.deepdisc.memory import peak_rss_mb
from rail.deepdisc.tileset.writer import TileSetWriter
from tests.helpers import fakenet
from tests.helpers.tilesets import make_tileset

TILE_SIZE = 192
PIECE_TILES = 12
ID_STRIDE = 100_000


def make_big_tileset(path, bands, *, n_tiles, size=TILE_SIZE):
    """A TileSet file of ``n_tiles`` tiles (written in pieces of `PIECE_TILES`)."""
    with TileSetWriter(path, bands, 0.03, (size, size)) as writer:
        for piece, t0 in enumerate(range(0, n_tiles, PIECE_TILES)):
            ts = make_tileset(n_tiles=min(PIECE_TILES, n_tiles - t0), size=size, bands=bands,
                              objects_per_tile=5, seed=piece)
            ts.objects["object_id"] = ts.objects["object_id"] + piece * ID_STRIDE
            writer.append(ts)
    return path


def main(model, tiles, out, chunk_tiles):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    fakenet.install()
    stage = DeepDiscEstimator.make_stage(name="rss", model=model, output=out, chunk_tiles=int(chunk_tiles),
                                         chunk_size=10**9, progress_bar=False)
    stage.estimate(tiles)
    print("PEAK_RSS_KB", round(peak_rss_mb() * 1024))


if __name__ == "__main__":
    main(*sys.argv[1:5])
