"""Figures of the evaluation report, each a pure function of arrays returning a matplotlib `Figure`.

Figures are built with the object-oriented API (`matplotlib.figure.Figure`, rendered by Agg), so importing
this module never changes the user's pyplot backend. `save_figure` writes a PNG atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.evaluation.metrics import OUTLIER_THRESHOLD

#: Reference line of the completeness figure (the detection completeness of Merz et al. 2025 at F444W < 28).
COMPLETENESS_GOAL = 0.9

__all__ = ["save_figure", "plot_zphot_vs_ztrue", "plot_pit_histogram", "plot_coverage", "plot_nz",
           "plot_loss_curves", "plot_metrics_vs_bin", "plot_completeness", "plot_normalised_residuals",
           "plot_example_tiles", "false_colour", "MIN_PER_BIN", "note_if_empty"]

DPI = 120
_MAX_ERRORBARS = 250  # objects drawn with 68% error bars (a random subset beyond that)
_DENSITY_MIN_OBJECTS = 2000  # below this, points instead of a 2-D histogram
#: Bins with fewer objects are not drawn in the per-bin figures.
MIN_PER_BIN = 5
_STRETCH_PERCENTILES = (1.0, 99.5)
_ASINH_SOFTENING = 0.1
_METRIC_LABELS = {"bias": "bias = median[Δz/(1+z)]", "sigma_iqr": "σ_IQR of Δz/(1+z)",
                  "outlier_fraction": f"η (|Δz|/(1+z) > {OUTLIER_THRESHOLD})"}
_MAX_LABELS_PER_TILE = 12  # redshift labels on the largest boxes only, to stay readable
_SERIES_LABELS = {"train_loss": "training loss (all terms)", "train_redshift_nll": "training redshift NLL",
                  "val_nll": "validation NLL per object",
                  "val_loss": "validation loss", "lr": "learning rate"}
_SUBSET_STYLE = {"all": ("k", "o"), "detected": ("tab:blue", "s"), "forced": ("tab:orange", "^"),
                 "spec_rep": ("tab:green", "D"), "not_spec_rep": ("tab:red", "v")}


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save a figure as PNG through a temporary file beside ``path``, then rename (atomic)."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def _metrics_text(m: Mapping | None) -> str:
    if not m:
        return ""
    return (f"N = {int(m['n'])}\nbias = {m['bias']:+.4f}\nσ_IQR = {m['sigma_iqr']:.4f}\n"
            f"η = {100 * m['outlier_fraction']:.1f}%")


def plot_zphot_vs_ztrue(ztrue, zphot, zlo, zhi, *, metrics: Mapping | None = None, truth_label: str = "true",
                        point_label: str = "zmode", seed: int = 0) -> Figure:
    """Photometric versus true redshift: density of all objects plus 68% intervals of a random subset.

    Parameters
    ----------
    ztrue, zphot : array_like, shape (N,)
        Truth and point estimate (objects with NaN are skipped).
    zlo, zhi : array_like, shape (N,)
        Lower and upper edges of each object's central 68% credible interval.
    metrics : mapping, optional
        ``n``, ``bias``, ``sigma_iqr``, ``outlier_fraction`` shown in a box.
    truth_label : str
        Word for the truth ("true", "spectroscopic").
    point_label : str
        Name of the point estimate.
    seed : int
        Seed of the error-bar subset.
    """
    ztrue, zphot = np.asarray(ztrue, float), np.asarray(zphot, float)
    ok = np.isfinite(ztrue) & np.isfinite(zphot)
    zt, zp = ztrue[ok], zphot[ok]
    lo, hi = np.asarray(zlo, float)[ok], np.asarray(zhi, float)[ok]
    top = float(np.nanmax(np.concatenate([zt, zp, [1.0]])) * 1.05)
    fig = Figure(figsize=(6.2, 5.6), layout="constrained")
    ax = fig.add_subplot()
    if len(zt) >= _DENSITY_MIN_OBJECTS:
        h = ax.hexbin(zt, zp, gridsize=60, extent=(0, top, 0, top), bins="log", mincnt=1, cmap="viridis")
        bar = fig.colorbar(h, ax=ax, label="objects per hexagonal cell")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.scatter(zt, zp, s=8, c="tab:blue", alpha=0.6, lw=0, label="objects")
    pick = np.random.default_rng(seed).permutation(len(zt))[:_MAX_ERRORBARS]
    yerr = [np.maximum(zp[pick] - lo[pick], 0), np.maximum(hi[pick] - zp[pick], 0)]
    ax.errorbar(zt[pick], zp[pick], yerr=yerr,
                fmt="none", ecolor="k", elinewidth=0.6, alpha=0.5,
                label=f"68% credible interval ({min(len(zt), _MAX_ERRORBARS)} objects)")
    line = np.array([0.0, top])
    ax.plot(line, line, "r-", lw=1, label="z_phot = z_true")
    for sign in (1, -1):
        ax.plot(line, line + sign * OUTLIER_THRESHOLD * (1 + line), "r--", lw=0.8,
                label=f"|Δz| = {OUTLIER_THRESHOLD}(1+z)" if sign > 0 else None)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"{truth_label} redshift",
           ylabel=f"photometric redshift ({point_label})", title=f"Photometric vs {truth_label} redshift")
    ax.legend(loc="lower right", fontsize=8)
    text = _metrics_text(metrics)
    if text:
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=9,
                bbox=dict(boxstyle="round", fc="white", alpha=0.85))
    return fig


def plot_pit_histogram(pit, *, n_bins: int = 20, ks: float | None = None) -> Figure:
    """Histogram of PIT values with the uniform expectation of calibrated PDFs and its ±1σ band."""
    pit = np.asarray(pit, float)
    pit = pit[np.isfinite(pit)]
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    counts, edges = np.histogram(pit, bins=n_bins, range=(0, 1))
    ax.stairs(counts, edges, fill=True, alpha=0.6, color="tab:blue", label=f"PIT of {len(pit)} objects")
    expected = len(pit) / n_bins
    ax.axhline(expected, color="k", lw=1.2, label="uniform (calibrated PDFs)")
    ax.axhspan(expected - np.sqrt(expected), expected + np.sqrt(expected), color="0.6", alpha=0.3,
               label="±1σ Poisson scatter")
    title = "Probability integral transform"
    if ks is not None and np.isfinite(ks):
        title += f" (KS = {ks:.3f})"
    ax.set(xlim=(0, 1), xlabel="PIT = CDF(z_true)", ylabel="objects per bin", title=title)
    ax.legend(fontsize=8, loc="upper center")
    return fig


def plot_coverage(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, n: int | None = None,
                  title: str = "Credible-interval coverage") -> Figure:
    """Coverage of central credible intervals versus credibility, one line per subset or estimator.

    Parameters
    ----------
    curves : mapping of label -> (levels, coverage)
        The curves to draw.
    n : int, optional
        Objects behind the first curve: draws the ±2σ band expected for calibrated PDFs.
    title : str
        Figure title.
    """
    fig = Figure(figsize=(5.6, 5.2), layout="constrained")
    ax = fig.add_subplot()
    grid = np.linspace(0, 1, 101)
    ax.plot(grid, grid, "k--", lw=1, label="calibrated")
    if n:
        band = 2 * np.sqrt(grid * (1 - grid) / n)
        ax.fill_between(grid, grid - band, grid + band, color="0.7", alpha=0.4, label=f"±2σ for N = {n}")
    for k, (label, (levels, cov)) in enumerate(curves.items()):
        color, marker = _SUBSET_STYLE.get(label, (f"C{k}", "o"))
        ax.plot(levels, cov, marker=marker, ms=4, color=color, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="credibility of the central interval",
           ylabel="fraction of true redshifts inside", title=title)
    ax.text(0.97, 0.03, "below the line: overconfident\nabove: underconfident", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8, color="0.3")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_nz(z, stacked_pdf, true_edges, true_density, *, truth_label: str = "true") -> Figure:
    """Redshift distribution: histogram of the truth and the stacked (mean) p(z) of the same objects."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.stairs(true_density, true_edges, color="k", lw=1.2, label=f"{truth_label} redshifts (histogram)")
    ax.plot(z, stacked_pdf, color="tab:red", lw=1.5, label="stacked photo-z PDFs")
    finite = np.asarray(true_density) > 0
    top = float(np.asarray(true_edges)[1:][finite].max()) * 1.15 if finite.any() else float(np.max(z))
    ax.set(xlim=(0, top), ylim=(0, None), xlabel="redshift", ylabel="N(z) (normalised to unit area)",
           title="Redshift distribution N(z)")
    ax.legend(fontsize=8)
    return fig


def plot_loss_curves(members: Sequence[Mapping[str, np.ndarray]]) -> Figure:
    """Training curves per ensemble member, one panel per series name (e.g. ``train_loss``, ``val_nll``)."""
    names = list(dict.fromkeys(k for m in members for k in m))
    fig = Figure(figsize=(4.6 * max(len(names), 1), 4), layout="constrained")
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for k, member in enumerate(members):
            if name in member:
                y = np.asarray(member[name], float)
                ax.plot(np.arange(1, len(y) + 1), y, color=f"C{k % 10}", lw=1.2, label=f"member {k}")
        label = _SERIES_LABELS.get(name, name.replace("_", " "))
        ax.set(xlabel="epoch", ylabel=label, title=label)
        if len(members) <= 10:
            ax.legend(fontsize=7)
    fig.suptitle("Training curves per ensemble member")
    return fig


def note_if_empty(ax) -> None:
    """Say so on an axes where nothing was drawn (no bin held `MIN_PER_BIN` objects), instead of a blank frame."""
    if not ax.lines and not ax.collections:
        ax.text(0.5, 0.5, f"no bin holds {MIN_PER_BIN} or more objects", transform=ax.transAxes,
                ha="center", va="center", color="0.4")


def _binned(rows: Sequence[Mapping], subset: str, binning: str, key: str):
    sel = [r for r in rows if r["subset"] == subset and r["binning"] == binning and r["n"] >= MIN_PER_BIN]
    x = np.array([r["centre"] for r in sel], float)
    xerr = np.array([0.5 * (r["hi"] - r["lo"]) for r in sel], float)
    return x, xerr, np.array([r[key] for r in sel], float)


def plot_metrics_vs_bin(rows: Sequence[Mapping], binning: str, *, xlabel: str) -> Figure:
    """Bias, sigma_IQR and outlier fraction per bin (``binning`` = ``mag`` or ``z``), one line per subset.

    Bins with fewer than five objects are not drawn; the horizontal bars show the bin widths.
    """
    subsets = list(dict.fromkeys(r["subset"] for r in rows))
    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, _METRIC_LABELS):
        for k, subset in enumerate(subsets):
            x, xerr, y = _binned(rows, subset, binning, key)
            if len(x):
                color, marker = _SUBSET_STYLE.get(subset, (f"C{k}", "o"))
                ax.errorbar(x, y, xerr=xerr, color=color, marker=marker, ms=4, lw=1, capsize=0, label=subset)
        ax.set(xlabel=xlabel, ylabel=_METRIC_LABELS[key])
        note_if_empty(ax)
        if key == "bias":
            ax.axhline(0, color="0.5", lw=0.8)
        else:
            ax.set_ylim(bottom=0)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"Photo-z metrics vs {xlabel} (bins with ≥ {MIN_PER_BIN} objects)")
    return fig


def plot_completeness(rows: Sequence[Mapping], *, band: str, size_rows: Sequence[Mapping] = ()) -> Figure:
    """Detection completeness (fraction of catalog objects matched to a detection) versus magnitude.

    With ``size_rows`` (`detection_completeness` by catalog box side), a second panel shows it versus size.
    """
    panels = [(rows, f"{band} magnitude (AB)", False)] + ([(size_rows, "catalog box side (px)", True)]
                                                         if any(r["n"] for r in size_rows) else [])
    fig = Figure(figsize=(6 * len(panels), 4.2), layout="constrained")
    for k, (table, xlabel, log_x) in enumerate(panels):
        sel = [r for r in table if r["n"] > 0]
        x = [float(np.sqrt(r["lo"] * r["hi"])) if log_x else r["centre"] for r in sel]  # log bins: geometric
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.axhline(COMPLETENESS_GOAL, color="0.6", ls=":", lw=1, label=f"{COMPLETENESS_GOAL:.0%}")
        ax.errorbar(x, [r["completeness"] for r in sel],
                    xerr=[[c - r["lo"] for c, r in zip(x, sel)], [r["hi"] - c for c, r in zip(x, sel)]],
                    yerr=[r["completeness_err"] for r in sel], fmt="o-", color="tab:blue", ms=4,
                    label="detected / catalog (±1σ binomial)")
        for c, r in zip(x, sel):
            ax.annotate(str(r["n"]), (c, r["completeness"]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7, color="0.35")
        if log_x:
            edges = sorted({r["lo"] for r in sel} | {r["hi"] for r in sel})
            ax.set_xscale("log", base=2)
            ax.set_xticks(edges, [f"{e:g}" for e in edges])
            ax.minorticks_off()
        ax.set(ylim=(0, 1.08), xlabel=xlabel, ylabel="detection completeness")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Detection completeness (numbers: catalog objects per bin)")
    return fig


def plot_normalised_residuals(norm) -> Figure:
    """Histogram of (z_phot - z_true) / σ_PDF against the unit Gaussian expected for calibrated PDFs."""
    norm = np.asarray(norm, float)
    norm = norm[np.isfinite(norm)]
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    lim = 6.0
    ax.hist(np.clip(norm, -lim, lim), bins=48, range=(-lim, lim), density=True, color="tab:blue", alpha=0.6,
            label=f"{len(norm)} objects (clipped at ±{lim:g})")
    x = np.linspace(-lim, lim, 400)
    ax.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k-", lw=1.2, label="unit Gaussian")
    ax.set(xlim=(-lim, lim), xlabel="(z_phot − z_true) / σ_PDF", ylabel="probability density",
           title="Error-normalised residuals")
    ax.legend(fontsize=8)
    return fig


def false_colour(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) in [0, 1] from a (C, H, W) tile: reddest, middle and bluest band, asinh stretch."""
    c = image.shape[0]
    chans = [image[c - 1], image[c // 2], image[0]]
    lo, hi = np.percentile(np.stack(chans), _STRETCH_PERCENTILES)
    scale = max(hi - lo, np.finfo(float).tiny)
    rgb = np.stack([np.arcsinh((ch - lo) / (_ASINH_SOFTENING * scale)) for ch in chans], axis=-1)
    return np.clip(rgb / np.arcsinh(1 / _ASINH_SOFTENING), 0, 1)


def plot_example_tiles(images, segmaps, tile_objects: Sequence[Mapping[str, np.ndarray]], *,
                       bands: Sequence[str], pixel_scale: float) -> Figure:
    """Example tiles in false colour with segmentation outlines, catalog boxes and redshift labels.

    Parameters
    ----------
    images : ndarray, shape (T, C, H, W)
        Tiles.
    segmaps : ndarray, shape (T, H, W)
        Segmentation maps (0 = sky).
    tile_objects : sequence of mapping
        Per tile: ``bbox_x0``, ``bbox_y0``, ``bbox_x1``, ``bbox_y1``, and optionally ``detected`` (bool),
        ``ztrue`` and ``zphot`` for the labels.
    bands : sequence of str
        Band names (the colour channels are the reddest, middle and bluest).
    pixel_scale : float
        Arcsec per pixel (for the title).
    """
    n = len(images)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(5.2 * cols, 5.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, img, seg, objs in zip(axes, images, segmaps, tile_objects):
        ax.imshow(false_colour(img), origin="lower", interpolation="nearest")
        edges = np.zeros(seg.shape, bool)
        edges[:-1] |= seg[:-1] != seg[1:]
        edges[:, :-1] |= seg[:, :-1] != seg[:, 1:]
        ax.contour(edges, levels=[0.5], colors="white", linewidths=0.5, alpha=0.8)
        detected = np.asarray(objs.get("detected", np.ones(len(objs["bbox_x0"]), bool)), bool)
        area = (objs["bbox_x1"] - objs["bbox_x0"]) * (objs["bbox_y1"] - objs["bbox_y0"])
        has_truth = np.isfinite(np.asarray(objs.get("ztrue", np.full(len(area), np.nan)), float))
        priority = np.lexsort((-area, ~has_truth))  # objects with truth first, then the largest boxes
        labelled = set(priority[:_MAX_LABELS_PER_TILE].tolist())
        for k in range(len(objs["bbox_x0"])):
            x0, y0 = objs["bbox_x0"][k] - 0.5, objs["bbox_y0"][k] - 0.5
            w, h = objs["bbox_x1"][k] - objs["bbox_x0"][k], objs["bbox_y1"][k] - objs["bbox_y0"][k]
            color = "lime" if detected[k] else "orange"
            ax.add_patch(Rectangle((x0, y0), w, h, fill=False, ec=color, lw=1.0))
            if "zphot" in objs and k in labelled:
                zt, zp = objs["ztrue"][k], objs["zphot"][k]
                label = f"{zp:.2f}" + (f" ({zt:.2f})" if np.isfinite(zt) else "")
                ax.text(x0, y0 + h + 0.5, label, color=color, fontsize=7, va="bottom",
                        bbox=dict(fc="black", alpha=0.5, pad=0.5, lw=0))
        ax.set(xticks=[], yticks=[])
    for ax in axes[n:]:
        ax.set_axis_off()
    channels = f"R,G,B = {bands[-1]}, {bands[len(bands) // 2]}, {bands[0]}"
    fig.suptitle(f"Example tiles ({channels}; {pixel_scale:g}″/pix). Boxes: green = detected, "
                 f"orange = forced;\nwhite: segmentation outlines; labels (up to {_MAX_LABELS_PER_TILE}, "
                 "objects with truth first): z_phot (z_true)",
                 fontsize=10)
    return fig
