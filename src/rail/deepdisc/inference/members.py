"""The ensemble's member networks: all built and held at once, or one network refilled with each member in turn.

`EnsemblePredictor` runs its members one after the other on each chunk, so one network is enough:
`StreamedMembers` (the default of `EnsemblePredictor.from_artifact`) builds ONE network and, when member k is
asked for, copies member k's weights into it (``load_state_dict``) and applies the ensemble's width factor.
The weights come from the artifact; read from its file with ``load_artifact(mmap=True)`` they stay in the file
and, after each copy, that member's pages are released (`rail.deepdisc.model.pages.FilePages`), so a process
holds one member's network and at most one member's weights whatever the ensemble size (10 ResNet-18 members:
64 MB instead of 640 MB). A copy costs ~7 ms per ResNet-18 member on CPU, once per member and chunk.
`ResidentMembers` holds a list of networks (all built at once: the path before this, networks built by hand,
and the default on a GPU, where the weights live in GPU memory and refilling would copy every member to the GPU
for every chunk). Both give the same networks, bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from rail.deepdisc.model.artifact import artifact_tensors
from rail.deepdisc.model.pages import FilePages

__all__ = ["ResidentMembers", "StreamedMembers"]

log = logging.getLogger(__name__)


class ResidentMembers:
    """Member networks built beforehand and all held in memory.

    Parameters
    ----------
    networks : sequence of torch.nn.Module
        One network per member (eval mode, on the predictor's device).
    """

    resident = True
    #: Resident members are all loaded: no member is cheaper to start with.
    loaded = None

    def __init__(self, networks: Sequence):
        self.networks = list(networks)

    @classmethod
    def from_artifact(cls, artifact: dict, chosen: Sequence[int], *, build: Callable, device="cpu",
                      std_scale: float | None = None) -> ResidentMembers:
        """Build the chosen members' networks (arguments as `StreamedMembers`), releasing each one's file pages.

        Returns
        -------
        ResidentMembers
        """
        import torch

        pages = FilePages.of(artifact_tensors(artifact))
        networks = []
        for index in chosen:
            networks.append(build(artifact, index, device=device))
            if std_scale is not None:
                with torch.no_grad():
                    networks[-1].redshift_head.std_scale.mul_(std_scale)
            if pages is not None:
                pages.release(artifact["members"][index]["state_dict"].values())
        return cls(networks)

    def __len__(self) -> int:
        return len(self.networks)

    def network(self, k: int):
        """Member ``k``'s network."""
        return self.networks[k]


class StreamedMembers:
    """One network, refilled with member k's weights when member k is asked for.

    Parameters
    ----------
    artifact : dict
        The model artifact (best loaded with ``load_artifact(mmap=True)``, so that only the member being
        copied is paged in). Its tensors must not be modified while this object uses them.
    chosen : sequence of int
        The artifact's members in use, in ensemble order (``network(k)`` gives member ``chosen[k]``).
    build : callable
        ``build(artifact, member, device=...)`` -> the network of one member, eval mode (called once).
    device : torch.device or str
        Where the network lives.
    std_scale : float or None
        The ensemble's width factor, multiplied into each member's ``redshift_head.std_scale`` after loading
        (None: leave the members' own widths).
    """

    resident = False

    def __init__(self, artifact: dict, chosen: Sequence[int], *, build: Callable, device="cpu",
                 std_scale: float | None = None):
        self._members = [artifact["members"][i] for i in chosen]
        self._chosen = list(chosen)
        self._build = build
        self._artifact = artifact
        self._device = device
        self._std_scale = std_scale
        self._pages = FilePages.of(artifact_tensors(artifact))
        self._network = None
        self._loaded: int | None = None
        #: How many times a member's weights were put into the network (built or copied).
        self.loads = 0

    def __len__(self) -> int:
        return len(self._members)

    @property
    def loaded(self) -> int | None:
        """The member the network holds now (None before the first)."""
        return self._loaded

    def network(self, k: int):
        """The network holding member ``k`` (the same module for every ``k``: use it before asking for another).

        Parameters
        ----------
        k : int
            Position in the ensemble (0 .. len - 1).

        Returns
        -------
        torch.nn.Module
            Eval mode, on the device, with member k's weights and the ensemble's width factor.
        """
        if self._loaded == k:
            return self._network
        import torch

        state = self._members[k]["state_dict"]
        if self._network is None:
            self._network = self._build(self._artifact, self._chosen[k], device=self._device)
        else:
            self._loaded = None  # a failed copy leaves no member half loaded
            with torch.no_grad():
                self._network.load_state_dict(state)
        if self._std_scale is not None:
            with torch.no_grad():
                self._network.redshift_head.std_scale.mul_(self._std_scale)
        if self._pages is not None:
            self._pages.release(state.values())
        self._loaded = k
        self.loads += 1
        return self._network
