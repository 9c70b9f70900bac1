"""``head_distill``: the initial head's mixtures of objects without spec-z, kept while the head is fine-tuned.

Spec-z are bright and mostly at low redshift. Fine-tuned on them alone, the head narrows and moves its mixtures
for every object, the faint ones included, where no label corrects it. With ``head_distill = W > 0``
(`rail.deepdisc.training.head_finetune`) the pretrained head's mixtures of the labelled tiles' objects without a
spec-z are kept as targets, and every optimisation step adds ``W`` times the mean cross-entropy of those targets
to the head's mixtures, for as many of those objects as the step has labelled ones: "learning without forgetting"
(Li & Hoiem 2017), with the pretrained head as the teacher. The cross-entropy is
`rail.deepdisc.training.distill.mixture_cross_entropy` (Gauss-Hermite quadrature over the teacher's components).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rail.deepdisc.model.network import HeadInputs
from rail.deepdisc.model.redshift_head import MixtureParams

__all__ = ["Distillation"]


@dataclass(frozen=True)
class Distillation:
    """What ``head_distill`` keeps: the initial head's mixtures of the unlabelled objects.

    Attributes
    ----------
    inputs : HeadInputs
        The unlabelled objects' head inputs (`LabelledFeatures.unlabelled`).
    teacher : MixtureParams
        The initial head's mixtures of them (its calibrated widths).
    weight : float
        Weight of their mean cross-entropy beside the labelled batch's NLL.
    """

    inputs: HeadInputs
    teacher: MixtureParams
    weight: float

    @classmethod
    @torch.no_grad()
    def of(cls, head, inputs: HeadInputs | None, weight: float) -> Distillation | None:
        """The distillation targets of ``head`` as it is now (None without weight or unlabelled objects)."""
        if weight <= 0 or inputs is None or not len(inputs.z):
            return None
        head.eval()
        return cls(inputs, MixtureParams(*(t.detach() for t in head(inputs.features, inputs.extra))), weight)

    def loss(self, head, rows: torch.Tensor) -> torch.Tensor:
        """The weighted mean cross-entropy of the teacher's mixtures of ``rows`` to the head's."""
        from rail.deepdisc.training.distill import mixture_cross_entropy

        student = head(self.inputs.features[rows], self.inputs.extra[rows])
        teacher = MixtureParams(*(t[rows] for t in self.teacher))
        return self.weight * mixture_cross_entropy(teacher, student).mean()
