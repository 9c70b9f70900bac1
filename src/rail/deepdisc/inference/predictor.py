"""Running a DeepDISC ensemble over chunks of tiles: detect, match, forced boxes, redshift mixtures.

`EnsemblePredictor` builds one network on the CPU (`model_from_artifact`, the single place where the network
is constructed), refilled with each member's weights in turn (`rail.deepdisc.inference.members`: one member in
memory at a time; on a GPU every member's network, held), and turns each chunk of whole tiles into one combined
photo-z mixture per *primary* object (`PhotoZChunk`). Per member and batch of tiles the backbone runs once
(``encode``); the detector's boxes above ``score_threshold`` are matched one-to-one to the tile's catalog boxes
(all appearances, so a detection of a neighbour's non-primary appearance cannot steal a primary object); each
primary object then takes its redshift mixture from the matched detection box or, if no detection matched,
from its catalog box (forced). All boxes of a batch go through one batched ``redshift`` call (one RoIAlign).

With ``shared_detection`` only one member, the *detector* (the member of highest ensemble weight, the first
on ties), detects and matches; every other member runs only its backbone and its redshift head on the
detector's boxes. Detection (RPN, box head, NMS) and matching then run once per tile instead of once per
member.

Per-object flags of the ensemble: ``detected`` = a detection matched the object in at least one member;
``forced`` = no member matched it (every member used the catalog box); ``score`` = member-weighted mean of the
matched detection scores (0 for a member that did not match). With ``shared_detection`` every member shares
the detector's matches, so these are the detector's flags and score. In ``forced_all`` mode detection is
skipped: every object is forced and its score is 0. The per-chunk steps live in :mod:`rail.deepdisc.inference.chunk`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.exceptions import ConfigError, DeepDiscError, ModelError, TileSetError
from rail.deepdisc.inference.chunk import assemble_chunk, plan_chunk, run_member
from rail.deepdisc.inference.match import DEFAULT_IOU_THRESHOLD
from rail.deepdisc.inference.members import ResidentMembers, StreamedMembers
from rail.deepdisc.inference.photoz import PhotoZChunk, empty_chunk
from rail.deepdisc.model.artifact import check_compatible
from rail.deepdisc.options import check_fields, option
from rail.deepdisc.tileset.contract import check_objects
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.validation import open_checked, read_columns, reading

__all__ = [
    "InferenceSettings",
    "EnsemblePredictor",
    "check_input",
    "holds_all_members",
    "model_from_artifact",
]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class InferenceSettings:
    """Options of the estimator's inference (built once by the stage or the CLI).

    Parameters
    ----------
    iou_threshold : float
        Minimum IoU, in (0, 1], for a detection to match a catalog box.
    score_threshold : float
        Detections below this confidence, in [0, 1], are dropped before matching.
    forced_all : bool
        Skip detection: every object's redshift comes from its catalog box.
    batch_size : int
        Tiles per forward pass.
    zmin, zmax : float
        Redshift range of the ``zmode`` grid.
    nzbins : int
        Points of the ``zmode`` grid ``linspace(zmin, zmax, nzbins)``.
    shared_detection : bool
        Detect and match with one member only (`EnsemblePredictor.detector`); the other members read its boxes
        (x1.3 for 3, x1.45 for 10 members on CPU: the backbone still runs per member; ``detected``,
        ``forced`` and ``score`` are the detector's).
    bf16 : bool
        Run the backbone/FPN under ``torch.autocast(dtype=torch.bfloat16)``; its features are cast back to
        float32 for detection and the redshift head. Off by default: it changes the outputs at the 1e-2 level
        (see ``benchmarks/README.md``, "Ensemble speed").
    channels_last : bool
        Run the networks in the ``channels_last`` memory layout (oneDNN's fast path for the backbone's
        convolutions on CPU; the outputs agree with the default layout to float rounding).
    """

    iou_threshold: float = option(DEFAULT_IOU_THRESHOLD, "minimum IoU for a detection to match a catalog box",
                                  low=0, high=1, low_open=True)
    score_threshold: float = option(0.05, "minimum detection confidence kept before matching", low=0, high=1)
    forced_all: bool = option(False, "take every object's redshift from its catalog box (forced photometry mode), "
                              "skipping detection matching")
    batch_size: int = option(8, "tiles per forward pass", low=1)
    zmin: float = option(ZMIN, "minimum redshift of the z grid")
    zmax: float = option(ZMAX, "maximum redshift of the z grid")
    nzbins: int = option(NZBINS, "number of z grid points (zmode is found on this grid)", low=2)
    shared_detection: bool = option(False, "detect and match once per tile with the ensemble's highest-weight "
                                    "member; the other members run only their backbone and redshift head on "
                                    "its boxes (faster ensembles; flags and score are that member's)")
    bf16: bool = option(False, "run the backbone/FPN under bfloat16 autocast (CPUs with AVX-512 BF16 or AMX, "
                        "GPUs); detection and the redshift head stay float32. Faster where supported; shifts "
                        "the mixtures by up to ~1e-2")
    channels_last: bool = True

    def __post_init__(self):
        check_fields(self)
        if not self.zmax > self.zmin:
            raise ConfigError(f"zmax must exceed zmin, got zmin={self.zmin!r}, zmax={self.zmax!r}")

    @property
    def zgrid(self) -> np.ndarray:
        """The ``zmode`` grid, shape (nzbins,)."""
        return np.linspace(self.zmin, self.zmax, self.nzbins)


def holds_all_members(device) -> bool:
    """Whether an ensemble on ``device`` holds all its members' networks by default (on a GPU) or one at a time.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    bool
    """
    return device.type != "cpu"


def model_from_artifact(artifact: dict, member: int, *, device="cpu"):
    """Build ensemble member ``member`` of an artifact (eval mode, weights loaded) on ``device``.

    The one place where the estimator constructs a network: it defers to
    :func:`rail.deepdisc.model.network.model_from_artifact`.

    Parameters
    ----------
    artifact : dict
        A loaded model artifact.
    member : int
        Index into ``artifact["members"]``.
    device : str or torch.device
        Where to put the network.

    Returns
    -------
    torch.nn.Module
        A network with ``encode``, ``detect`` and ``redshift``.
    """
    from rail.deepdisc.model.network import model_from_artifact as build

    return build(artifact, member, device=device)


class EnsemblePredictor:
    """The ensemble's member networks, applied chunk by chunk, one member after the other.

    Parameters
    ----------
    models : sequence of torch.nn.Module, or StreamedMembers
        Member networks with the inference methods ``encode``, ``detect`` and ``redshift`` (eval mode), all
        held in memory; or one network refilled with each member in turn
        (`rail.deepdisc.inference.members.StreamedMembers`, what `from_artifact` builds by default).
    weights : sequence of float
        Ensemble weight per member (normalised to sum to 1).
    bands : sequence of str
        Bands the networks were trained on, in channel order.
    pixel_scale : float
        Pixel scale the networks were trained at, arcsec/pix.
    device : torch.device or str
        Where the networks live; input tiles are moved there batch by batch.
    name : str
        How messages refer to the model (e.g. its file).
    """

    def __init__(self, models, weights: Sequence[float], *, bands: Sequence[str],
                 pixel_scale: float, device="cpu", name: str = "model"):
        self.members = models if isinstance(models, StreamedMembers) else ResidentMembers(models)
        w = np.asarray(weights, dtype=np.float64)
        if len(self.members) == 0 or w.shape != (len(self.members),):
            raise ModelError(f"{name}: need one weight per member, got {len(self.members)} members and {w.size} "
                             f"weights")
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ModelError(f"{name}: member weights must be finite, >= 0 and not all zero, got "
                             f"{w.tolist()}")
        self.weights = w / w.sum()
        self.bands = tuple(bands)
        self.pixel_scale = float(pixel_scale)
        self.device = device
        self.name = name
        #: The member that detects for all with ``shared_detection``: highest weight, the first on ties.
        self.detector = int(np.argmax(self.weights))

    @property
    def models(self) -> list:
        """The member networks, when all are held in memory (``from_artifact(..., resident=True)``).

        Raises
        ------
        ModelError
            For an ensemble that streams its members through one network: use `networks`.
        """
        if not self.members.resident:
            raise ModelError(f"{self.name}: the members share one network, refilled member by member; iterate "
                             f"over networks() or build the predictor with resident=True")
        return self.members.networks

    def networks(self):
        """Yield ``(k, network)`` for every member in turn; the network may be one module refilled per member.

        Yields
        ------
        k : int
            Member position in the ensemble.
        network : torch.nn.Module
            Member k's network (eval mode); use it before taking the next.
        """
        for k in range(len(self.members)):
            yield k, self.members.network(k)

    @classmethod
    def from_artifact(cls, artifact: dict, *, device: str = "auto", members: Sequence[int] | None = None,
                      name: str = "model", resident: bool | None = None) -> EnsemblePredictor:
        """Build the ensemble of a loaded artifact (see `rail.deepdisc.model.artifact.load_artifact`).

        Parameters
        ----------
        artifact : dict
            The model artifact; read with ``load_artifact(path, mmap=True)``, its weights stay in the file and
            only the member in use is in memory.
        device : str
            ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        members : sequence of int, optional
            Use only these members (their weights renormalised); all by default.
        name : str
            How messages refer to the model.
        resident : bool, optional
            True: build every member's network and hold them all. False: build one network and refill it with
            each member in turn (`rail.deepdisc.inference.members.StreamedMembers`); the outputs are the same,
            bit for bit. By default (None) `holds_all_members` decides: one at a time on the CPU, all held on a
            GPU (their weights then live in GPU memory, not in the process's RSS, and refilling would copy every
            member to the GPU for every chunk). With a memory-mapped artifact, each member's pages are released
            once it is in its network, either way.

        Notes
        -----
        The members' widths are multiplied by the factor calibrating the mixture of exactly these members
        (`rail.deepdisc.training.calibration.ensemble_std_scale`; 1 for artifacts without calibration records).
        Every member is put into the network once here, so weights that do not fit fail now.

        Returns
        -------
        EnsemblePredictor
        """
        from rail.deepdisc.devices import resolve_device
        from rail.deepdisc.training.calibration import ensemble_std_scale

        dev = resolve_device(device)
        n_members = len(artifact["members"])
        chosen = list(range(n_members)) if members is None else list(members)
        if not chosen or any(not 0 <= k < n_members for k in chosen):
            raise ModelError(f"{name}: members {chosen} not in the artifact's 0..{n_members - 1}")
        resident = holds_all_members(dev) if resident is None else resident
        try:
            weights = [float(artifact["members"][k]["weight"]) for k in chosen]
            scale, n_cal = ensemble_std_scale([artifact["members"][k] for k in chosen], name=name)
            factor = scale if n_cal else None  # artifacts without calibration records keep the members' widths
            if resident:
                networks = ResidentMembers.from_artifact(artifact, chosen, build=model_from_artifact, device=dev,
                                                         std_scale=factor).networks
            else:
                networks = StreamedMembers(artifact, chosen, build=model_from_artifact, device=dev,
                                           std_scale=factor)
                for k in range(len(chosen)):
                    networks.network(k)
        except DeepDiscError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            raise ModelError(f"{name}: the members do not fit the network config ({type(err).__name__}: {err}); "
                             f"the file is damaged or was not written by pz-rail-deepdisc") from None
        cfg = artifact["config"]
        log.info("%s: %d member(s) on %s%s%s", name, len(chosen), dev, "" if resident else ", one at a time",
                 f", widths x {scale:.3f} (fitted on {n_cal} calibration objects)" if n_cal else "")
        return cls(networks, weights, bands=cfg["bands"], pixel_scale=cfg["pixel_scale"], device=dev, name=name)

    def check_compatible(self, bands: Sequence[str], pixel_scale: float, *, data_name: str = "data") -> None:
        """Raise `ModelError` if the data's bands or pixel scale differ from the model's."""
        config = {"bands": self.bands, "pixel_scale": self.pixel_scale}
        check_compatible({"config": config}, bands, pixel_scale, model_name=self.name, data_name=data_name)

    def predict(self, tiles: TileSet, settings: InferenceSettings) -> PhotoZChunk:
        """Photo-z mixtures and point estimates of every primary object of a chunk of tiles.

        Parameters
        ----------
        tiles : TileSet
            A chunk of whole tiles (e.g. from `rail.deepdisc.tileset.io.iter_tileset`).
        settings : InferenceSettings
            Matching, batching and point-estimate options.

        Returns
        -------
        PhotoZChunk
            One row per primary object of ``tiles``, in file order.

        Raises
        ------
        ModelError
            If the tiles' bands or pixel scale differ from the model's.
        """
        self.check_compatible(tiles.bands, tiles.pixel_scale, data_name=tiles.source)
        return self._predict(tiles, settings)

    def _predict(self, tiles: TileSet, settings: InferenceSettings) -> PhotoZChunk:
        import torch

        plan = plan_chunk(tiles)
        if plan.n_primary == 0:
            return empty_chunk()
        n = len(self.members)
        shared = settings.shared_detection and not settings.forced_all and n > 1
        # with shared detection the detector runs first (the others read its boxes); otherwise start with the
        # member the network holds (one load fewer per chunk); the results are combined in member order
        first = self.detector if shared else (self.members.loaded or 0)
        order = [first] + [k for k in range(n) if k != first]
        results, lead = [None] * n, None
        for k in order:
            network = self.members.network(k)  # one member in memory at a time (StreamedMembers)
            with torch.inference_mode():
                results[k] = run_member(network, tiles, plan, settings, self.device, shared=lead)
            if shared and lead is None:
                lead = results[k]
        return assemble_chunk(tiles, plan, results, self.weights, settings)


def check_input(predictor: EnsemblePredictor, tiles) -> int:
    """Check a TileSet before any inference: structure, object table, bands, pixel scale, not empty.

    Parameters
    ----------
    predictor : EnsemblePredictor
        The model that will run.
    tiles : str, Path or TileSet
        The input file (read without loading its pixels) or an in-memory set.

    Returns
    -------
    int
        Number of primary objects (output rows).

    Raises
    ------
    TileSetError
        If the file is missing, not a TileSet, malformed, or holds no primary object.
    ModelError
        If its bands or pixel scale differ from the model's.
    """
    if isinstance(tiles, TileSet):
        source, bands, pixel_scale = tiles.source, tiles.bands, tiles.pixel_scale
        n_tiles, objects = tiles.n_tiles, tiles.objects
    else:
        source = str(tiles)
        f, bands, pixel_scale, _ = open_checked(tiles, source)
        with f, reading(source):
            n_tiles = f["images"].shape[0]
            objects = read_columns(f["objects"], names=["object_id", "tile", "primary"])
    check_objects(source, n_tiles, objects)
    predictor.check_compatible(bands, pixel_scale, data_name=source)
    n_primary = int(np.count_nonzero(objects["primary"]))
    if n_primary == 0:
        raise TileSetError(f"{source}: holds no primary objects ({n_tiles} tiles); nothing to estimate: "
                           f"check that the file was written completely")
    return n_primary
