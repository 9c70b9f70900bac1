"""Starting a network from a pretrained DeepDISC artifact, also when the band list differs.

Fine-tuning (``deepdisc train --init PRETRAINED.pt``) starts every ensemble member from the first member of a
pretrained artifact (e.g. one from ``deepdisc pretrain``). When the new data have the pretrained model's
bands, every weight is copied (input normalisation included). When the bands differ (the recipe of Merz et al.
2025, who pretrain on HSC and train on JADES), only the band-dependent tensors change:

* the first convolution ``backbone.body.conv1.weight`` (C_in = number of bands; a transformer's patch embedding
  ``backbone.body.trunk.patch_embed.proj.weight``) is re-initialised
  (``first_conv="reinit"``: Kaiming normal, as `rail.deepdisc.model.backbone.build_backbone` does) or adapted
  (``"adapt"``: the pretrained filters averaged over their input channels, repeated for each new band and
  scaled by ``C_old / C_new`` so a flat input gives the same response);
* the input normaliser keeps the statistics of the new data (set by the caller);
* the redshift head's pixel path (colours and the RoI-aligned pixels, per band): its LayerNorms and the
  columns of the first MLP layer that read it stay at their fresh initialisation, while the columns that read
  the FPN features and E(B-V) are copied.

Every other tensor (ResNet layers, FPN, RPN, box and mask heads, the rest of the redshift head) is copied.
"""

from __future__ import annotations

import logging

import torch

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.backbone import adapt_first_conv
from rail.deepdisc.model.network import DeepDiscRCNN
from rail.deepdisc.training.settings import FIRST_CONV_MODES, TrainSettings

__all__ = ["load_pretrained", "set_frozen", "freeze_for_epoch"]

log = logging.getLogger(__name__)

#: How the first convolution is set when the band list differs (see the module docstring).
_FIRST_LAYERS = ("backbone.body.conv1.weight", "backbone.body.trunk.patch_embed.proj.weight")  # ResNet, transformer
_NORMALISER_PREFIX = "normaliser."
_HEAD_NORMS_PREFIX = "redshift_head.input_norms."  # block 0: FPN features; the others: pixel features
_HEAD_FIRST_LAYER = "redshift_head.mlp.0.weight"


def load_pretrained(
    model: DeepDiscRCNN, state_dict: dict, *, same_bands: bool, first_conv: str = "reinit"
) -> list[str]:
    """Copy pretrained weights into a freshly built model; return the names not copied in full.

    Parameters
    ----------
    model : DeepDiscRCNN
        Built for the new bands, with its own initialisation (and normalisation statistics when the bands
        differ).
    state_dict : dict
        Pretrained member weights (same architecture apart from the band-dependent tensors).
    same_bands : bool
        Whether the pretrained model had the new data's band list (then everything is copied).
    first_conv : {"reinit", "adapt"}
        First-convolution recipe when the bands differ.

    Returns
    -------
    list of str
        State-dict keys not copied (empty when ``same_bands``).

    Raises
    ------
    ModelError
        If ``first_conv`` is unknown, or a band-independent tensor is missing or has another shape (another
        architecture).
    """
    if first_conv not in FIRST_CONV_MODES:
        raise ModelError(f"first_conv must be one of {', '.join(FIRST_CONV_MODES)}, got {first_conv!r}")
    if same_bands:
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as err:
            raise ModelError(f"pretrained weights do not fit the model ({str(err).splitlines()[0]})") from None
        return []
    return _load_other_bands(model, state_dict, first_conv)


def _band_dependent(key: str) -> bool:
    pixel_norm = key.startswith(_HEAD_NORMS_PREFIX) and not key.startswith(f"{_HEAD_NORMS_PREFIX}0.")
    return key in _FIRST_LAYERS or key.startswith(_NORMALISER_PREFIX) or pixel_norm or key == _HEAD_FIRST_LAYER


@torch.no_grad()
def _load_other_bands(model: DeepDiscRCNN, pretrained: dict, first_conv: str) -> list[str]:
    own = model.state_dict()
    missing = [k for k in own if not _band_dependent(k) and k not in pretrained]
    wrong = [k for k in own if not _band_dependent(k) and k in pretrained and pretrained[k].shape != own[k].shape]
    if missing or wrong:
        raise ModelError(
            f"pretrained weights come from another architecture ({len(missing)} tensor(s) missing, "
            f"{len(wrong)} of another shape, e.g. {(missing + wrong)[0]}); use the pretrained model's "
            f"backbone, head and component options"
        )
    new = {k: (v if _band_dependent(k) else pretrained[k]) for k, v in own.items()}
    kept = [k for k in own if _band_dependent(k)]
    if first_conv == "adapt":
        conv1 = next(k for k in _FIRST_LAYERS if k in own)
        new[conv1] = adapt_first_conv(pretrained[conv1], own[conv1].shape[1])
        kept.remove(conv1)
    partial = _head_first_layer(model, own[_HEAD_FIRST_LAYER], pretrained[_HEAD_FIRST_LAYER])
    if partial is not None:
        new[_HEAD_FIRST_LAYER] = partial
    model.load_state_dict(new)
    log.info("bands differ from the pretrained model's: kept fresh %s", ", ".join(kept))
    return kept


def _head_first_layer(model: DeepDiscRCNN, own: torch.Tensor, pretrained: torch.Tensor) -> torch.Tensor | None:
    """First MLP layer with the pretrained FPN-feature and E(B-V) columns and fresh pixel-path columns."""
    groups = model.redshift_head.groups
    n_extra = model.redshift_head.n_extra
    if own.shape[0] != pretrained.shape[0]:
        raise ModelError(
            f"redshift head width {own.shape[0]} differs from the pretrained model's {pretrained.shape[0]}; "
            f"use its head_hidden"
        )
    n_fpn = groups[0]
    if pretrained.shape[1] < n_fpn + n_extra:
        return None
    out = own.clone()
    out[:, :n_fpn] = pretrained[:, :n_fpn]
    out[:, -n_extra:] = pretrained[:, -n_extra:]
    return out


def set_frozen(model: DeepDiscRCNN, parts: tuple[str, ...], frozen: bool) -> int:
    """Freeze (``requires_grad=False``) or release the parameters of model parts; return how many tensors.

    Parameters
    ----------
    model : DeepDiscRCNN
        The network.
    parts : tuple of str
        Among `FREEZABLE_PARTS`: ``"backbone"`` is the ResNet body (``model.backbone.body``), ``"fpn"`` the
        feature pyramid (``model.backbone.fpn``), ``"redshift_head"`` the mixture head (keeps a pretrained
        colour-redshift mapping while a biased spec-z sample adapts the rest; its width factor is still
        calibrated after training).
    frozen : bool
        Freeze (True) or make trainable again (False).

    Notes
    -----
    A frozen parameter gets no gradient, so the optimiser skips it entirely (no step, no weight decay).
    BatchNorm running statistics (``backbone_norm="batch"``) still update in training mode.
    """
    modules = {"backbone": model.backbone.body, "fpn": model.backbone.fpn, "redshift_head": model.redshift_head}
    count = 0
    for part in parts:
        for param in modules[part].parameters():
            param.requires_grad_(not frozen)
            count += 1
    return count


def freeze_for_epoch(model: DeepDiscRCNN, settings: TrainSettings, epoch: int, was_frozen: bool | None) -> bool:
    """Freeze the ``settings.freeze`` parts during the first ``freeze_epochs`` epochs; return whether frozen.

    ``was_frozen`` is the state before (None: unknown); parts change only when the state changes.
    """
    frozen = bool(settings.freeze) and epoch < settings.freeze_epochs
    if frozen != was_frozen and settings.freeze:
        n = set_frozen(model, settings.freeze, frozen)
        log.info("epoch %d: %s %s (%d tensors)", epoch, "froze" if frozen else "released",
                 "+".join(settings.freeze), n)
    return frozen
