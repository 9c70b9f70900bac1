"""The DeepDISC network: a torchvision Mask R-CNN on a ResNet-FPN backbone plus a redshift mixture head.

`DeepDiscRCNN` composes torchvision's detection modules (``RegionProposalNetwork``, ``RoIHeads`` with box and
mask branches, ``MultiScaleRoIAlign``) with `rail.deepdisc.model.backbone`, `rail.deepdisc.model.normalise` and
`rail.deepdisc.model.redshift_head`. Tiles are never resized: instead of ``GeneralizedRCNNTransform`` (which resizes
to 800 px and normalises with 3-band ImageNet statistics) the model normalises raw pixels per band with its
`InputNormaliser` buffers and batches tiles of one shape as they are.

Settings for small, faint, blended galaxies in 0.03"/pix tiles are in `rail.deepdisc.model.config`.

The redshift head sees the RoI-aligned FPN features of each object's box (ground-truth boxes in training,
detected or catalog boxes at inference) plus its E(B-V), and outputs a K-component Gaussian mixture.

Departure from Merz et al. (2025): by default the head also sees brightness-free colours and patches of the
box's input pixels (`rail.deepdisc.model.pixels`; ``NetworkConfig.pixel_pool_size=0`` gives the paper's head),
measured from each tile's sky level (``NetworkConfig.pixel_zero``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, paste_masks_in_image
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.anchors import anchor_generator
from rail.deepdisc.model.backbone import build_backbone
from rail.deepdisc.model.config import FEATURE_LEVELS, RPN_BG_IOU_THRESHOLD, NetworkConfig
from rail.deepdisc.model.normalise import InputNormaliser
from rail.deepdisc.model.pixels import COLOUR_SOFTENING, head_pixel_features, pixel_features
from rail.deepdisc.model.redshift_head import EBV_SCALE, MixtureParams, RedshiftMixtureHead, mixture_nll

__all__ = [
    "NetworkConfig",
    "Encoded",
    "HeadInputs",
    "DeepDiscRCNN",
    "build_model",
    "model_from_artifact",
    "pixel_features",
    "scale_gradient",
    "MixtureParams",
    "COLOUR_SOFTENING",
]

N_CLASSES = 2  # background + "object"
_BOX_POOL_SIZE = 7
_MASK_POOL_SIZE = 14
_POOL_SAMPLING = 2
_MASK_LAYERS = 4
_RPN_POSITIVE_FRACTION = 0.5
_BOX_POSITIVE_FRACTION = 0.25
_BOX_REG_WEIGHTS = None  # torchvision default (10, 10, 5, 5)


class Encoded(NamedTuple):
    """A batch after normalisation and the backbone: input for `DeepDiscRCNN.detect` / ``redshift``.

    Attributes
    ----------
    images : ImageList
        The normalised batch (B, C, H, W) and its image sizes.
    features : OrderedDict of str -> Tensor
        FPN levels ``"0"``-``"3"``, ``"pool"``, each (B, fpn_channels, H / stride, W / stride).
    """

    images: ImageList
    features: OrderedDict


class HeadInputs(NamedTuple):
    """What the redshift head saw in a training step (detached), for extra head-only updates.

    Attributes
    ----------
    features : Tensor (N, F)
        Pooled RoI features (and pixel features) of the N labelled boxes.
    extra : Tensor (N, 1)
        E(B-V) / `EBV_SCALE`.
    z : Tensor (N,)
        Their spectroscopic redshifts.
    """

    features: Tensor
    extra: Tensor
    z: Tensor


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """``x`` unchanged in the forward pass; its gradient multiplied by ``factor`` in the backward pass.

    ``x.detach() + factor * (x - x.detach())``: the second term is exactly zero, so the values are bit-identical.
    """
    frozen = x.detach()
    return frozen + factor * (x - frozen)


class DeepDiscRCNN(nn.Module):
    """Mask R-CNN (one class, "object") on a ResNet-FPN with a Gaussian-mixture redshift head.

    Parameters
    ----------
    normaliser : InputNormaliser
        Raw pixels -> network input.
    backbone : nn.Module
        Maps (B, C, H, W) to FPN levels (see `rail.deepdisc.model.backbone.build_backbone`).
    rpn : RegionProposalNetwork
    roi_heads : RoIHeads
        With box and mask branches.
    redshift_pool : MultiScaleRoIAlign
        Pools the FPN features of each object's box for the redshift head.
    redshift_head : RedshiftMixtureHead
    pixel_pool_size : int
        Side of the RoI-aligned input-pixel patch per band also fed to the redshift head (0 = none).
    pixel_zero : {"tile_sky", "mean"}
        What the pixel features' flux is measured from (`rail.deepdisc.model.pixels.head_pixel_features`).
    """

    def __init__(
        self,
        normaliser: InputNormaliser,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads,
        redshift_pool: MultiScaleRoIAlign,
        redshift_head: RedshiftMixtureHead,
        *,
        pixel_pool_size: int = 0,
        pixel_zero: str = "mean",
    ) -> None:
        super().__init__()
        self.pixel_pool_size = int(pixel_pool_size)
        self.pixel_zero = pixel_zero
        self.normaliser = normaliser
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.redshift_pool = redshift_pool
        self.redshift_head = redshift_head

    def forward(
        self, images: Tensor, targets: list[dict], *, head_inputs: bool = False, redshift_grad: float = 1.0
    ) -> dict[str, Tensor] | tuple[dict[str, Tensor], HeadInputs]:
        """Training losses of a batch (call in ``train()`` mode).

        Parameters
        ----------
        images : Tensor (B, C, H, W) float32
            Raw pixel values (flux units of the TileSet).
        targets : list of B dict
            ``boxes`` (n, 4) float xyxy tile pixels, ``labels`` (n,) int64 (ones), ``masks`` (n, H, W) uint8,
            ``redshift`` (n,) float (NaN = no spec-z), ``ebv`` (n,) float (mag).
        head_inputs : bool
            Also return the (detached) `HeadInputs` of the redshift loss.
        redshift_grad : float
            Factor on the redshift loss's gradient flowing from the head's RoI features into the backbone/FPN
            (`scale_gradient`; the loss values do not change).

        Returns
        -------
        dict of str -> Tensor
            ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``, ``loss_mask``,
            ``loss_redshift`` (mean mixture NLL of the labelled objects, on their ground-truth boxes; zero
            with a gradient graph when none is labelled).
        HeadInputs
            Only with ``head_inputs=True``.
        """
        enc = self.encode(images)
        proposals, rpn_losses = self.rpn(enc.images, enc.features, targets)
        _, roi_losses = self.roi_heads(enc.features, proposals, enc.images.image_sizes, targets)
        inputs = self.redshift_inputs(enc, targets, grad_scale=redshift_grad)
        loss = mixture_nll(self.redshift_head(inputs.features, inputs.extra), inputs.z)
        losses = {**rpn_losses, **roi_losses, "loss_redshift": loss}
        if not head_inputs:
            return losses
        return losses, HeadInputs(inputs.features.detach(), inputs.extra.detach(), inputs.z.detach())

    def redshift_inputs(self, enc: Encoded, targets: list[dict], *, grad_scale: float = 1.0) -> HeadInputs:
        """The redshift head's inputs for the labelled objects of ``targets`` (with the gradient graph).

        Uses ``targets[i]["redshift_boxes"]`` where present (jittered boxes, see
        `rail.deepdisc.training.data.Augmentation`), else ``boxes``. The gradient reaching the backbone/FPN through the
        pooled RoI features is multiplied by ``grad_scale``.
        """
        keep = [~torch.isnan(t["redshift"]) for t in targets]
        boxes = [t.get("redshift_boxes", t["boxes"])[k] for t, k in zip(targets, keep)]
        features, extra = self._head_features(
            enc, boxes, [t["ebv"][k] for t, k in zip(targets, keep)], grad_scale=grad_scale
        )
        z = torch.cat([t["redshift"][k] for t, k in zip(targets, keep)])
        return HeadInputs(features, extra, z.to(device=features.device, dtype=features.dtype))

    def encode(self, images: Tensor) -> Encoded:
        """Normalise raw pixels (B, C, H, W) and run the backbone/FPN once for the batch."""
        x = self.normaliser(images)
        sizes = [(int(x.shape[-2]), int(x.shape[-1]))] * int(x.shape[0])
        return Encoded(ImageList(x, sizes), self.backbone(x))

    def detect(self, enc: Encoded, *, masks: bool = False) -> list[dict]:
        """Detect objects in each tile (call in ``eval()`` mode, e.g. under ``torch.inference_mode()``).

        Parameters
        ----------
        enc : Encoded
            From `encode`.
        masks : bool
            Also return ``masks`` (K, 1, H, W) float probabilities pasted into the tile (slower).

        Returns
        -------
        list of B dict
            ``boxes`` (K, 4) float xyxy tile pixels, ``scores`` (K,) in [0, 1], sorted by decreasing score.
        """
        sizes = enc.images.image_sizes
        proposals, _ = self.rpn(enc.images, enc.features)
        if masks:
            dets, _ = self.roi_heads(enc.features, proposals, sizes)
            for det, size in zip(dets, sizes):
                det["masks"] = paste_masks_in_image(det["masks"], det["boxes"], size)
            return [{k: v for k, v in d.items() if k != "labels"} for d in dets]
        rh = self.roi_heads
        box_features = rh.box_head(rh.box_roi_pool(enc.features, proposals, sizes))
        class_logits, box_regression = rh.box_predictor(box_features)
        boxes, scores, _ = rh.postprocess_detections(class_logits, box_regression, proposals, sizes)
        return [{"boxes": b, "scores": s} for b, s in zip(boxes, scores)]

    def redshift(self, enc: Encoded, boxes: list[Tensor], ebv: list[Tensor]) -> MixtureParams:
        """Redshift mixtures of given boxes.

        Parameters
        ----------
        enc : Encoded
            From `encode`.
        boxes : list of B Tensor (n_i, 4)
            Float xyxy tile pixels per image (n_i may be 0).
        ebv : list of B Tensor (n_i,)
            Milky-Way E(B-V) (mag) of each box.

        Returns
        -------
        MixtureParams
            (sum n_i, K) rows in the order of the concatenated boxes of image 0, 1, ...
        """
        return self.redshift_head(*self._head_features(enc, boxes, ebv))

    def _head_features(
        self, enc: Encoded, boxes: list[Tensor], ebv: list[Tensor], *, grad_scale: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        dtype = enc.images.tensors.dtype
        device = enc.images.tensors.device
        boxes = [b.to(device=device, dtype=dtype) for b in boxes]
        pooled = self.redshift_pool(enc.features, boxes, enc.images.image_sizes).flatten(start_dim=1)
        if grad_scale != 1.0:
            pooled = scale_gradient(pooled, grad_scale)
        if self.pixel_pool_size:
            pixels = head_pixel_features(self.normaliser.inverse(enc.images.tensors), self.normaliser.center, boxes,
                                         pool_size=self.pixel_pool_size, zero=self.pixel_zero)
            pooled = torch.cat([pooled, pixels], dim=1)
        extra = (torch.cat([e.reshape(-1) for e in ebv]).to(dtype) / EBV_SCALE).unsqueeze(1)
        return pooled, extra.to(pooled.device)


def build_model(config: NetworkConfig) -> DeepDiscRCNN:
    """Make a `DeepDiscRCNN` with random weights (identity normalisation until statistics are set).

    Parameters
    ----------
    config : NetworkConfig
        The architecture.

    Returns
    -------
    DeepDiscRCNN
        In training mode, on the CPU.
    """
    c = config
    normaliser = InputNormaliser(len(c.bands), kind=c.normalisation)
    backbone = build_backbone(
        c.backbone, len(c.bands), fpn_channels=c.fpn_channels, norm=c.backbone_norm, tile_size=c.tile_size,
        stride_in_1x1=c.stride_in_1x1,
    )
    anchors = anchor_generator(c)
    rpn = RegionProposalNetwork(
        anchors,
        RPNHead(c.fpn_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=c.rpn_fg_iou_threshold,
        bg_iou_thresh=RPN_BG_IOU_THRESHOLD,
        batch_size_per_image=c.rpn_batch_size,
        positive_fraction=_RPN_POSITIVE_FRACTION,
        pre_nms_top_n={"training": c.rpn_pre_nms_train, "testing": c.rpn_pre_nms_test},
        post_nms_top_n={"training": c.rpn_post_nms_train, "testing": c.rpn_post_nms_test},
        nms_thresh=c.rpn_nms_threshold,
    )
    box_pool = MultiScaleRoIAlign(list(FEATURE_LEVELS), _BOX_POOL_SIZE, _POOL_SAMPLING)
    mask_pool = MultiScaleRoIAlign(list(FEATURE_LEVELS), _MASK_POOL_SIZE, _POOL_SAMPLING)
    roi_heads = RoIHeads(
        box_pool,
        TwoMLPHead(c.fpn_channels * _BOX_POOL_SIZE**2, c.representation_size),
        FastRCNNPredictor(c.representation_size, N_CLASSES),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=c.box_batch_size,
        positive_fraction=_BOX_POSITIVE_FRACTION,
        bbox_reg_weights=_BOX_REG_WEIGHTS,
        score_thresh=c.box_score_threshold,
        nms_thresh=c.box_nms_threshold,
        detections_per_img=c.detections_per_image,
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(c.fpn_channels, [c.mask_channels] * _MASK_LAYERS, 1),
        mask_predictor=MaskRCNNPredictor(c.mask_channels, c.mask_channels, N_CLASSES),
    )
    z_pool = MultiScaleRoIAlign(list(FEATURE_LEVELS), _BOX_POOL_SIZE, _POOL_SAMPLING)
    groups = [c.fpn_channels * _BOX_POOL_SIZE**2] + (
        [len(c.bands), len(c.bands) * c.pixel_pool_size**2] if c.pixel_pool_size else []
    )
    head = RedshiftMixtureHead(
        groups, n_extra=1, n_components=c.n_components, hidden=c.head_hidden, kind=c.head_kind
    )
    return DeepDiscRCNN(normaliser, backbone, rpn, roi_heads, z_pool, head, pixel_pool_size=c.pixel_pool_size,
                        pixel_zero=c.pixel_zero)


def model_from_artifact(artifact: dict, member: int, *, device: str | torch.device = "cpu") -> DeepDiscRCNN:
    """Rebuild ensemble member ``member`` of a loaded artifact, in eval mode with its weights.

    Parameters
    ----------
    artifact : dict
        From `rail.deepdisc.model.artifact.load_artifact`.
    member : int
        Index into ``artifact["members"]``.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    DeepDiscRCNN

    Raises
    ------
    ModelError
        If the member index is out of range or its weights do not fit the configured architecture.
    """
    members = artifact["members"]
    if not 0 <= member < len(members):
        raise ModelError(f"member {member} out of range: the model has {len(members)} member(s)")
    model = build_model(NetworkConfig.from_dict(artifact["config"]))
    try:
        model.load_state_dict(members[member]["state_dict"])
    except RuntimeError as err:
        raise ModelError(
            f"member {member}: weights do not fit the model config ({str(err).splitlines()[0]})"
        ) from None
    return model.to(device).eval()
