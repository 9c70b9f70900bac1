"""Torch devices and CPU threads for training and inference (``device="auto"``: CUDA when present)."""

from __future__ import annotations

import torch

from rail.deepdisc.exceptions import ConfigError

__all__ = ["resolve_device", "set_threads"]


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device option into a ``torch.device``.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ConfigError
        For an unknown device string or CUDA requested where none is available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'"
        )
    return dev


def set_threads(num_threads: int) -> None:
    """Set torch's CPU threads.

    Parameters
    ----------
    num_threads : int
        Threads for intra-op parallelism; 0 keeps torch's default.
    """
    if num_threads < 0:
        raise ConfigError(f"num_threads must be >= 0 (0 = torch default), got {num_threads}")
    if num_threads > 0:
        torch.set_num_threads(num_threads)
