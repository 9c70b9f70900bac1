"""The one checkpoint reader: weights-only, and refusing files of other kinds or runs with a message naming them."""

import pytest
import torch

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.training.checkpoint import CHECKPOINT_KIND, read_checkpoint, save_checkpoint

FINGERPRINT = {"training": {"learning_rate": 1e-3}, "data": {"n_tiles": 4}}


def _read(path, **kw):
    args = {"kind": CHECKPOINT_KIND, "fingerprint": FINGERPRINT, "description": "DeepDISC member checkpoint",
            "expected": {"member": 0, "seed": 7}, **kw}
    return read_checkpoint(path, **args)


def test_a_checkpoint_reads_back_and_belongs_to_its_run(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint({"kind": CHECKPOINT_KIND, "fingerprint": FINGERPRINT, "member": 0, "seed": 7,
                     "model": {"w": torch.arange(3.0)}}, path)
    assert torch.equal(_read(path)["model"]["w"], torch.arange(3.0))
    with pytest.raises(ModelError, match=r"m\.pt: checkpoint was written with other options or data \(other data\)"):
        _read(path, fingerprint={**FINGERPRINT, "data": {"n_tiles": 5}})
    with pytest.raises(ModelError, match=r"other options or data \(other seed\)"):
        _read(path, expected={"member": 0, "seed": 8})
    with pytest.raises(ModelError, match=r"m\.pt: not a DeepDISC pretraining checkpoint"):
        _read(path, kind="deepdisc-pretrain-checkpoint", description="DeepDISC pretraining checkpoint")


@pytest.mark.parametrize("content", [b"not a checkpoint", b""])
def test_a_corrupt_checkpoint_is_named(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken\.pt: unreadable checkpoint \(\w+\); delete it to start over"):
        _read(path)


class Payload:
    """Any class that is not a tensor or plain data: unpickling it could run code."""


def test_only_weights_are_unpickled(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"kind": CHECKPOINT_KIND, "fingerprint": FINGERPRINT, "member": 0, "seed": 7, "x": Payload()}, path)
    with pytest.raises(ModelError, match=r"code\.pt: unreadable checkpoint"):
        _read(path)
