"""What the simulator's realism options do to one field: bulge+disc colour gradients, photon noise, photutils.

Top row: the largest bright two-component galaxy of the field (same seed) drawn with one Sersic profile and
one SED (``bulge_disc=False``) and as a passive bulge plus a disc (the default), in false colour (blue
F090W+F115W, green F150W+F200W, red F277W..F444W), and their radial F090W-F277W colour profiles from the
noiseless models smoothed to a common resolution. Bottom row: the noiseless-model
segmentation (``detection="model"``), the photutils segmentation of the noisy images (``detection="photutils"``:
spurious segments hatched, model-catalogued objects that dominate no segment crossed), and the pixel noise
variance against the model flux (in units of the sky), with the Poisson prediction 1 + m / b.

Run: PYTHONPATH=src python benchmarks/plot_simulator_realism.py [-o docs/simulator_realism.png]
"""

import argparse
import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from plot_simulated_tiles import false_colour
from scipy.ndimage import gaussian_filter

from rail.deepdisc.simulation import FieldContext, SimulationSettings, make_wcs, psf_fwhm, simulate_field

SHAPE = (192, 192)
DPI = 90
MATCHED_FWHM = 0.15  # arcsec: both colour bands smoothed to this resolution for the profiles
COLOUR_BANDS = ("F090W", "F277W")  # rest UV - optical above z ~ 1: the 4000 A break of the bulge


def _field(settings, seed):
    ctx = FieldContext(settings)
    return simulate_field(ctx, SHAPE, make_wcs(SHAPE, settings.pixel_scale), np.random.default_rng(seed))


def _pick_seed(settings, seeds):
    """The seed whose field has the largest bright galaxy with a visible bulge."""
    best, best_seed = -1.0, seeds[0]
    for seed in seeds:
        field = _field(settings, seed)
        row = _galaxy(field)
        score = float(field.catalog["true_r_e_arcsec"][row]) if row >= 0 else -1.0
        if score > best:
            best, best_seed = score, seed
    return best_seed


def _galaxy(field):
    """Index (catalog row) of the largest bright galaxy with a visible bulge."""
    cat = field.catalog
    ok = (cat["true_bulge_to_total"] > 0.2) & (cat["true_bulge_to_total"] < 0.7) & (cat["mag_F444W"] < 26.0)
    ok &= cat["redshift_true"] > 1.0
    return int(np.argmax(np.where(ok, cat["true_r_e_arcsec"], -1.0))) if ok.any() else -1


def _cutout(field, row, half):
    x, y = (int(round(v)) for v in field.rendered.segment_xy[row])
    h, w = field.rendered.segmap.shape
    x, y = min(max(x, half), w - half), min(max(y, half), h - half)
    return (slice(y - half, y + half), slice(x - half, x + half)), (x, y)


def _radial_colour(model, settings, centre, edges):
    """Colour profile after smoothing both bands to a common Gaussian resolution (PSF matching, approximately)."""
    i, j = (settings.bands.index(b) for b in COLOUR_BANDS)
    matched = []
    for b in (i, j):
        extra = np.sqrt(max(MATCHED_FWHM**2 - psf_fwhm(settings.bands[b], settings) ** 2, 0.0))
        matched.append(gaussian_filter(model[b], extra / 2.3548 / settings.pixel_scale))
    yy, xx = np.indices(model.shape[1:])
    r = np.hypot(xx - centre[0], yy - centre[1]) * settings.pixel_scale
    idx = np.digitize(r.ravel(), edges)
    fi = np.bincount(idx, weights=matched[0].ravel(), minlength=len(edges) + 1)[1:-1]
    fj = np.bincount(idx, weights=matched[1].ravel(), minlength=len(edges) + 1)[1:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return -2.5 * np.log10(fi / fj)


def _noise_panel(ax, field):
    r = field.rendered
    x, y = [], []
    for b in range(len(r.sigma)):
        sky = r.gain[b] * r.sigma[b] ** 2  # nJy per pixel: g = b / sigma^2
        x.append(r.model[b].ravel() / sky)
        y.append(((r.images[b] - r.model[b]) / r.sigma[b]).ravel() ** 2)
    x, y = np.concatenate(x), np.concatenate(y)
    edges = np.geomspace(1e-3, max(x.max(), 2e-3), 16)
    idx = np.digitize(x, edges)
    centres, means, errs = [], [], []
    for k in range(1, len(edges)):
        sel = idx == k
        if sel.sum() >= 20:
            centres.append(np.sqrt(edges[k - 1] * edges[k]))
            means.append(y[sel].mean())
            errs.append(y[sel].std() / np.sqrt(sel.sum()))
    ax.errorbar(centres, means, errs, fmt="o", ms=3, label="simulated pixels (all bands)")
    grid = np.geomspace(edges[0], edges[-1], 100)
    ax.plot(grid, 1 + grid, "k-", lw=1, label="sky + Poisson: 1 + m / b")
    ax.axhline(1.0, color="0.5", ls=":", lw=1, label="sky only")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model flux / sky background per pixel (m / b)", fontsize=8)
    ax.set_ylabel("noise variance / sky variance", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("source photon noise (photon_noise=True)", fontsize=8)


def _segmap(ax, field, title, truth_xy=None):
    seg = field.rendered.segmap
    shown = np.where(seg > 0, seg % 19 + 1, np.nan)
    ax.imshow(shown, origin="lower", cmap="tab20", interpolation="nearest")
    ax.set_facecolor("k")
    cat = field.catalog
    if "spurious" in cat:
        spurious = np.isin(seg, cat["seg_id"][cat["spurious"]])
        ax.contourf(spurious, levels=[0.5, 1.5], colors="none", hatches=["////"], origin="lower")
        ax.contour(spurious, levels=[0.5], colors="w", linewidths=0.6, origin="lower")
    if truth_xy is not None:
        ax.scatter(*truth_xy.T, marker="x", s=30, c="w", lw=1.0)
    ax.set_title(title, fontsize=8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="docs/simulator_realism.png")
    p.add_argument("--seeds", type=int, default=40, help="seeds searched for a field with a large bulgy galaxy")
    args = p.parse_args()
    base = SimulationSettings()
    seed = _pick_seed(base, list(range(args.seeds)))
    two = _field(base, seed)
    one = _field(dataclasses.replace(base, bulge_disc=False), seed)
    noisy = _field(dataclasses.replace(base, detection="photutils"), seed)
    bands = base.bands
    fig, axes = plt.subplots(2, 3, figsize=(12.6, 8.6))
    row = _galaxy(two)
    window, centre = _cutout(two, row, 24)
    for ax, field, title in ((axes[0, 0], one, "one Sersic profile, one SED (bulge_disc=False)"),
                             (axes[0, 1], two, "passive bulge + disc (bulge_disc=True)")):
        ax.imshow(false_colour(field.rendered.images[(slice(None), *window)], bands), origin="lower")
        ax.set_title(title, fontsize=8)
    edges = np.arange(0.0, 0.42, 0.03)
    mid = 0.5 * (edges[1:] + edges[:-1])
    for field, label, style in ((one, "one profile, one SED", "--"), (two, "bulge + disc", "-")):
        axes[0, 2].plot(mid, _radial_colour(field.rendered.model, base, two.rendered.segment_xy[row], edges), style,
                        label=label)
    bt, z = two.catalog["true_bulge_to_total"][row], two.catalog["redshift_true"][row]
    axes[0, 2].set_xlabel("radius, arcsec", fontsize=8)
    axes[0, 2].set_ylabel(f"{COLOUR_BANDS[0]} - {COLOUR_BANDS[1]} (noiseless, both at {MATCHED_FWHM}\" FWHM), mag",
                          fontsize=8)
    axes[0, 2].set_title(f"radial colour of this galaxy (z = {z:.2f}, B/T = {bt:.2f}): a red core", fontsize=8)
    axes[0, 2].legend(fontsize=7)
    _segmap(axes[1, 0], two, f"model segmentation: {len(two.catalog['x'])} objects")
    kept = np.isin(np.flatnonzero(two.rendered.detected), np.flatnonzero(noisy.rendered.detected))
    missed = two.rendered.segment_xy[~kept]
    n_sp = int(noisy.catalog["spurious"].sum())
    _segmap(axes[1, 1], noisy, f"photutils on the noisy stack: {len(noisy.catalog['x'])} rows, {n_sp} spurious "
            f"(hatched), {len(missed)} missed (x)", missed)
    _noise_panel(axes[1, 2], two)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"simulator realism options, one {SHAPE[0]}x{SHAPE[1]} field (seed {seed}, 0.03\"/px)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=DPI)
    print(f"wrote {args.output} (seed {seed})")


if __name__ == "__main__":
    main()
