"""The DeepDISC model artifact (``docs/contracts.md``): one file of tensors and plain data.

The artifact is a dict saved with ``torch.save`` and loaded with ``torch.load(weights_only=True)``, so loading a
file never executes pickled code::

    format            "deepdisc-model"
    version           3 (2: no calibration records, read with the members' own widths; 1: not readable)
    package_version   str, the pz-rail-deepdisc version that wrote it
    config            dict: backbone, bands, pixel_scale, heads, n_components, normalisation (per band), ...
    members           list of dict: state_dict (tensors), val_log_likelihood (float), weight (float),
                      calibration (optional dict of tensors: the member's mixtures of the ensemble's
                      calibration objects, `rail.deepdisc.training.calibration`)
    provenance        dict (optional): training data description, seed, epochs, ...

Writes are atomic (temporary file, then rename). A tensor equal in several members (the frozen backbone, FPN
and detector of an ensemble whose heads alone were fine-tuned) is written once (`shared_members`): torch stores
a storage once however many entries point at it, and reads it back shared, so such a file is about one network
plus the heads instead of one network per member. Any reader of torch files reads it.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.pages import FilePages

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "save_artifact", "load_artifact", "artifact_tensors",
           "shared_members", "weights_digest", "check_compatible"]

ARTIFACT_FORMAT = "deepdisc-model"
#: Version 2 (0.2): the redshift head's pixel path gained a colour block (``pixel_features``), so the head's
#: first layer and LayerNorms of version-1 files no longer fit; such files are refused with a retrain message.
#: Version 3 (0.3): members may carry ``calibration`` records (the ensemble's width calibration). Version-2
#: files are read as they are: their ensembles keep the members' own widths.
ARTIFACT_VERSION = 3
#: Versions this package reads.
READABLE_VERSIONS = (2, 3)
_REQUIRED_CONFIG = ("bands", "pixel_scale")
_PIXEL_SCALE_RTOL = 1e-3


def save_artifact(artifact: dict, path: str | os.PathLike) -> Path:
    """Write a model artifact atomically.

    Parameters
    ----------
    artifact : dict
        Plain data and tensors only; ``format`` and ``version`` are filled in when missing.
    path : str or Path
        Output file (``.pt``).

    Returns
    -------
    Path
        The written file.
    """
    import torch

    path = Path(path)
    data = {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, **artifact}
    if "package_version" not in data:
        from rail.deepdisc import __version__

        data["package_version"] = __version__
    if isinstance(data.get("members"), list):
        data["members"] = shared_members(data["members"])
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def shared_members(members: list) -> list:
    """The members with every weight equal to the first member's replaced by that very tensor.

    ``torch.save`` then writes it once. The members' dicts are copied, never changed: the caller's tensors stay
    its own.

    Parameters
    ----------
    members : list of dict
        Artifact members (``state_dict`` of tensors).

    Returns
    -------
    list of dict
    """
    import torch

    first = members[0].get("state_dict") if members and isinstance(members[0], dict) else None
    if not isinstance(first, dict):
        return members
    out = [members[0]]
    for member in members[1:]:
        state = member.get("state_dict") if isinstance(member, dict) else None
        if not isinstance(state, dict):
            out.append(member)
            continue
        shared = {}
        for name, t in state.items():
            ref = first.get(name)
            same = (isinstance(t, torch.Tensor) and isinstance(ref, torch.Tensor) and t.dtype == ref.dtype
                    and t.shape == ref.shape and t.device == ref.device and torch.equal(t, ref))
            shared[name] = ref if same else t
        out.append({**member, "state_dict": shared})
    return out


def weights_digest(state_dict: dict) -> str:
    """A SHA-256 digest (16 hex digits) of a state dict's names, dtypes, shapes and values.

    It records which weights a training run started from (`rail.deepdisc.training.ensemble`'s checkpoint
    fingerprint).
    """
    import hashlib

    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        h.update(f"{name}:{getattr(t, 'dtype', type(t).__name__)}:{tuple(getattr(t, 'shape', ()))};".encode())
        if isinstance(t, torch.Tensor):
            h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def load_artifact(path: str | os.PathLike, *, map_location: str = "cpu", mmap: bool = False) -> dict:
    """Read a model artifact with ``torch.load(weights_only=True)`` and check its structure.

    Parameters
    ----------
    path : str or Path
        The ``.pt`` file.
    map_location : str
        Device for the tensors (``cpu`` with ``mmap``).
    mmap : bool
        Map the file instead of reading it (``torch.load(mmap=True)``): the tensors stay in the file and only
        what is read is paged in. Each member's pages are released again after its check
        (`rail.deepdisc.model.pages.FilePages`), so loading holds at most one member's weights in memory. The
        file must not be rewritten in place while it is mapped (`save_artifact` replaces files atomically).

    Returns
    -------
    dict
        The artifact.

    Raises
    ------
    ModelError
        If the file is missing, not a weights-only torch file, or not a DeepDISC artifact of a known version.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    mmap = mmap and zipfile.is_zipfile(path)  # torch maps only its zip format; other files fail as they are
    try:
        data = torch.load(path, map_location="cpu" if mmap else map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: not a weights-only DeepDISC model file ({first})") from None
    if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"{path}: not a DeepDISC model artifact (format {_get(data, 'format')!r})")
    if data.get("version") not in READABLE_VERSIONS:
        older = isinstance(data.get("version"), int) and data["version"] < min(READABLE_VERSIONS)
        fix = ("it was written by an older pz-rail-deepdisc whose redshift head differs: retrain it with "
               "`deepdisc train`" if older else "upgrade pz-rail-deepdisc to read it")
        raise ModelError(f"{path}: model artifact version {data.get('version')!r} is not supported (this "
                         f"package reads versions {', '.join(map(str, READABLE_VERSIONS))}); {fix}")
    config = data.get("config")
    if not isinstance(config, dict) or any(k not in config for k in _REQUIRED_CONFIG):
        raise ModelError(f"{path}: artifact 'config' lacks {', '.join(_REQUIRED_CONFIG)}")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise ModelError(f"{path}: artifact holds no ensemble members")
    for k, member in enumerate(members):
        if not isinstance(member, dict) or "state_dict" not in member or "weight" not in member:
            raise ModelError(f"{path}: ensemble member {k} lacks 'state_dict' or 'weight'")
    pages = FilePages.of(artifact_tensors(data)) if mmap else None
    checked: set[int] = set()  # tensors shared by members (`shared_members`) are checked once
    for k, member in enumerate(members):
        _check_member(path, k, member, torch, checked)
        if pages is not None:
            pages.release(member["state_dict"].values())
    return data


def artifact_tensors(artifact: dict) -> list:
    """Every tensor of an artifact's members: weights and calibration records.

    Parameters
    ----------
    artifact : dict
        A loaded model artifact.

    Returns
    -------
    list of torch.Tensor
        (Values that are not tensors are left out.)
    """
    import torch

    out = []
    for member in artifact["members"]:
        for group in (member.get("state_dict"), member.get("calibration")):
            if isinstance(group, dict):
                out += [t for t in group.values() if isinstance(t, torch.Tensor)]
    return out


def _check_member(path, k: int, member: dict, torch, checked: set[int]) -> None:
    """Refuse a member whose weights are not a dict of finite tensors or whose ensemble weight is not a number.

    ``checked``: ids of the tensors already found finite (updated).
    """
    state = member["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: ensemble member {k} has a 'state_dict' that is not a dict of tensors")
    fresh = {name: t for name, t in state.items() if id(t) not in checked}
    bad = [name for name, t in fresh.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelError(f"{path}: ensemble member {k} has non-finite weights in {bad[0]} (the file is damaged)")
    checked.update(id(t) for t in fresh.values())
    weight = member["weight"]
    try:
        value = float(weight)
    except (TypeError, ValueError, RuntimeError):
        value = math.nan
    if isinstance(weight, (bool, str)) or not math.isfinite(value) or value < 0:
        raise ModelError(f"{path}: ensemble member {k} has weight {weight!r}, expected a finite number >= 0")


def check_compatible(artifact: dict, bands: Sequence[str], pixel_scale: float, *, model_name: str = "model",
                     data_name: str = "data") -> None:
    """Refuse data whose bands or pixel scale differ from the model's.

    Parameters
    ----------
    artifact : dict
        A model artifact (its ``config`` holds ``bands`` and ``pixel_scale``).
    bands : sequence of str
        Bands of the data, in channel order.
    pixel_scale : float
        Pixel scale of the data, arcsec/pixel (equal to the model's within a relative 1e-3).
    model_name, data_name : str
        How the model and the data are named in the message (e.g. their files).

    Raises
    ------
    ModelError
        Naming both files and the mismatch.
    """
    cfg = artifact["config"]
    model_bands = tuple(cfg["bands"])
    if tuple(bands) != model_bands:
        raise ModelError(f"{model_name} was trained on bands {' '.join(model_bands)}, but {data_name} has "
                         f"{' '.join(bands)}; reduce the data with the model's bands or retrain")
    if not math.isclose(float(cfg["pixel_scale"]), float(pixel_scale), rel_tol=_PIXEL_SCALE_RTOL):
        raise ModelError(f"{model_name} was trained at {cfg['pixel_scale']:g} arcsec/pix, but {data_name} has "
                         f"{pixel_scale:g} arcsec/pix; resample the data or retrain")


def _get(data, key):
    return data.get(key) if isinstance(data, dict) else type(data).__name__
