"""A tiny stand-in network implementing the estimator's interface (``encode``, ``detect``, ``redshift``).

`FakeNet` detects sources by thresholding the band-summed image (connected pixels above
``detect_threshold``) and returns known mixtures computed from each box: component k has mean
``offset + Z_PER_PX_X * cx + Z_PER_PX_Y * cy + k * COMPONENT_SPACING`` (cx, cy = box centre, pixels),
standard deviation ``exp(log_std[k]) * (1 + ebv)`` and weight ``softmax(logits)[k]``. Its weights live in a
state_dict, so it is saved and loaded through a real model artifact (`make_fake_artifact`). `install` makes
the estimator build it in place of the real network; `expected_mixture` reproduces its output for given boxes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from rail.deepdisc.model.artifact import save_artifact

Z_PER_PX_X = 0.02
Z_PER_PX_Y = 0.01
COMPONENT_SPACING = 0.5
BASE_STD = 0.1
DETECT_THRESHOLD = 10.0
SCORE_SCALE = 100.0


class FakeMixtureParams(NamedTuple):
    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor


class FakeNet(nn.Module):
    def __init__(self, n_components=2, detect_threshold=DETECT_THRESHOLD):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.logits = nn.Parameter(torch.zeros(n_components, dtype=torch.float64))
        self.log_std = nn.Parameter(torch.full((n_components,), math.log(BASE_STD), dtype=torch.float64))
        self.detect_threshold = detect_threshold

    def encode(self, images):
        assert not torch.is_grad_enabled()
        return images

    def detect(self, enc):
        out = []
        for image in enc.sum(dim=1).cpu().numpy():
            labels, n = ndimage.label(image > self.detect_threshold)
            boxes, scores = [], []
            for k, sl in enumerate(ndimage.find_objects(labels)):
                boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                scores.append(min(1.0, float(image[labels == k + 1].max()) / SCORE_SCALE))
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "scores": torch.tensor(scores, dtype=torch.float32)})
        return out

    def redshift(self, enc, boxes, ebv):
        b = torch.cat(boxes).to(torch.float64)
        e = torch.cat(ebv).to(torch.float64)
        arrays = _mixture(b.numpy(), e.numpy(), float(self.offset), self.logits.detach().numpy(),
                          self.log_std.detach().numpy())
        return FakeMixtureParams(*(torch.as_tensor(a) for a in arrays))


def _mixture(boxes, ebv, offset, logits, log_std):
    k = len(logits)
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    means = offset + Z_PER_PX_X * cx[:, None] + Z_PER_PX_Y * cy[:, None] + COMPONENT_SPACING * np.arange(k)
    stds = np.exp(log_std)[None, :] * (1.0 + ebv[:, None])
    w = np.exp(logits - logits.max())
    weights = np.broadcast_to(w / w.sum(), means.shape).copy()
    return weights, means, stds


def expected_mixture(boxes, ebv, *, offset=0.0, logits=(0.0, 0.0)):
    """The (weights, means, stds) that `FakeNet` gives for float64 boxes (n, 4) and E(B-V) (n,)."""
    logits = np.asarray(logits, dtype=np.float64)
    boxes32 = np.asarray(boxes, dtype=np.float32).astype(np.float64)
    ebv32 = np.asarray(ebv, dtype=np.float32).astype(np.float64)
    return _mixture(boxes32, ebv32, offset, logits, np.full(len(logits), math.log(BASE_STD)))


def fake_model_from_artifact(artifact, member, *, device="cpu"):
    cfg = artifact["config"]
    model = FakeNet(cfg["n_components"], cfg.get("detect_threshold", DETECT_THRESHOLD))
    model.load_state_dict(artifact["members"][member]["state_dict"])
    return model.to(device).eval()


def make_fake_artifact(path, bands, pixel_scale=0.03, *, offsets=(0.0,), weights=None, logits=(0.0, 0.0),
                       detect_threshold=DETECT_THRESHOLD):
    """Save a real model artifact holding one FakeNet member per offset."""
    weights = weights if weights is not None else [1.0 / len(offsets)] * len(offsets)
    members = []
    for k, (offset, weight) in enumerate(zip(offsets, weights)):
        net = FakeNet(len(logits), detect_threshold)
        with torch.no_grad():
            net.offset.fill_(offset)
            net.logits.copy_(torch.tensor(logits, dtype=torch.float64))
        members.append({"state_dict": net.state_dict(), "val_log_likelihood": 0.0, "weight": float(weight),
                        "seed": k, "best_epoch": 0})
    config = {"bands": list(bands), "pixel_scale": float(pixel_scale), "backbone": "fake",
              "n_components": len(logits), "detect_threshold": detect_threshold, "training": {}}
    return save_artifact({"config": config, "members": members, "provenance": {"test": "fakenet"}}, path)


def install(monkeypatch=None):
    """Make the estimator build FakeNet members (via pytest's monkeypatch, or permanently in a subprocess)."""
    import rail.deepdisc.inference.predictor as infer

    if monkeypatch is None:
        infer.model_from_artifact = fake_model_from_artifact
    else:
        monkeypatch.setattr(infer, "model_from_artifact", fake_model_from_artifact)
