"""RAIL stages for DeepDISC: `DeepDiscInformer` (train an ensemble) and `DeepDiscEstimator` (photo-z PDFs).

The stages are thin adapters: they turn configuration and data handles into calls of :mod:`rail.deepdisc`
and hold no science. Both check their options strictly (a misspelled option is an error, not a default).
"""

from __future__ import annotations

import gc
import math
import os
import warnings
from typing import Any

from rail.core.data import QPHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import DeepDiscWarning, NoDetectionsWarning
from rail.deepdisc.inference.predictor import InferenceSettings
from rail.deepdisc.inference.spooled import SpooledOutputMixin
from rail.deepdisc.options import DEVICE, NUM_THREADS, PROGRESS_BAR, Option, OptionSet, build, check_stage_options
from rail.deepdisc.tileset.handles import DeepDiscModelHandle, TileSetHandle
from rail.deepdisc.training.settings import TRAIN_OPTIONS

__all__ = ["DeepDiscInformer", "DeepDiscEstimator", "ESTIMATE_OPTIONS"]

#: Every option of `DeepDiscEstimator` and ``deepdisc estimate``: `InferenceSettings`, the device and the chunking.
ESTIMATE_OPTIONS = OptionSet(
    InferenceSettings,
    DEVICE,
    NUM_THREADS,
    PROGRESS_BAR,
    Option("chunk_tiles", 32, "maximum tiles per chunk, bounding memory (0 = no limit; chunks also close at "
           "chunk_size primary objects)", low=0, metavar="N"),
    Option("chunk_size", 2000, "primary objects per chunk (whole tiles)", low=1, metavar="N"),
)


class DeepDiscInformer(CatInformer):
    """Train a DeepDISC ensemble (Mask R-CNN + mixture redshift head) on a spec-z TileSet.

    Input ``input``: a TileSet (`TileSetHandle`); output ``model``: the weights-only
    model artifact (`DeepDiscModelHandle`). Objects without spec-z (NaN ``redshift``)
    train detection only. The options are
    `rail.deepdisc.training.settings.TRAIN_OPTIONS` (the same as ``deepdisc train``'s).
    """

    name = "DeepDiscInformer"
    entrypoint_function = "inform"
    interactive_function = "deepdisc_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(TRAIN_OPTIONS.params())
    inputs = [("input", TileSetHandle)]
    outputs = [("model", DeepDiscModelHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def inform(self, training_data, **kwargs: Any) -> DeepDiscModelHandle:
        """Train the ensemble on a TileSet with spec-z labels and return the model.

        Parameters
        ----------
        training_data : TileSet, TileSetHandle or str
            The training tiles (spec-z in ``objects/redshift``, NaN = none): in memory, a
            handle or a file.
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        DeepDiscModelHandle
            The model artifact (``model``): weights-only, loads with
            ``torch.load(weights_only=True)``.
        """
        if isinstance(training_data, (str, os.PathLike)):
            training_data = TileSetHandle("input", path=str(training_data))
        return super().inform(training_data, **kwargs)

    def validate(self) -> None:
        """Refuse, before any work, a TileSet without usable spec-z labels or bad option values."""
        from rail.deepdisc.training.ensemble import check_training_set
        from rail.deepdisc.training.run import check_train_options

        check_train_options(TRAIN_OPTIONS.from_config(self.config))
        check_training_set(self.get_data("input"))

    def run(self) -> None:
        """Train the ensemble (`rail.deepdisc.training.run.train_from_options`) and register it as ``model``."""
        from rail.deepdisc.training.run import train_from_options

        tileset = self.get_data("input")
        # output_mode "return" (e.g. rail.interactive) writes nothing: no checkpoints or loss curves
        model_path = (None if self.config.output_mode == "return"
                      else self.get_output(self.get_aliased_tag("model"), final_name=True))
        options = TRAIN_OPTIONS.from_config(self.config)
        self.add_data("model", train_from_options(tileset, options, model_path=model_path))


class DeepDiscEstimator(SpooledOutputMixin, CatEstimator):
    """Run a DeepDISC ensemble on a TileSet: a Gaussian-mixture p(z) per primary object.

    Detections are matched one-to-one to catalog boxes (IoU >= ``iou_threshold``);
    unmatched objects get a forced redshift from their catalog box. Output: a ``qp``
    mixmod ensemble with ancil ``object_id``, ``zmode``, ``zmean``, ``zmedian``,
    ``detected``, ``forced``, ``recentred``, ``score``.

    The model is built once per run. Chunks of whole tiles stream through it; under MPI
    (ceci ``--mpi``, ``nprocess > 1``) each process takes every n-th chunk and spools
    its results, and process 0 writes the output in row order, so the file equals a
    one-process run's (`SpooledOutputMixin`).
    """

    name = "DeepDiscEstimator"
    entrypoint_function = "estimate"
    interactive_function = "deepdisc_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(ESTIMATE_OPTIONS.params())
    inputs = [("model", DeepDiscModelHandle), ("input", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)
        self._predictor = None
        self._settings = None
        self._progress = None
        self._tiles_unmatched = 0
        self._ebv_missing = 0

    def estimate(self, input_data, **kwargs: Any) -> QPHandle:
        """Estimate photo-z for a TileSet with the model given as ``model``.

        Parameters
        ----------
        input_data : TileSet, TileSetHandle or str
            The tiles: in memory, a handle or a file (streamed chunk by chunk, never loaded
            whole).
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        QPHandle
            The photo-z ensemble (``output``): one Gaussian mixture per primary object, in
            file order.
        """
        if isinstance(input_data, (str, os.PathLike)):
            input_data = TileSetHandle("input", path=str(input_data))
        self.set_data("input", input_data, do_read=False)
        self.validate()
        self.run()
        self.finalize()
        results = self.get_handle("output")
        if self.config.output_mode != "return":
            results.read(force=True)
        return results

    def run(self) -> None:
        """Build the ensemble once, check the input against it, then stream the chunks."""
        from rail.deepdisc.devices import set_threads
        from rail.deepdisc.inference.predictor import EnsemblePredictor, check_input

        cfg = self.config
        self._settings = build(InferenceSettings, ESTIMATE_OPTIONS.coerce(ESTIMATE_OPTIONS.from_config(cfg)))
        set_threads(cfg.num_threads)
        self._predictor = None
        artifact = self.open_model(**cfg)
        model_name = str(cfg.get("model") if isinstance(cfg.get("model"), str) else "model")
        self._predictor = EnsemblePredictor.from_artifact(artifact, device=cfg.device, name=model_name)
        if isinstance(cfg.get("model"), str):
            # read from its file by this stage (memory-mapped): the predictor keeps what it needs; the stage's
            # and the handle's references go (the handle reads the file again if asked)
            self.model = artifact = None
            self.get_handle("model").data = None
        handle = self.get_handle("input", allow_missing=True)
        n_primary = check_input(self._predictor, handle.data if handle.data is not None else handle.path)
        self._progress = tqdm(total=n_primary if self.size == 1 else None, unit="obj", desc=self.name,
                              disable=not (cfg.progress_bar and self.rank == 0))
        self._tiles_unmatched = 0
        self._ebv_missing = 0
        # RAIL collects garbage after every chunk; with torch loaded a full collection costs ~0.3 s. Freezing
        # the long-lived objects (modules, networks) makes those collections scan only the chunk's objects.
        gc.freeze()
        try:
            super().run()  # SpooledOutputMixin: an interrupted run leaves no spool behind
        finally:
            gc.unfreeze()

    def open_model(self, tag: str = "model", **kwargs: Any):
        """RAIL's ``open_model``, except while `run` streams chunks (the networks are built).

        ``CatEstimator.run`` opens the model again before its chunk loop: that read the whole file a second
        time and kept it in memory (64 MB per R18 member per process).
        """
        if self._predictor is not None:
            return self.model
        return super().open_model(tag, **kwargs)

    def input_iterator(self, tag: str, **kwargs: Any):
        """Iterate over chunks of whole tiles (<= ``chunk_tiles`` tiles, ~``chunk_size`` primary objects)."""
        handle = self.get_handle(tag, allow_missing=True)
        if tag == "input" and handle.path in (None, "None", "none") and handle.data is not None:
            self._input_length = handle.data.n_primary  # an in-memory TileSet: one chunk
            return handle.iterator()
        if tag == "input":
            kwargs.setdefault("chunk_tiles", self.config.chunk_tiles or None)
            # give every MPI process a chunk; RAIL does this too but then crashes on its own log message
            n_rows = handle.size()
            if self.size > 1 and math.ceil(n_rows / self.config.chunk_size) < self.size:
                self.config.chunk_size = max(1, math.ceil(n_rows / self.size))
        return super().input_iterator(tag, **kwargs)

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        result = self._predictor.predict(data, self._settings)
        self._tiles_unmatched += result.tiles_unmatched
        self._ebv_missing += result.ebv_missing
        self._progress.update(end - start)
        if end > start:
            self._do_chunk_output(result.to_qp(), start, end, self._output_handle is None)

    def _finalize_run(self) -> None:
        self._progress.close()
        if self._ebv_missing:
            warnings.warn(f"{self.name}: {self._ebv_missing} object(s) have no finite 'ebv' (Milky-Way "
                          f"E(B-V)); the network was given 0 for them: fill the column (e.g. from a dust "
                          f"map) and rerun", DeepDiscWarning, stacklevel=2)
        if self._tiles_unmatched:
            warnings.warn(f"{self.name}: in {self._tiles_unmatched} tile(s) no detection above "
                          f"score_threshold={self.config.score_threshold} matched any object; their objects "
                          f"have forced redshifts from their catalog boxes (forced=1)", NoDetectionsWarning,
                          stacklevel=2)
        super()._finalize_run()

