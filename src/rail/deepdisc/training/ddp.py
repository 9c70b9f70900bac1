"""Multi-process data-parallel training with torch DDP, launched by ``torchrun`` (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node 2 -m rail.deepdisc.cli train TILES.h5 -o MODEL.pt`` starts two processes; each
reads the environment variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
...), and `DistContext.from_env` joins the process group. Every rank trains the same ensemble member on its
own shard of each epoch's batches (gradients are averaged by ``DistributedDataParallel``); rank 0 validates,
decides early stopping (broadcast to the others) and writes checkpoints and the artifact. Without torchrun the
context is a single process and nothing is initialised.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistContext"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process (a single process when not launched by torchrun).

    Attributes
    ----------
    rank, world_size, local_rank : int
        As set by torchrun.
    backend : str
        ``"gloo"`` (CPU) or ``"nccl"`` (CUDA); empty for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that writes files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        """Join the process group torchrun describes in the environment (or return a single-process context).

        Parameters
        ----------
        device : torch.device
            The training device: NCCL for CUDA (each rank uses GPU ``LOCAL_RANK``), gloo for CPU.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        ctx = cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            backend=backend,
        )
        log.info("DDP rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
        if not ctx.is_main:  # one log stream: rank 0 reports progress, the others only warnings
            logging.getLogger("rail.deepdisc").setLevel(logging.WARNING)
        return ctx

    def device_for(self, device: torch.device) -> torch.device:
        """Return the device of this rank (``cuda:LOCAL_RANK`` under NCCL)."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """Cut an epoch's tile order into this rank's batches (the same number on every rank).

        The order is cut into ``world_size`` interleaved shards (wrapping around so all are equally long),
        then into batches of ``batch_size``; a last batch of one tile joins the one before.
        """
        n = len(indices)
        per_rank = -(-n // self.world_size)
        padded = np.resize(indices, per_rank * self.world_size) if n else indices
        mine = padded[self.rank :: self.world_size]
        batches = [mine[k : k + batch_size] for k in range(0, len(mine), batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:  # a lone tile would break BatchNorm: join the last two
            batches[-2:] = [np.concatenate(batches[-2:])]
        return batches

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        if not self.distributed:
            return values
        buf = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(buf, src=0)
        return buf.cpu().tolist()

    def all_sum(self, values: list[float]) -> list[float]:
        """The sum of every rank's ``values``, on every rank (a collective call under DDP)."""
        if not self.distributed:
            return values
        buf = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.cpu().tolist()

    def all_true(self, flag: bool) -> bool:
        """Return whether ``flag`` is true on every rank (a collective call under DDP)."""
        if not self.distributed:
            return flag
        buf = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._comm_device())
        dist.all_reduce(buf, op=dist.ReduceOp.MIN)
        return bool(buf.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` when distributed, else the model itself."""
        if not self.distributed:
            return model
        ids = [self.local_rank] if self.backend == "nccl" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        """Leave the process group."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
