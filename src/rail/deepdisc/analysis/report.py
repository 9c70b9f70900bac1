"""``deepdisc features``: features of a trained model on a TileSet, their 2-D embedding and the MI bound.

`feature_report` extracts the per-object features (`rail.deepdisc.analysis.features`), standardises them,
reduces them with UMAP (``umap-learn``; PCA with ``reduce="pca"``, or when umap-learn is not installed, which the
summary says) to ``n_dims`` dimensions for the mutual-information bound
(`rail.deepdisc.analysis.information`) and to 2 for the figure, and writes into a folder:

* ``features.npz``: object_id, roi (and pixel) features, detected, redshift, magnitude, the head's log density
  at the redshift, the 2-D embedding;
* ``embedding.png``: the 2-D embedding coloured by redshift and by magnitude;
* ``summary.json``: model, tiles, reducer, the bound (nats and bits) for the reduced RoI features and, where the
  network has them, for RoI + pixel features; and ``head``: the bound with the network's own redshift mixture
  as q(z | features) (`rail.deepdisc.analysis.information.model_information_bound`), on the same held-out
  objects. The reduced-feature bounds are the paper's; an unsupervised reduction keeps the directions of
  largest variance, which need not be those the head reads, so they can sit far below the head's bound.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ConfigError

__all__ = ["REDUCERS", "reduce_features", "plot_embedding", "feature_report"]

log = logging.getLogger(__name__)

#: Dimensionality reductions: UMAP (the paper's) or PCA.
REDUCERS = ("umap", "pca")
_FIG_SIZE = (11.0, 4.6)


def reduce_features(x, n_dims: int, *, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, str]:
    """Standardise ``x`` (N, F) and reduce it to ``n_dims`` columns.

    Returns
    -------
    ndarray (N, n_dims)
    str
        The method used: ``"umap"``, ``"pca"``, or ``"pca (umap-learn not installed)"``.
    """
    if method not in REDUCERS:
        raise ConfigError(f"reduce must be one of {', '.join(REDUCERS)}, got {method!r}")
    x = np.asarray(x, np.float64)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    n_dims = int(min(n_dims, x.shape[1], max(len(x) - 2, 1)))
    used = method
    if method == "umap":
        try:
            import umap
        except ImportError:
            used = "pca (umap-learn not installed)"
            log.warning("umap-learn is not installed (pip install 'pz-rail-deepdisc[features]'): using PCA")
        else:
            reducer = umap.UMAP(n_components=n_dims, random_state=seed, n_neighbors=min(15, len(x) - 1), n_jobs=1)
            with warnings.catch_warnings():  # "n_jobs overridden by random_state": a seeded UMAP is serial anyway
                warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
                return reducer.fit_transform(x).astype(np.float64), used
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return x @ vt[:n_dims].T, used


def plot_embedding(embedding, redshift, magnitude, path, *, title: str = "", mag_label: str = "magnitude (AB)"
                   ) -> Path:
    """Two panels: the 2-D embedding coloured by redshift and by magnitude (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=_FIG_SIZE, constrained_layout=True)
    for ax, values, label, cmap in ((axes[0], redshift, "redshift", "viridis"),
                                    (axes[1], magnitude, mag_label, "magma_r")):
        ok = np.isfinite(values)
        ax.scatter(embedding[~ok, 0], embedding[~ok, 1], s=6, c="lightgrey", label="unknown")
        sc = ax.scatter(embedding[ok, 0], embedding[ok, 1], s=8, c=values[ok], cmap=cmap)
        fig.colorbar(sc, ax=ax, label=label)
        ax.set_xlabel("embedding 1")
        ax.set_ylabel("embedding 2")
        ax.set_title(f"coloured by {label}")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def feature_report(model_path: str | os.PathLike, tiles_path: str | os.PathLike, outdir: str | os.PathLike, *,
                   member: int = 0, boxes: str = "matched", reduce: str = "umap", n_dims: int = 4,
                   mag_band: str | None = None, seed: int = 0, epochs: int = 400) -> dict:
    """Extract, reduce, plot and bound; write the folder (see the module docstring); return the summary.

    Parameters
    ----------
    model_path, tiles_path : str or Path
        A model artifact and a TileSet of its bands (with ``redshift_true`` or spec-z for the bound).
    outdir : str or Path
        Output folder (created).
    member : int
        Ensemble member whose features are analysed.
    boxes : {"matched", "catalog"}
        Boxes the features are pooled in (`rail.deepdisc.analysis.features.object_features`).
    reduce : {"umap", "pca"}
    n_dims : int
        Dimensions of the reduced features the bound is computed on.
    mag_band : str, optional
        Band of the magnitude colouring (default the last).
    seed, epochs : int
        Reducer and flow seeds; flow training steps.
    """
    from rail.deepdisc.analysis.features import object_features
    from rail.deepdisc.analysis.information import model_information_bound, mutual_information_bound
    from rail.deepdisc.model.artifact import check_compatible, load_artifact
    from rail.deepdisc.model.network import model_from_artifact
    from rail.deepdisc.tileset.io import read_tileset

    art = load_artifact(model_path)
    tiles = read_tileset(tiles_path)
    check_compatible(art, tiles.bands, tiles.pixel_scale, model_name=str(model_path), data_name=str(tiles_path))
    model = model_from_artifact(art, member)
    feats = object_features(model, tiles, boxes=boxes, mag_band=mag_band)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    sets = {"roi": feats.roi}
    if feats.pixel.shape[1]:
        sets["roi+pixel"] = np.concatenate([feats.roi, feats.pixel], axis=1)
    bounds, used = {}, reduce
    for name, x in sets.items():
        reduced, used = reduce_features(x, n_dims, method=reduce, seed=seed)
        bounds[name] = mutual_information_bound(reduced, feats.redshift, seed=seed, epochs=epochs).to_dict()
    bounds["head"] = model_information_bound(feats.head_log_density, feats.redshift, seed=seed,
                                             epochs=epochs).to_dict()
    embedding, used2d = reduce_features(feats.roi, 2, method=reduce, seed=seed)
    backbone = art["config"].get("backbone", "?")
    plot_embedding(embedding, feats.redshift, feats.magnitude, out / "embedding.png",
                   mag_label=f"{mag_band or tiles.bands[-1]} magnitude (AB)",
                   title=f"{Path(model_path).name} ({backbone}, member {member}): {used2d} of the RoI features "
                         f"of {len(feats.object_id)} objects ({int(feats.detected.sum())} detected)")
    with atomic_path(out / "features.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, object_id=feats.object_id, roi=feats.roi, pixel=feats.pixel,
                            detected=feats.detected, redshift=feats.redshift, magnitude=feats.magnitude,
                            head_log_density=feats.head_log_density, embedding=embedding)
    summary = {"model": str(model_path), "tiles": str(tiles_path), "backbone": backbone, "member": member,
               "boxes": boxes, "n_objects": len(feats.object_id), "n_detected": int(feats.detected.sum()),
               "reducer": used, "n_dims": n_dims, "mutual_information": bounds}
    with atomic_path(out / "summary.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    return summary
