"""Every training option, declared once: the settings objects of a training run.

`TRAIN_OPTIONS` gathers the options of `NetworkConfig` (architecture), `EnsembleSettings` (members and
partitions), `TrainSettings` (optimisation of one member, with its `Augmentation`) and `TrainRunOptions`
(starting weights, device, checkpoints). `DeepDiscInformer`'s options, the ``deepdisc train`` flags, the
defaults and the checks all derive from these declarations (`rail.deepdisc.options`); this module imports no
torch, so the stage and the command line stay light. Adding a training option is one `option` field here and
its use (see ``docs/architecture.md``).

Notes on the optimisation settings (`rail.deepdisc.training.member`):

- ``optimizer="sgd"`` is SGD with momentum, as Merz et al. (2025), who start from pretrained backbones;
  ``"adamw"`` (default) trains the mixture head from scratch far faster and more stably (the mixture NLL's
  gradients scale as 1/sigma^2, which plain SGD handles poorly).
- ``head_dropout``: with a few hundred labels the head over-fits within a few epochs: its raw validation NLL
  rises, each member needs its widths multiplied by 2-3 to be calibrated, and members disagree, so their
  mixture is too wide. On the accuracy benchmark (same fields and seeds, ensemble sigma_IQR / eta / 68%
  coverage) 0.3 took COSMOSWEB4 from 0.220 / 0.494 / 0.75 to 0.191 / 0.453 / 0.68 and JADES9 from 0.133 /
  0.390 / 0.70 to 0.124 / 0.350 / 0.67 (dropout on the MLP's input as well made JADES9 worse: 0.163 / 0.402 /
  0.73).
- ``freeze``: fine-tuning a pretrained model, the new heads settle before the pretrained features move.
- ``finetune="head"``: fine-tuning a pretrained model, only the redshift head trains, on features computed once
  (`rail.deepdisc.training.head_finetune`); ``head_views`` gives it augmented copies of those features, and
  ``head_distill`` keeps the pretrained head's mixtures of the objects without spec-z.
"""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.config import FILE_ONLY_OPTIONS, NetworkConfig
from rail.deepdisc.options import (
    DEVICE,
    NUM_THREADS,
    PROGRESS_BAR,
    OptionSet,
    check_fields,
    nested,
    option,
    values_of,
)

__all__ = [
    "Augmentation",
    "TrainSettings",
    "EnsembleSettings",
    "TrainRunOptions",
    "DistillSettings",
    "TRAIN_OPTIONS",
    "DISTILL_OPTIONS",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "FREEZABLE_PARTS",
    "FIRST_CONV_MODES",
    "FINETUNE_MODES",
    "MAX_BOX_JITTER",
    "MAX_HEAD_VIEWS",
]

#: Supported optimisers.
OPTIMIZERS = ("adamw", "sgd")
#: Learning-rate schedules (see `rail.deepdisc.training.member.learning_rate_at`).
LR_SCHEDULES = ("cosine", "steps")
#: Parts that fine-tuning can freeze for its first epochs: the ResNet body, the feature pyramid, the redshift head.
FREEZABLE_PARTS = ("backbone", "fpn", "redshift_head")
#: What fine-tuning a pretrained model trains (`rail.deepdisc.training.head_finetune`).
FINETUNE_MODES = ("all", "head")
#: How the first convolution of a pretrained model of other bands is carried over
#: (`rail.deepdisc.training.finetune.load_pretrained`).
FIRST_CONV_MODES = ("reinit", "adapt")
#: Largest allowed box jitter (fraction of the box size).
MAX_BOX_JITTER = 0.5
#: Largest allowed dimming augmentation, magnitudes.
MAX_DIM_MAG = 5.0
#: Most augmented copies of the head's inputs with ``finetune="head"`` (each costs one pass over the labelled tiles).
MAX_HEAD_VIEWS = 64


@dataclass(frozen=True)
class Augmentation:
    """Random transformations applied to training batches (`rail.deepdisc.training.data.make_batch`).

    Parameters
    ----------
    dihedral : bool
        Random 90-degree rotations and flips (option ``augment_dihedral``).
    noise_sigma : float
        Standard deviation of extra Gaussian pixel noise, in units of each band's sky noise (0 = off; option
        ``augment_noise``).
    ebv_sigma : float
        Standard deviation of the Gaussian jitter added to E(B-V), mag (0 = off; the result is clipped at 0;
        option ``augment_ebv``).
    box_jitter : float
        Jitter of the boxes the redshift head sees (not the detection targets), as a fraction of the box size:
        centre shifts and log-size changes with this standard deviation (0 = off; option
        ``augment_box_jitter``). At inference the head sees detected or catalog boxes that differ from the
        training boxes; jitter makes it robust to that.
    dim_mag : float
        Largest dimming of a training tile, magnitudes (0 = off; option ``augment_dim``). Every tile is made
        fainter by ``dm ~ Uniform(0, dim_mag)``: its pixels above the tile's per-band median are scaled by
        ``s = 10**(-0.4 dm)`` and sky noise of ``sqrt(1 - s**2)`` times each band's sky noise is added, so the
        noise level is unchanged while every source is ``dm`` magnitudes fainter with its colours and label
        kept. Spec-z are bright; dimmed copies show the redshift head faint, noisy versions of the same
        galaxies, which teaches it how wide a faint galaxy's PDF must be.
    """

    dihedral: bool = option(True, "augment by random 90-degree rotations and flips", name="augment_dihedral")
    noise_sigma: float = option(0.0, "std of extra Gaussian pixel noise, in units of each band's sky noise (0 = off)",
                                name="augment_noise", low=0)
    ebv_sigma: float = option(0.0, "std of the E(B-V) jitter added in training, mag (0 = off)", name="augment_ebv",
                              low=0)
    box_jitter: float = option(0.05, "jitter of the boxes the redshift head sees in training, as a fraction of the "
                               "box size (robustness to detected boxes; 0 = off)", name="augment_box_jitter", low=0,
                               high=MAX_BOX_JITTER)
    dim_mag: float = option(0.0, "dim each training tile by Uniform(0, this) magnitudes, re-adding sky noise so the "
                            "noise level is kept: faint copies of the labelled galaxies (0 = off)",
                            name="augment_dim", low=0, high=MAX_DIM_MAG)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one ensemble member (see the module docstring and each option's help).

    The learning rate at epoch ``e`` is ``learning_rate * lr_gamma ** (number of lr_steps <= e)``, times the
    cosine decay with ``lr_schedule="cosine"``; ``momentum`` is used by SGD only (AdamW uses its default
    betas). ``augmentation`` holds the ``augment_*`` options.
    """

    epochs: int = option(20, "training epochs per member", low=1)
    batch_size: int = option(4, "tiles per optimisation step (per process under DDP)", low=1)
    optimizer: str = option("adamw", "adamw (default: trains the mixture head from scratch stably) or sgd (the "
                            "paper's, with momentum)", choices=OPTIMIZERS)
    learning_rate: float = option(1e-3, "initial learning rate", low=0, low_open=True, flag="lr")
    momentum: float = option(0.9, "SGD momentum (optimizer sgd only)", low=0, high=1, high_open=True)
    weight_decay: float = option(1e-4, "weight decay (L2)", low=0)
    lr_steps: tuple[int, ...] = option((), "epochs (0-based, increasing) at which the learning rate is multiplied "
                                       "by lr_gamma (paper: 45 75 105 of 150)", item=int, low=0, nargs="*")
    lr_gamma: float = option(0.1, "learning-rate factor at each step", low=0, low_open=True, high=1)
    lr_schedule: str = option("cosine", "cosine (decay to 5% over the epochs, times the steps) or steps (the steps "
                              "alone, as Merz et al. 2025)", choices=LR_SCHEDULES)
    patience: int = option(10, "early stopping: epochs without validation improvement", low=1)
    redshift_loss_weight: float = option(1.0, "weight of the redshift NLL in the total loss", low=0)
    head_lr_factor: float = option(0.5, "the redshift head's learning rate relative to the network's", low=0,
                                   low_open=True)
    head_steps: int = option(4, "extra redshift-head-only updates per batch (0 = none)", low=0)
    head_replay: int = option(16, "extra head updates use the head inputs of this many recent batches", low=1)
    head_dropout: float = option(0.3, "dropout probability in the redshift head's MLP while training (0 = off, as in "
                                 "the paper)", low=0, high=1, high_open=True)
    redshift_backbone_grad: float = option(0.1, "fraction of the redshift NLL's gradient passed on to the shared "
                                           "backbone/FPN (1 = joint training as in Merz et al. 2025)", low=0, high=1)
    calibrate_widths: bool = option(True, "fit one factor on the mixture widths after training, maximising the "
                                    "validation likelihood (False = the raw widths)", flag="no-width-calibration")
    clip_grad_norm: float = option(10.0, "maximum gradient norm per step and parameter group (0 = no clipping)",
                                   low=0)
    augmentation: Augmentation = nested(Augmentation)
    freeze: tuple[str, ...] = option((), "parts kept fixed during the first freeze_epochs epochs of fine-tuning: "
                                     "backbone, fpn, redshift_head", item=str, choices=FREEZABLE_PARTS)
    freeze_epochs: int = option(0, "epochs with the freeze parts fixed (0 = never)", low=0)
    finetune: str = option("all", "what training from init_model moves: all (every layer) or head (the redshift "
                           "head alone, on the pretrained network's features of the labelled objects computed once: "
                           "minutes instead of hours; detection stays the pretrained one's)", choices=FINETUNE_MODES)
    head_views: int = option(0, "finetune head: augmented copies of each labelled object's head inputs (the augment "
                             "options: rotations, flips, box jitter, ...), computed once; every epoch trains on one "
                             "drawn per object (0 = the unaugmented inputs alone)", low=0, high=MAX_HEAD_VIEWS)
    head_distill: float = option(0.0, "finetune head: weight of keeping the initial model's redshift mixtures of the "
                                 "unlabelled objects (their cross-entropy to the head's, a batch of them beside every "
                                 "labelled batch; 0 = the labels alone)", low=0)

    def __post_init__(self) -> None:
        check_fields(self)
        if list(self.lr_steps) != sorted(self.lr_steps):
            raise ConfigError(f"lr_steps must be increasing epochs >= 0, got {list(self.lr_steps)}")

    def to_dict(self) -> dict:
        """Plain data for the artifact's ``config["training"]`` (every option, by its name)."""
        return values_of(self)


@dataclass(frozen=True)
class EnsembleSettings:
    """How the ensemble is made: members (Merz et al. 2025: 10), their partitions, the master seed."""

    members: int = option(10, "ensemble members, each on its own random train/validation partition", low=1)
    val_fraction: float = option(0.1, "fraction of the labelled tiles each member holds out for validation", low=0,
                                 high=1, low_open=True, high_open=True)
    seed: int = option(1234, "random seed (partitions, initialisation, augmentation)", low=0)
    calibration_fraction: float = option(0.0, "fraction of the labelled tiles held out from every member to "
                                         "calibrate the ensemble's widths (0 = none; e.g. 0.1)", low=0, high=1,
                                         high_open=True)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TrainRunOptions:
    """Where a training run starts from and how it runs (`rail.deepdisc.training.run.train_from_options`)."""

    backbone_weights: str = option("", "optional local checkpoint of backbone weights to start from (nothing is "
                                   "downloaded)")
    init_model: str = option("", "optional pretrained DeepDISC model every member starts from (fine-tuning, e.g. the "
                             "output of DeepDiscPretrainer; use a lower learning_rate)", flag="init")
    first_conv: str = option("reinit", "when init_model has other bands: reinit (the paper's recipe) or adapt "
                             "(averaged pretrained filters) the first convolution", choices=FIRST_CONV_MODES)
    member_indices: tuple[int, ...] = option((), "train only these member indices, 0-based (to split an ensemble "
                                             "over processes; join the parts with deepdisc train --merge); none = "
                                             "all", item=int, low=0, flag="member-index")
    device: str = DEVICE.as_field()
    num_threads: int = NUM_THREADS.as_field()
    checkpoint_dir: str = option("", "folder for per-epoch checkpoints (default: MODEL_checkpoints/ beside the "
                                 "model)")
    resume: bool = option(False, "continue a killed run from its checkpoint(s)")
    progress_bar: bool = PROGRESS_BAR.as_field()

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DistillSettings:
    """Distilling the ensemble into one network (`rail.deepdisc.training.distill`; ``deepdisc distill``).

    The student, initialised from the ensemble's highest-weight member, trains for ``distill_epochs`` epochs at
    ``distill_lr`` (the other optimisation options are the members'), its redshift loss the cross-entropy of
    the ensemble's mixture under its own on every catalogued object, plus ``distill_specz_weight`` times the
    usual spec-z NLL. Its head's dropout is ``distill_head_dropout``, not the members' ``head_dropout``: a
    student trained under dropout matches the ensemble only with dropout on, not as it is estimated.
    """

    distill: bool = option(False, "after training the members, distil the ensemble into one network of the same "
                           "architecture and return it (the ensemble goes to MODEL_teacher.pt beside the model): "
                           "an ensemble's photo-z at one member's cost")
    distill_epochs: int = option(10, "epochs of distillation", low=1)
    distill_lr: float = option(2e-4, "learning rate of distillation (the student starts from a trained member)",
                               low=0, low_open=True)
    distill_specz_weight: float = option(0.0, "weight of the spec-z NLL of labelled objects, added to the "
                                         "distillation cross-entropy (0 = the ensemble's mixtures alone)", low=0)
    distill_head_dropout: float = option(0.0, "dropout probability in the student's redshift head while distilling "
                                         "(0 = off: the student learns the ensemble's mixtures in the deterministic "
                                         "form it is estimated with)", low=0, high=1, high_open=True)
    distill_components: int = option(0, "Gaussian components of the student's redshift mixture (0 = the members' "
                                     "number); more let one network hold more of the ensemble's members x "
                                     "components. The student starts as its member: each of the member's "
                                     "components is split into equal copies", low=0)

    def __post_init__(self) -> None:
        check_fields(self)


#: Every training option (`DeepDiscInformer`, ``deepdisc train``), in the order the stage lists them (the
#: `NetworkConfig` fields that the model file sets, `FILE_ONLY_OPTIONS`, are no user options).
TRAIN_OPTIONS = OptionSet(NetworkConfig, EnsembleSettings, TrainSettings, TrainRunOptions, DistillSettings).without(
    *FILE_ONLY_OPTIONS)

#: Training options that distillation shares (``deepdisc distill``): the optimisation, augmentation and run options.
DISTILL_SHARED_OPTIONS = (
    "batch_size", "optimizer", "momentum", "weight_decay", "lr_schedule", "head_lr_factor",
    "redshift_backbone_grad", "clip_grad_norm", "augment_dihedral", "augment_noise", "augment_ebv",
    "augment_box_jitter", "augment_dim", "seed", "device", "num_threads", "checkpoint_dir", "resume", "progress_bar",
)
#: Every option of ``deepdisc distill`` (`rail.deepdisc.training.run.distill_from_options`).
DISTILL_OPTIONS = OptionSet(TRAIN_OPTIONS.select("distill_epochs", "distill_lr", "distill_specz_weight",
                                                 "distill_head_dropout", "distill_components"),
                            TRAIN_OPTIONS.select(*DISTILL_SHARED_OPTIONS))
