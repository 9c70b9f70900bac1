"""Reading detectron2 checkpoints (weights only) and writing them as this package's model files.

Checkpoints are read with ``torch.load(weights_only=True)``: a file written by detectron2's ``Checkpointer`` holds
``{"model": state_dict, ...}``; one whose extra entries are pickled Python objects (e.g. a trainer's scheduler)
is refused with the one-line fix. The weights are mapped by `rail.deepdisc.model.detectron2`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.artifact import save_artifact
from rail.deepdisc.model.detectron2 import PIXEL_STATS, convert_detectron2, detectron2_config
from rail.deepdisc.model.network import build_model

__all__ = ["load_detectron2_state", "import_detectron2"]


def load_detectron2_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """The model weights of a detectron2 checkpoint, read with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str or Path
        A ``.pth`` written by detectron2's ``Checkpointer`` (``{"model": state_dict, ...}``) or a bare state dict.

    Returns
    -------
    dict of str -> Tensor

    Raises
    ------
    ModelError
        If the file is missing, holds pickled Python objects, or holds no tensors under ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such detectron2 checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for pickled objects, RuntimeError for other formats
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"{path}: not readable with torch.load(weights_only=True) ({first[:160]}); it holds pickled Python "
            f"objects (e.g. a trainer's scheduler) or is not a torch file (detectron2 model-zoo .pkl files are "
            f"not supported). In an environment you trust, keep only the weights: "
            f"torch.save({{'model': torch.load(PATH, weights_only=False)['model']}}, 'weights.pth')"
        ) from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelError(f"{path}: expected a detectron2 checkpoint {{'model': state_dict, ...}} or a state dict")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ModelError(f"{path}: entries {', '.join(map(repr, bad[:5]))} of the state dict are not tensors")
    return dict(state)


def import_detectron2(
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    bands,
    pixel_scale: float,
    mean=None,
    std=None,
    **config_options,
) -> Path:
    """Convert a detectron2 DeepDISC checkpoint into a model file of this package.

    Parameters
    ----------
    path : str or Path
        The detectron2 ``.pth``.
    output : str or Path
        Model artifact to write (``.pt``).
    bands : sequence of str
        Input bands in the checkpoint's channel order.
    pixel_scale : float
        Arcsec per pixel.
    mean, std : sequence of float, optional
        detectron2's ``pixel_mean`` / ``pixel_std`` per band, in the pixel units of the TileSets to estimate on
        (default: the checkpoint's own ``pixel_mean`` / ``pixel_std`` buffers, when it holds them).
    **config_options
        Passed to `detectron2_config` (anchors, ``stride_in_1x1``, ``cascade_stage``, thresholds).

    Returns
    -------
    Path
        The written artifact (one member, weight 1, no width calibration).
    """
    bands = tuple(bands)
    state = load_detectron2_state(path)
    if mean is None or std is None:
        if not all(k in state for k in PIXEL_STATS):
            raise ModelError(f"{path}: holds no pixel_mean/pixel_std: give the input normalisation (--mean, --std)")
        mean = state["pixel_mean"].flatten().tolist() if mean is None else mean
        std = state["pixel_std"].flatten().tolist() if std is None else std
    if len(mean) != len(bands) or len(std) != len(bands):
        raise ModelError(f"give one mean and one std per band ({len(bands)}), got {len(mean)} and {len(std)}")
    if not all(math.isfinite(float(s)) and float(s) > 0 for s in std):
        raise ModelError(f"std must be positive, got {list(std)}")
    first = state.get("backbone.bottom_up.stem.conv1.weight")
    if first is not None and first.shape[1] != len(bands):
        raise ModelError(f"{path}: the network reads {first.shape[1]} channels, {len(bands)} bands were given")
    config = detectron2_config(state, bands, pixel_scale, source=str(path), **config_options)
    weights = convert_detectron2(state, config, source=str(path))
    model = build_model(config)
    model.load_state_dict(weights)
    model.normaliser.set_statistics(mean, std)
    cfg = config.to_dict()
    cfg["normalisation"] = {"kind": config.normalisation, "center": [float(m) for m in mean],
                            "scale": [float(s) for s in std]}
    member = {"state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}, "weight": 1.0,
              "val_log_likelihood": float("nan"), "seed": -1, "best_epoch": -1, "std_scale": 1.0}
    provenance = {"imported_from": str(path), "format": "detectron2 (grantmerz/deepdisc)",
                  "n_tensors": len(state), "cascade_stage": config_options.get("cascade_stage")}
    return save_artifact({"config": cfg, "members": [member], "provenance": provenance}, output)
