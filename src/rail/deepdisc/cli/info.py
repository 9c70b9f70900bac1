"""``deepdisc info``: validate a TileSet, model or photo-z file and print a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.tileset.validation import validate_tileset

HELP = "validate a TileSet, model or photo-z file and print a summary"
EXAMPLES = """  deepdisc info tiles.h5        # bands, tiles, objects, labelled objects, spec-z quantiles
  deepdisc info model.pt        # backbone, bands, members and their weights
  deepdisc info pz.hdf5         # photo-z ensemble: rows, flags, point-estimate quantiles
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("file", type=Path, help="TileSet (.h5), model artifact (.pt) or photo-z file (.hdf5)")


def run(args: argparse.Namespace) -> int:
    """Print the summary of one file; raise a DeepDiscError for an invalid one."""
    path: Path = args.file
    if not path.exists():
        raise DeepDiscError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                is_tiles, is_pz = "images" in f, "meta" in f and "data" in f
        except (OSError, RuntimeError, KeyError, ValueError) as err:  # a damaged HDF5 file (truncated, overwritten)
            raise DeepDiscError(f"{path}: damaged HDF5 file ({err})") from None
        if not (is_tiles or is_pz):  # never hand other files to qp: PyTables may crash on them
            raise DeepDiscError(f"{path}: neither a TileSet (no 'images' dataset) nor a qp photo-z file (no "
                                f"'meta' and 'data' groups)")
        print(validate_tileset(path).format() if is_tiles else _format_pz(path))
    else:
        print(_format_model(path))
    return 0


def _format_model(path: Path) -> str:
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.training.calibration import ensemble_std_scale

    art = load_artifact(path)
    cfg = art["config"]
    lines = [f"DeepDISC model {path}  (written by pz-rail-deepdisc {art.get('package_version', '?')})",
             f"  bands ({len(cfg['bands'])}): {' '.join(cfg['bands'])}",
             f"  pixel scale: {cfg['pixel_scale']:g} arcsec/pix, backbone: {cfg.get('backbone', '?')}",
             f"  members: {len(art['members'])}"]
    for k, m in enumerate(art["members"]):
        lines.append(f"    {k}: weight {float(m['weight']):.4f}, validation log-likelihood "
                     f"{float(m.get('val_log_likelihood', np.nan)):.4f}, widths x {float(m.get('std_scale', 1)):.3f}")
    scale, n_cal = ensemble_std_scale(art["members"], name=str(path))
    lines.append(f"  ensemble widths x {scale:.3f} (fitted on {n_cal} calibration objects)" if n_cal else
                 "  ensemble widths: the members' own (no calibration records)")
    provenance = art.get("provenance") or {}
    if provenance:
        lines.append("  provenance:")
        lines += _format_tree(provenance, _PROVENANCE_INDENT)
    return "\n".join(lines)


_PROVENANCE_INDENT = 4
_INDENT_STEP = 2
_SKIPPED_KEYS = ("history",)  # per-epoch records: see the loss curves instead


def _format_tree(tree: dict, indent: int) -> list[str]:
    """Nested provenance as indented ``key: value`` lines (ranges as ``low .. high``)."""
    pad = " " * indent
    lines = []
    for key, value in tree.items():
        if key in _SKIPPED_KEYS:
            continue
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:" + ("" if value else " (none)"))
            lines += _format_tree(value, indent + _INDENT_STEP)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for k, item in enumerate(value):
                lines.append(f"{pad}{key}[{k}]:")
                lines += _format_tree(item, indent + _INDENT_STEP)
        else:
            lines.append(f"{pad}{key}: {_format_value(key, value)}")
    return lines


def _format_value(key: str, value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value) and key not in ("bands",):
            return f"{value[0]:g} .. {value[1]:g}"
        return " ".join(str(v) for v in value) if value else "(none)"
    return "(none)" if value is None else str(value)


def _format_pz(path: Path) -> str:
    import qp

    try:
        ens = qp.read(str(path))
    except Exception as err:  # qp raises KeyError/ValueError/OSError on foreign HDF5 files
        raise DeepDiscError(f"{path}: neither a TileSet nor a qp photo-z file ({type(err).__name__}: {err})")
    ancil = ens.ancil or {}
    lines = [f"photo-z ensemble {path}: {ens.npdf} objects, {type(ens.gen_obj).__name__}"]
    for flag in ("detected", "forced", "recentred", "spec_rep"):
        if flag in ancil:
            lines.append(f"  {flag}: {int(np.sum(np.asarray(ancil[flag]).astype(bool)))}")
    for key in ("zmode", "zmean", "zmedian"):
        if key in ancil:
            q = np.nanpercentile(np.asarray(ancil[key], float), [5, 50, 95])
            lines.append(f"  {key} 5/50/95%: {q[0]:.3f} {q[1]:.3f} {q[2]:.3f}")
    return "\n".join(lines)
