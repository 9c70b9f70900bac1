"""RAIL stages for DeepDISC: `DeepDiscInformer` (train an ensemble) and `DeepDiscEstimator` (photo-z PDFs).

The stages are thin adapters: they turn configuration and data handles into calls of :mod:`rail.deepdisc`
and hold no science. Both check their options strictly (a misspelled option is an error, not a default).
"""

from __future__ import annotations

from typing import Any

from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.handles import DeepDiscModelHandle, TileSetHandle
from rail.deepdisc.options import check_options

__all__ = ["DeepDiscInformer", "DeepDiscEstimator"]


def _strict_init(stage, args: Any, kwargs: dict) -> None:
    given = dict(args) if isinstance(args, dict) else {}
    given.update(kwargs)
    tags = [t for t, _ in stage.inputs] + [t for t, _ in stage.outputs]
    check_options(stage.name, given, stage.config_options, tags)


class DeepDiscInformer(CatInformer):
    """Train a DeepDISC ensemble (Mask R-CNN + Gaussian-mixture redshift head) on a TileSet with spec-z.

    Input ``input``: a TileSet (`TileSetHandle`); output ``model``: the weights-only model artifact
    (`DeepDiscModelHandle`). Objects without spec-z (NaN ``redshift``) train detection only.
    """

    name = "DeepDiscInformer"
    entrypoint_function = "inform"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        backbone=Param(str, "resnet18", msg="ResNet-FPN backbone: resnet18 (fast CPU default), resnet34, "
                       "resnet50 (the paper's fiducial)"),
        backbone_norm=Param(str, "group", msg="ResNet normalisation layers: group (GroupNorm, for training "
                            "from scratch) or batch (BatchNorm, to load ImageNet-style backbone_weights "
                            "fully)"),
        backbone_weights=Param(str, "", msg="optional local checkpoint of backbone weights to start from "
                               "(nothing is downloaded)"),
        init_model=Param(str, "", msg="optional pretrained DeepDISC artifact every member starts from"),
        n_components=Param(int, 5, msg="Gaussian components of each object's redshift mixture"),
        head_hidden=Param(list, [1024, 64], msg="hidden layer widths of the redshift MLP head"),
        redshift_loss_weight=Param(float, 1.0, msg="weight of the redshift NLL in the total loss"),
        normalisation=Param(str, "zscore", msg="per-band input scaling: zscore (from training pixels) or "
                            "asinh"),
        members=Param(int, 10, msg="ensemble members, each on its own random train/validation partition"),
        val_fraction=Param(float, 0.1, msg="fraction of the labelled tiles held out for validation"),
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
        patience=Param(int, 10, msg="early stopping: epochs without validation improvement"),
        augment_noise=Param(float, 0.0, msg="std of extra Gaussian pixel noise, in units of each band's "
                            "sky noise (0 = off)"),
        augment_ebv=Param(float, 0.0, msg="std of the E(B-V) jitter added in training, mag (0 = off)"),
        augment_dihedral=Param(bool, True, msg="augment by random 90-degree rotations and flips"),
        augment_box_jitter=Param(float, 0.05, msg="jitter of the boxes the redshift head sees in training, "
                                 "as a fraction of the box size (robustness to detected boxes; 0 = off)"),
        clip_grad_norm=Param(float, 10.0, msg="maximum gradient norm per step (0 = no clipping)"),
        member_indices=Param(list, [], msg="train only these member indices (to split an ensemble over "
                             "processes; join the parts with rail.deepdisc.ensemble.merge_artifacts); "
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
        _strict_init(self, args, kwargs)
        super().__init__(args, **kwargs)

    def validate(self) -> None:
        """Refuse, before any work, a TileSet without usable spec-z labels or bad option values."""
        from rail.deepdisc.ensemble import check_training_set
        from rail.deepdisc.trainrun import TRAIN_DEFAULTS, check_train_options

        check_train_options({key: self.config[key] for key in TRAIN_DEFAULTS})
        check_training_set(self.get_data("input"))

    def run(self) -> None:
        """Train the ensemble (`rail.deepdisc.trainrun.train_from_options`) and register it as ``model``."""
        from rail.deepdisc.trainrun import TRAIN_DEFAULTS, train_from_options

        tileset = self.get_data("input")
        model_path = self.get_output(self.get_aliased_tag("model"), final_name=True)
        options = {key: self.config[key] for key in TRAIN_DEFAULTS}
        self.add_data("model", train_from_options(tileset, options, model_path=model_path))


class DeepDiscEstimator(CatEstimator):
    """Run a DeepDISC ensemble on a TileSet: one Gaussian-mixture p(z) per primary catalog object.

    Detections are matched one-to-one to catalog boxes (IoU >= ``iou_threshold``); unmatched objects get a
    forced redshift from their catalog box. Output: a ``qp`` mixmod ensemble with ancil ``object_id``,
    ``zmode``, ``zmean``, ``zmedian``, ``detected``, ``forced``, ``recentred``, ``score``.
    """

    name = "DeepDiscEstimator"
    entrypoint_function = "estimate"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        zmin=SharedParams.copy_param("zmin"),
        zmax=SharedParams.copy_param("zmax"),
        nzbins=SharedParams.copy_param("nzbins"),
        iou_threshold=Param(float, 0.3, msg="minimum IoU for a detection to match a catalog box"),
        score_threshold=Param(float, 0.05, msg="minimum detection confidence kept before matching"),
        forced_all=Param(bool, False, msg="take every object's redshift from its catalog box (forced "
                         "photometry mode), skipping detection matching"),
        batch_size=Param(int, 8, msg="tiles per forward pass"),
        device=Param(str, "auto", msg="torch device: auto (CUDA when present), cpu, cuda, cuda:N"),
        num_threads=Param(int, 0, msg="torch CPU threads (0 = torch's default)"),
        progress_bar=Param(bool, True, msg="show a progress bar"),
    )
    config_options["zmax"] = Param(float, 12.0, msg="maximum redshift of the z grid")
    config_options["nzbins"] = Param(int, 1201, msg="number of z grid points (zmode is found on this grid)")
    config_options["chunk_size"] = Param(int, 2000, msg="primary objects per chunk (whole tiles)")
    inputs = [("model", DeepDiscModelHandle), ("input", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        _strict_init(self, args, kwargs)
        super().__init__(args, **kwargs)

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        raise NotImplementedError("DeepDiscEstimator inference arrives with the estimator issue")
