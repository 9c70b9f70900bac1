"""The evaluation report: a folder of PNG figures and one Markdown page (``deepdisc report``).

`build_report` reads one or more evaluation folders (:mod:`rail.deepdisc.evaluation.directory`). The first is
reported in full: photometric vs true redshift, PIT histogram, coverage curve, N(z), error-normalised residuals, metrics
vs magnitude and redshift, detection completeness, example tiles (when its TileSet is still at the recorded
path, or ``tiles`` is given), loss curves (when the folder holds ``loss_curves.json`` or ``loss_curves`` is
given), the flag-subset and RAIL tables and the peer comparison. With several folders (e.g. one per filter
preset) a table compares them. Figures are written atomically; ``report.md`` is written last.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.evaluation import plots
from rail.deepdisc.evaluation.directory import (
    LOSS_CURVES_FILE,
    EvaluationData,
    compare_evaluations,
    load_evaluation,
    read_loss_curves,
)
from rail.deepdisc.evaluation.side_by_side import side_by_side_figures, side_by_side_sections
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["REPORT_FILE", "build_report", "markdown_table"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
_MAX_EXAMPLE_TILES = 16
_MAX_TILES_SCANNED = 64
_METRIC_COLUMNS = ("n", "bias", "sigma_iqr", "outlier_fraction", "norm_median", "norm_sigma_iqr")
_METRIC_HEADERS = ("N", "bias", "σ_IQR", "η", "median Δz/σ", "σ_IQR(Δz/σ)")
_RAIL_LABELS = {
    "pit_ks": "PIT Kolmogorov-Smirnov statistic", "pit_cvm": "PIT Cramer-von Mises statistic",
    "pit_ad": "PIT Anderson-Darling statistic", "pit_outlier_rate": "PIT outlier rate",
    "cde_loss": "CDE loss", "rail_point_stats_iqr": "sigma_IQR (qp point metric)",
    "rail_point_bias": "bias (qp point metric)",
    "rail_point_outlier_rate": "outlier rate, |ez| > max(0.06, 3 sigma_IQR)",
    "rail_point_stats_sigma_mad": "sigma_MAD (qp point metric)",
}


def _fmt(value) -> str:
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:.4g}"


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str], headers: Sequence[str] | None = None
                   ) -> str:
    """A Markdown table of ``rows`` restricted to ``columns``; NaN shows as an en dash.

    Parameters
    ----------
    rows : sequence of mapping
        One dict per table row; a missing column shows as NaN.
    columns : sequence of str
        Keys to show, in order.
    headers : sequence of str, optional
        Column headers (default: the keys).

    Returns
    -------
    str
        The table, one line per row, without a trailing newline.
    """
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, np.nan)) for c in columns) + " |")
    return "\n".join(lines)


def _figure(fig, outdir: Path, name: str, caption: str, figures: list[str]) -> None:
    plots.save_figure(fig, outdir / name)
    figures.append(f"![{caption}]({name})\n\n*{caption}*\n")


def _curves(rows: Sequence[Mapping], key: str) -> dict[str, tuple[list, list]]:
    curves = {}
    for name in dict.fromkeys(r[key] for r in rows):
        sel = [r for r in rows if r[key] == name and r["n"] > 0]
        if sel:
            curves[name] = ([r["level"] for r in sel], [r["coverage"] for r in sel])
    return curves


def _core_figures(ev: EvaluationData, outdir: Path, figures: list[str]) -> None:
    s, o = ev.summary, ev.objects
    truth = "true" if s.get("truth_column") == "redshift_true" else "spectroscopic"
    point = s.get("settings", {}).get("point_estimate", "zmode")
    _figure(plots.plot_zphot_vs_ztrue(o["ztrue"], o["zphot"], o["zlo68"], o["zhi68"],
                                      metrics=s.get("metrics", {}).get("all"), truth_label=truth,
                                      point_label=point),
            outdir, "zphot_vs_ztrue.png", f"Photometric ({point}) vs {truth} redshift", figures)
    _figure(plots.plot_pit_histogram(o["pit"], ks=s.get("rail", {}).get("pit_ks")), outdir, "pit.png",
            "PIT histogram: flat for calibrated PDFs", figures)
    coverage = ev.table("coverage")
    n_all = next((r["n"] for r in coverage if r["subset"] == "all"), None)
    _figure(plots.plot_coverage(_curves(coverage, "subset"), n=n_all, title="Credible-interval coverage per "
                                "subset"), outdir, "coverage.png",
            "Coverage of central credible intervals per subset", figures)
    if ev.table("peer_coverage"):
        _figure(plots.plot_coverage(_curves(ev.table("peer_coverage"), "estimator"), n=n_all,
                                    title="Credible-interval coverage per estimator"), outdir,
                "coverage_peers.png", "Coverage of central credible intervals per estimator", figures)
    for fig, name, caption in side_by_side_figures(ev.table, s.get("magnitude_band", ""), plots.plot_metrics_vs_bin):
        _figure(fig, outdir, name, caption, figures)
    nz = s.get("tables", {}).get("nz", {})
    if nz:
        _figure(plots.plot_nz(nz["z"], nz["stacked_pdf"], nz["true_hist_edges"], nz["true_hist_density"],
                              truth_label=truth), outdir, "nz.png", "N(z): truth vs stacked PDFs", figures)
    norm = (o["zphot"] - o["ztrue"]) / np.where(o["zstd"] > 0, o["zstd"], np.nan)
    _figure(plots.plot_normalised_residuals(norm), outdir, "normalised_residuals.png",
            "Error-normalised residuals vs a unit Gaussian", figures)


def _binned_figures(ev: EvaluationData, outdir: Path, figures: list[str]) -> None:
    metrics = ev.table("metrics")
    band = ev.summary.get("magnitude_band", "")
    _figure(plots.plot_metrics_vs_bin(metrics, "mag", xlabel=f"{band} magnitude (AB)"), outdir,
            "metrics_vs_magnitude.png", "Metrics vs magnitude, per subset", figures)
    _figure(plots.plot_metrics_vs_bin(metrics, "z", xlabel="true redshift"), outdir,
            "metrics_vs_redshift.png", "Metrics vs redshift, per subset", figures)


def _example_tiles(ev: EvaluationData, tiles_path: Path, n_tiles: int, outdir: Path, figures: list[str]
                   ) -> None:
    from rail.deepdisc.tileset.io import read_tileset

    ts = read_tileset(tiles_path, tiles=slice(0, _MAX_TILES_SCANNED), validate=False)
    counts = np.bincount(ts.objects["tile"], minlength=ts.n_tiles)
    chosen = np.sort(np.argsort(-counts, kind="stable")[:n_tiles])
    index = {int(i): k for k, i in enumerate(ev.objects["object_id"])}
    per_tile = []
    for t in chosen:
        objs = ts.tile_objects(int(t))
        rows = np.array([index.get(int(i), -1) for i in objs["object_id"]], dtype=np.int64)  # may be empty
        found = rows >= 0
        if "detected" in ev.objects:
            objs["detected"] = np.where(found, ev.objects["detected"][rows], False)
        objs["zphot"] = np.where(found, ev.objects["zphot"][rows], np.nan)
        objs["ztrue"] = np.where(found, ev.objects["ztrue"][rows], np.nan)
        per_tile.append(objs)
    fig = plots.plot_example_tiles(ts.images[chosen], ts.segmaps[chosen], per_tile, bands=ts.bands,
                                   pixel_scale=ts.pixel_scale)
    _figure(fig, outdir, "example_tiles.png", "Example tiles with catalog boxes, segmentation and redshifts",
            figures)


def _subset_table(ev: EvaluationData) -> str:
    s = ev.summary
    calib = s.get("calibration", {})
    rows = [{"subset": k, **v, "calibration": calib.get(k, {}).get("mean_abs", np.nan)}
            for k, v in s.get("metrics", {}).items()]
    return markdown_table(rows, ["subset", *_METRIC_COLUMNS, "calibration"],
                          ["subset", *_METRIC_HEADERS, "mean abs coverage error"])


def _tables(ev: EvaluationData, others: Sequence[EvaluationData]) -> list[str]:
    s = ev.summary
    parts = ["## Metrics per subset\n\n" + _subset_table(ev)]
    rail = s.get("rail", {})
    if rail:
        parts.append("## RAIL evaluators\n\n" + markdown_table(
            [{"metric": _RAIL_LABELS.get(k, k), "value": v} for k, v in rail.items() if k in _RAIL_LABELS],
            ["metric", "value"]))
    for binning, title in (("mag", f"{s.get('magnitude_band', '')} magnitude"), ("z", "true redshift")):
        rows = [r for r in ev.table("metrics") if r["subset"] == "all" and r["binning"] == binning and r["n"]]
        parts.append(f"## All objects by {title}\n\n" + markdown_table(
            rows, ["lo", "hi", *_METRIC_COLUMNS], ["from", "to", *_METRIC_HEADERS]))
    if ev.table("completeness"):
        parts.append("## Detection completeness\n\n" + markdown_table(
            [r for r in ev.table("completeness") if r["n"]], ["lo", "hi", "n", "n_detected", "completeness"],
            ["from (mag)", "to (mag)", "catalog objects", "detected", "completeness"]))
    if any(r["n"] for r in ev.table("completeness_size")):
        parts.append("## Detection completeness by size\n\nBy the side of the catalog box (the larger of width and "
                     "height, px).\n\n" + markdown_table(
                         [r for r in ev.table("completeness_size") if r["n"]],
                         ["lo", "hi", "n", "n_detected", "completeness"],
                         ["from (px)", "to (px)", "catalog objects", "detected", "completeness"]))
    if ev.table("peers"):
        parts.append("## Comparison with peers (same objects)\n\n" + markdown_table(
            ev.table("peers"),
            ["estimator", "n", "bias", "sigma_iqr", "outlier_fraction", "calibration_mean_abs", "pit_ks",
             "cde_loss"],
            ["estimator", "N", "bias", "σ_IQR", "η", "mean abs coverage error", "PIT KS", "CDE loss"]))
    parts += side_by_side_sections(ev.table, s.get("magnitude_band", ""), markdown_table)
    if others:
        parts.append("## Runs compared (e.g. filter presets)\n\n" + markdown_table(
            compare_evaluations([ev, *others]),
            ["label", "n_bands", "n_with_truth", "bias", "sigma_iqr", "outlier_fraction",
             "calibration_mean_abs", "pit_ks", "completeness"],
            ["run", "bands", "N", "bias", "σ_IQR", "η", "mean abs coverage error", "PIT KS",
             "detected fraction"]))
        for other in others:
            parts.append(f"### {other.summary.get('label', other.path.name)}: metrics per subset\n\n"
                         + _subset_table(other))
    return parts


def build_report(evaldirs: Sequence[str | os.PathLike], outdir: str | os.PathLike | None = None, *,
                 tiles: str | os.PathLike | None = None, loss_curves: str | os.PathLike | None = None,
                 n_tiles: int = 4) -> Path:
    """Write the report of one or more evaluation folders.

    Parameters
    ----------
    evaldirs : sequence of str or Path
        Evaluation folders; the first is reported in full, all are compared in one table.
    outdir : str or Path, optional
        Report folder (default: ``<first evaldir>/report``).
    tiles : str or Path, optional
        TileSet for the example tiles (default: the one recorded by ``deepdisc evaluate``, if it exists).
    loss_curves : str or Path, optional
        Training loss-curve JSON (default: ``loss_curves.json`` in the evaluation folder, if any).
    n_tiles : int
        Example tiles to draw (0 = none).

    Returns
    -------
    Path
        The Markdown page.
    """
    if not evaldirs:
        raise DeepDiscError("no evaluation folder given")
    if not 0 <= n_tiles <= _MAX_EXAMPLE_TILES:
        raise DeepDiscError(f"n_tiles must be between 0 and {_MAX_EXAMPLE_TILES}, got {n_tiles}")
    main, *others = [load_evaluation(d) for d in evaldirs]
    outdir = Path(outdir) if outdir is not None else main.path / "report"
    outdir.mkdir(parents=True, exist_ok=True)
    figures: list[str] = []
    if np.isfinite(main.objects["ztrue"]).any():
        _core_figures(main, outdir, figures)
        _binned_figures(main, outdir, figures)
    else:
        figures.append("*No object has a truth redshift: the redshift figures are omitted.*\n")
    if main.table("completeness"):
        band = main.summary.get("magnitude_band", "")
        _figure(plots.plot_completeness(main.table("completeness"), band=band,
                                        size_rows=main.table("completeness_size")), outdir, "completeness.png",
                "Detection completeness vs magnitude and box size", figures)
    tiles_path = Path(tiles) if tiles else Path(main.summary.get("tiles") or "")
    if n_tiles and tiles_path.is_file():
        _example_tiles(main, tiles_path, n_tiles, outdir, figures)
    elif n_tiles:
        log.warning("example tiles skipped: TileSet %s not found (pass tiles=...)", tiles_path)
    curves_path = Path(loss_curves) if loss_curves else main.path / LOSS_CURVES_FILE
    if curves_path.is_file():
        _figure(plots.plot_loss_curves(read_loss_curves(curves_path)), outdir, "loss_curves.png",
                "Training curves per ensemble member", figures)
    s = main.summary
    flags = ", ".join(f"{k} {v}" for k, v in s.get("flag_counts", {}).items())
    point = s.get("settings", {}).get("point_estimate")
    head = [f"# DeepDISC photo-z evaluation: {s.get('label', '')}",
            f"Photo-z file `{s.get('photoz', '')}`, TileSet `{s.get('tiles', '')}`; bands "
            f"{' '.join(s.get('bands', []))}. {s.get('n_objects', 0)} objects, {s.get('n_with_truth', 0)} "
            f"with truth (`{s.get('truth_column', '')}`); point estimate `{point}`. Flags: {flags}."]
    text = "\n\n".join([*head, *_tables(main, others), "## Figures", *figures]) + "\n"
    path = write_text_atomic(text, outdir / REPORT_FILE)
    log.info("wrote report %s with %d figures", path, len(figures))
    return path
