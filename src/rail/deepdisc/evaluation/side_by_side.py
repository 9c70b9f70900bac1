"""Estimators side by side on the same objects: metrics and coverage by magnitude and redshift, PIT histograms.

With peers (``deepdisc evaluate --peer NAME=FILE``, e.g. BPZ, EAZY and their consensus with DeepDISC from
``deepdisc combine``), `estimator_tables` computes for every estimator, in the same bins as the main
evaluation: the paper's point metrics with the 68% and 95% central-interval coverage per magnitude and
true-redshift bin (the ``peer_bins`` table), and the PIT histogram (``peer_pit``). The report shows them with
`side_by_side_sections` and `side_by_side_figures`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rail.deepdisc.evaluation.coverage import coverage_from_pit, ensemble_moments, pit_values
from rail.deepdisc.evaluation.io import PhotoZTable
from rail.deepdisc.evaluation.metrics import point_metrics

if TYPE_CHECKING:  # matplotlib is imported by the figures alone: `evaluate_photoz` needs only the tables
    from matplotlib.figure import Figure

__all__ = ["SIDE_BY_SIDE_LEVELS", "PIT_BINS", "estimator_point", "estimator_tables", "side_by_side_sections",
           "side_by_side_figures"]

#: Coverage levels of the side-by-side tables.
SIDE_BY_SIDE_LEVELS = (0.68, 0.95)
#: Bins of the PIT histograms.
PIT_BINS = 20
_COLUMNS = ("n", "bias", "sigma_iqr", "outlier_fraction", "cov68", "cov95")
_HEADERS = ("N", "bias", "σ_IQR", "η", "68% coverage", "95% coverage")


def estimator_point(photoz: PhotoZTable, settings) -> np.ndarray:
    """The point estimate ``settings.point_estimate`` of an estimator (the PDF mode on the grid if absent)."""
    if settings.point_estimate in photoz.ancil:
        return photoz.point(settings.point_estimate)
    return np.asarray(photoz.ensemble.mode(grid=settings.zgrid), float).reshape(-1)


def _row(name: str, binning: str, lo: float, hi: float, zphot, ztrue, zstd, pit, threshold) -> dict:
    m = point_metrics(zphot, ztrue, zstd, threshold=threshold).as_dict()
    cov = coverage_from_pit(pit, SIDE_BY_SIDE_LEVELS).coverage
    centre = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else np.nan
    return {"estimator": name, "binning": binning, "lo": lo, "hi": hi, "centre": centre, **m,
            "cov68": float(cov[0]), "cov95": float(cov[1])}


def estimator_tables(estimators: Mapping[str, PhotoZTable], ztrue: np.ndarray, magnitude: np.ndarray, settings
                     ) -> tuple[list[dict], list[dict]]:
    """Per estimator (same objects, same order): binned metrics with coverage, and the PIT histogram.

    Parameters
    ----------
    estimators : mapping of str -> PhotoZTable
        Name -> photo-z of the same N objects, in the same order (aligned beforehand).
    ztrue : ndarray, shape (N,)
        Truth (NaN = none).
    magnitude : ndarray, shape (N,)
        Magnitude of the bins.
    settings : EvaluationSettings
        Point estimate, bin edges, outlier threshold.

    Returns
    -------
    bins : list of dict
        ``estimator``, ``binning`` (``all``, ``mag``, ``z``), ``lo``, ``hi``, ``centre``, the `PointMetrics`
        fields, ``cov68``, ``cov95``.
    pit : list of dict
        ``estimator``, ``lo``, ``hi``, ``density`` (PIT histogram, density 1 = calibrated).
    """
    ztrue, magnitude = np.asarray(ztrue, float), np.asarray(magnitude, float)
    has_truth = np.isfinite(ztrue)
    bins, pit_rows = [], []
    for name, photoz in estimators.items():
        zphot = estimator_point(photoz, settings)
        _, zstd = ensemble_moments(photoz.ensemble)
        pit = pit_values(photoz.ensemble, ztrue)
        t = settings.outlier_threshold
        bins.append(_row(name, "all", np.nan, np.nan, zphot, ztrue, zstd, pit, t))
        for binning, values, edges in (("mag", magnitude, settings.mag_edges), ("z", ztrue, settings.z_edges)):
            for lo, hi in zip(edges[:-1], edges[1:]):
                sel = has_truth & (values >= lo) & (values < hi)
                bins.append(_row(name, binning, float(lo), float(hi), zphot[sel], ztrue[sel], zstd[sel], pit[sel], t))
        counts, edges = np.histogram(pit[np.isfinite(pit)], bins=PIT_BINS, range=(0.0, 1.0))
        density = counts / max(counts.sum(), 1) * PIT_BINS
        pit_rows += [{"estimator": name, "lo": float(a), "hi": float(b), "density": float(d)}
                     for a, b, d in zip(edges[:-1], edges[1:], density)]
    return bins, pit_rows


def side_by_side_sections(table: Callable[[str], list[dict]], magnitude_band: str,
                          markdown_table: Callable[..., str]) -> list[str]:
    """Markdown sections: every estimator per magnitude bin and per redshift bin, next to one another.

    Parameters
    ----------
    table : callable
        ``EvaluationData.table`` of the evaluation folder.
    magnitude_band : str
        Band of the magnitude bins (for the titles).
    markdown_table : callable
        The report's table formatter (``rail.deepdisc.evaluation.report.markdown_table``).
    """
    rows = table("peer_bins")
    if not rows:
        return []
    parts = []
    for binning, title in (("mag", f"{magnitude_band} magnitude"), ("z", "true redshift")):
        sel = sorted((r for r in rows if r["binning"] == binning and r["n"]), key=lambda r: r["lo"])
        parts.append(f"## Estimators side by side by {title}\n\n" + markdown_table(
            sel, ["lo", "hi", "estimator", *_COLUMNS], ["from", "to", "estimator", *_HEADERS]))
    return parts


def _pit_figure(rows: Sequence[Mapping]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, name in enumerate(dict.fromkeys(r["estimator"] for r in rows)):
        sel = [r for r in rows if r["estimator"] == name]
        edges = np.r_[[r["lo"] for r in sel], sel[-1]["hi"]]
        ax.stairs([r["density"] for r in sel], edges, color=f"C{k}", lw=1.6, label=name)
    ax.axhline(1.0, color="k", lw=1, ls="--", label="calibrated")
    ax.set(xlim=(0, 1), ylim=(0, None), xlabel="PIT = CDF(z_true)", ylabel="density",
           title="PIT histograms per estimator")
    ax.legend(fontsize=8)
    return fig


def _coverage_figure(rows: Sequence[Mapping], binning: str, xlabel: str) -> Figure:
    from matplotlib.figure import Figure

    from rail.deepdisc.evaluation.plots import MIN_PER_BIN, note_if_empty

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, level in zip(axes, ("cov68", "cov95"), SIDE_BY_SIDE_LEVELS):
        for k, name in enumerate(dict.fromkeys(r["estimator"] for r in rows)):
            sel = [r for r in rows if r["estimator"] == name and r["binning"] == binning and r["n"] >= MIN_PER_BIN]
            if sel:
                ax.errorbar([r["centre"] for r in sel], [r[key] for r in sel],
                            xerr=[0.5 * (r["hi"] - r["lo"]) for r in sel], color=f"C{k}", marker="o", ms=4,
                            lw=1, capsize=0, label=name)
        note_if_empty(ax)
        ax.axhline(level, color="k", lw=1, ls="--")
        ax.set(xlabel=xlabel, ylabel=f"{int(100 * level)}% interval coverage", ylim=(0, 1.02))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"Coverage per estimator vs {xlabel} (dashed: nominal; bins with ≥ {MIN_PER_BIN} objects)")
    return fig


def side_by_side_figures(table: Callable[[str], list[dict]], magnitude_band: str,
                         metrics_figure: Callable[..., Figure]) -> list[tuple[Figure, str, str]]:
    """The figures comparing estimators: ``(figure, file name, caption)`` each.

    Parameters
    ----------
    table : callable
        ``EvaluationData.table`` of the evaluation folder.
    magnitude_band : str
        Band of the magnitude bins.
    metrics_figure : callable
        ``rail.deepdisc.evaluation.plots.plot_metrics_vs_bin`` (one line per ``subset``: here per estimator).
    """
    rows = table("peer_bins")
    out = []
    if table("peer_pit"):
        out.append((_pit_figure(table("peer_pit")), "pit_estimators.png", "PIT histograms per estimator"))
    if not rows:
        return out
    as_subsets = [{**r, "subset": r["estimator"]} for r in rows]
    for binning, xlabel, stem in (("mag", f"{magnitude_band} magnitude (AB)", "magnitude"),
                                  ("z", "true redshift", "redshift")):
        out.append((metrics_figure(as_subsets, binning, xlabel=xlabel), f"metrics_estimators_vs_{stem}.png",
                    f"Metrics vs {stem}, per estimator"))
        out.append((_coverage_figure(rows, binning, xlabel), f"coverage_estimators_vs_{stem}.png",
                    f"68% and 95% coverage vs {stem}, per estimator"))
    return out
