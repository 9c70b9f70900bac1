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

from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import QPHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer
from tqdm.auto import tqdm

from rail.deepdisc.constants import IOU_THRESHOLD, N_COMPONENTS, NZBINS, ZMAX
from rail.deepdisc.exceptions import DeepDiscWarning, NoDetectionsWarning
from rail.deepdisc.inference.spooled import SpooledOutputMixin
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.tileset.handles import DeepDiscModelHandle, TileSetHandle

__all__ = ["DeepDiscInformer", "DeepDiscEstimator"]


class DeepDiscInformer(CatInformer):
    """Train a DeepDISC ensemble (Mask R-CNN + mixture redshift head) on a spec-z TileSet.

    Input ``input``: a TileSet (`TileSetHandle`); output ``model``: the weights-only
    model artifact (`DeepDiscModelHandle`). Objects without spec-z (NaN ``redshift``)
    train detection only.
    """

    name = "DeepDiscInformer"
    entrypoint_function = "inform"
    interactive_function = "deepdisc_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        backbone=Param(str, "resnet18", msg="ResNet-FPN backbone: resnet18 (fast CPU default), resnet34, "
                       "resnet50 (the paper's fiducial)"),
        backbone_norm=Param(str, "group", msg="ResNet normalisation layers: group (GroupNorm, for training "
                            "from scratch) or batch (BatchNorm, to load ImageNet-style backbone_weights "
                            "fully)"),
        backbone_weights=Param(str, "", msg="optional local checkpoint of backbone weights to start from "
                               "(nothing is downloaded)"),
        init_model=Param(str, "", msg="optional pretrained DeepDISC artifact every member starts from "
                         "(fine-tuning, e.g. the output of DeepDiscPretrainer; use a lower learning_rate)"),
        first_conv=Param(str, "reinit", msg="when init_model has other bands: reinit (the paper's recipe) or "
                         "adapt (averaged pretrained filters) the first convolution"),
        freeze=Param(list, [], msg="parts kept fixed during the first freeze_epochs epochs of fine-tuning: "
                     "backbone, fpn, redshift_head"),
        freeze_epochs=Param(int, 0, msg="epochs with the freeze parts fixed (0 = never)"),
        n_components=Param(int, N_COMPONENTS, msg="Gaussian components of each object's redshift mixture"),
        head_hidden=Param(list, [1024, 64], msg="hidden layer widths of the redshift MLP head"),
        pixel_pool_size=Param(int, 4, msg="the redshift head also reads each box's colours and its pixels pooled "
                              "to this size per band (0 = the paper's head, RoI features only)"),
        redshift_loss_weight=Param(float, 1.0, msg="weight of the redshift NLL in the total loss"),
        head_lr_factor=Param(float, 0.5, msg="the redshift head's learning rate relative to the network's"),
        head_steps=Param(int, 4, msg="extra redshift-head-only updates per batch (0 = none)"),
        head_replay=Param(int, 16, msg="extra head updates use the head inputs of this many recent batches"),
        head_dropout=Param(float, 0.3, msg="dropout probability in the redshift head's MLP while training "
                           "(0 = off, as in the paper)"),
        calibrate_widths=Param(bool, True, msg="after training, fit one factor on the mixture widths that "
                               "maximises the validation likelihood (False = the raw widths)"),
        redshift_backbone_grad=Param(float, 0.1, msg="fraction of the redshift NLL's gradient passed on to the "
                                     "shared backbone/FPN (1 = joint training as in Merz et al. 2025)"),
        normalisation=Param(str, "zscore", msg="per-band input scaling: zscore (from training pixels) or "
                            "asinh"),
        members=Param(int, 10, msg="ensemble members, each on its own random train/validation partition"),
        val_fraction=Param(float, 0.1, msg="fraction of the labelled tiles held out for validation"),
        calibration_fraction=Param(float, 0.0, msg="fraction of the labelled tiles held out from every member "
                                   "to calibrate the ensemble's widths (0 = none; e.g. 0.1)"),
        epochs=Param(int, 20, msg="training epochs per member"),
        batch_size=Param(int, 4, msg="tiles per optimisation step"),
        optimizer=Param(str, "adamw", msg="adamw (default: trains the mixture head from scratch "
                        "stably) or sgd (the paper's, with momentum)"),
        learning_rate=Param(float, 1e-3, msg="initial learning rate"),
        momentum=Param(float, 0.9, msg="SGD momentum (optimizer sgd only)"),
        weight_decay=Param(float, 1e-4, msg="SGD weight decay (L2)"),
        lr_steps=Param(list, [], msg="epochs at which the learning rate is multiplied by lr_gamma "
                       "(paper: 45, 75, 105 of 150)"),
        lr_gamma=Param(float, 0.1, msg="learning-rate factor at each step"),
        lr_schedule=Param(str, "cosine", msg="cosine (decay to 5% over the epochs, times the steps) or steps "
                          "(the steps alone, as Merz et al. 2025)"),
        patience=Param(int, 10, msg="early stopping: epochs without validation improvement"),
        augment_noise=Param(float, 0.0, msg="std of extra Gaussian pixel noise, in units of each band's "
                            "sky noise (0 = off)"),
        augment_ebv=Param(float, 0.0, msg="std of the E(B-V) jitter added in training, mag (0 = off)"),
        augment_dihedral=Param(bool, True, msg="augment by random 90-degree rotations and flips"),
        augment_box_jitter=Param(float, 0.05, msg="jitter of the boxes the redshift head sees in training, "
                                 "as a fraction of the box size (robustness to detected boxes; 0 = off)"),
        clip_grad_norm=Param(float, 10.0, msg="maximum gradient norm per step (0 = no clipping)"),
        member_indices=Param(list, [], msg="train only these member indices (to split an ensemble over "
                             "processes; join the parts with rail.deepdisc.training.ensemble.merge_artifacts); "
                             "[] = all"),
        seed=Param(int, 1234, msg="random seed (partitions, initialisation, augmentation)"),
        device=Param(str, "auto", msg="torch device: auto (CUDA when present), cpu, cuda, cuda:N"),
        num_threads=Param(int, 0, msg="torch CPU threads (0 = torch's default)"),
        checkpoint_dir=Param(str, "", msg="folder for per-epoch checkpoints (default: beside the model)"),
        resume=Param(bool, False, msg="resume from the last checkpoint in checkpoint_dir"),
        progress_bar=Param(bool, True, msg="show a progress bar"),
    )
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
        from rail.deepdisc.training.run import TRAIN_DEFAULTS, check_train_options

        check_train_options({key: self.config[key] for key in TRAIN_DEFAULTS})
        check_training_set(self.get_data("input"))

    def run(self) -> None:
        """Train the ensemble (`rail.deepdisc.training.run.train_from_options`) and register it as ``model``."""
        from rail.deepdisc.training.run import TRAIN_DEFAULTS, train_from_options

        tileset = self.get_data("input")
        # output_mode "return" (e.g. rail.interactive) writes nothing: no checkpoints or loss curves
        model_path = (None if self.config.output_mode == "return"
                      else self.get_output(self.get_aliased_tag("model"), final_name=True))
        options = {key: self.config[key] for key in TRAIN_DEFAULTS}
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
    config_options.update(
        zmin=SharedParams.copy_param("zmin"),
        zmax=SharedParams.copy_param("zmax"),
        nzbins=SharedParams.copy_param("nzbins"),
        iou_threshold=Param(float, IOU_THRESHOLD, msg="minimum IoU for a detection to match a catalog box"),
        score_threshold=Param(float, 0.05, msg="minimum detection confidence kept before matching"),
        forced_all=Param(bool, False, msg="take every object's redshift from its catalog box (forced "
                         "photometry mode), skipping detection matching"),
        batch_size=Param(int, 8, msg="tiles per forward pass"),
        device=Param(str, "auto", msg="torch device: auto (CUDA when present), cpu, cuda, cuda:N"),
        num_threads=Param(int, 0, msg="torch CPU threads (0 = torch's default)"),
        progress_bar=Param(bool, True, msg="show a progress bar"),
        chunk_tiles=Param(int, 256, msg="maximum tiles per chunk, bounding memory (0 = no limit; chunks "
                          "also close at chunk_size primary objects)"),
    )
    config_options["zmax"] = Param(float, ZMAX, msg="maximum redshift of the z grid")
    config_options["nzbins"] = Param(int, NZBINS, msg="number of z grid points (zmode is found on this grid)")
    config_options["chunk_size"] = Param(int, 2000, msg="primary objects per chunk (whole tiles)")
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
        from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings, check_input

        cfg = self.config
        set_threads(cfg.num_threads)
        artifact = self.open_model(**cfg)
        model_name = str(cfg.get("model") if isinstance(cfg.get("model"), str) else "model")
        self._predictor = EnsemblePredictor.from_artifact(artifact, device=cfg.device, name=model_name)
        handle = self.get_handle("input", allow_missing=True)
        n_primary = check_input(self._predictor, handle.data if handle.data is not None else handle.path)
        self._settings = InferenceSettings(
            iou_threshold=cfg.iou_threshold, score_threshold=cfg.score_threshold, forced_all=cfg.forced_all,
            batch_size=cfg.batch_size, zmin=cfg.zmin, zmax=cfg.zmax, nzbins=cfg.nzbins,
        )
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

