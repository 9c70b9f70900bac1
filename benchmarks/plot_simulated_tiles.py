"""False-colour view of a few simulated tiles (blue F090W+F115W, green F150W+F200W, red F277W..F444W).

Run: PYTHONPATH=src python benchmarks/plot_simulated_tiles.py [-o docs/simulated_tiles.png] [--tiles 6]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rail.deepdisc.simulation import SimulationSettings, simulate_tileset

GROUPS = {
    "blue": ("F090W", "F115W"),
    "green": ("F150W", "F200W"),
    "red": ("F277W", "F335M", "F356W", "F410M", "F444W"),
}
STRETCH_NJY = 0.15  # asinh softening, nJy per pixel (about the pixel noise)
RANGE_NJY = 40.0
DPI = 90


def false_colour(image, bands):
    chans = []
    for group in GROUPS.values():
        idx = [bands.index(b) for b in group if b in bands]
        chans.append(image[idx].mean(axis=0))
    rgb = np.arcsinh(np.stack(chans, axis=-1) / STRETCH_NJY) / np.arcsinh(RANGE_NJY / STRETCH_NJY)
    return np.clip(rgb, 0, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-o", "--output", default="docs/simulated_tiles.png")
    p.add_argument("--tiles", type=int, default=6)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    ts = simulate_tileset(
        SimulationSettings(n_tiles=args.tiles, tile_size=args.size, seed=args.seed), progress_bar=False
    )
    cols = min(3, args.tiles)
    rows = int(np.ceil(args.tiles / cols))
    fig, axes = plt.subplots(rows, cols * 2, figsize=(cols * 6.4, rows * 3.3))
    axes = np.atleast_2d(axes)
    for t in range(args.tiles):
        ax_img, ax_seg = axes[t // cols, 2 * (t % cols)], axes[t // cols, 2 * (t % cols) + 1]
        ax_img.imshow(false_colour(ts.images[t], ts.bands), origin="lower")
        obj = ts.tile_objects(t)
        for x, y, z, zs in zip(obj["x"], obj["y"], obj["redshift_true"], obj["redshift"]):
            label = f"{z:.1f}" + ("*" if np.isfinite(zs) else "")
            ax_img.annotate(label, (x, y), color="w", fontsize=6, xytext=(3, 3), textcoords="offset points")
        seg = ts.segmaps[t] % 97 + (ts.segmaps[t] > 0)
        ax_seg.imshow(
            np.where(ts.segmaps[t] > 0, seg, np.nan), origin="lower", cmap="tab20", interpolation="nearest"
        )
        ax_seg.set_facecolor("k")
        for ax in (ax_img, ax_seg):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_img.set_title(f"tile {t}: {len(obj['x'])} objects (z true, * = spec-z)", fontsize=7)
        ax_seg.set_title("segmentation", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=DPI)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
