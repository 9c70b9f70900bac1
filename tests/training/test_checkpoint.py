"""The one checkpoint reader: weights-only, and refusing files of other kinds or runs with a message naming them."""

import pytest
import torch

from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.training.checkpoint import (
    CHECKPOINT_KIND,
    LATER_ENTRIES,
    LATER_OPTIONS,
    read_checkpoint,
    save_checkpoint,
)
from rail.deepdisc.training.settings import TrainSettings

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


def test_a_checkpoint_from_before_an_option_existed_resumes_a_run_that_leaves_it_at_its_default(tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint({"kind": CHECKPOINT_KIND, "fingerprint": FINGERPRINT, "member": 0, "seed": 7}, path)
    now = {**FINGERPRINT, "training": {**FINGERPRINT["training"], "finetune": "all", "head_views": 0}}
    assert _read(path, fingerprint=now)["member"] == 0
    for changed in ({"finetune": "head"}, {"head_views": 4}):
        with pytest.raises(ModelError, match=r"other options or data \(other training\)"):
            _read(path, fingerprint={**now, "training": {**now["training"], **changed}})
    assert all(getattr(TrainSettings(), k) == v for k, v in LATER_OPTIONS.items())  # the implied values: defaults
    with pytest.raises(ModelError, match=r"other options or data \(other training\)"):  # only LATER_OPTIONS
        _read(path, fingerprint={**now, "training": {**now["training"], "momentum": 0.9}})


def test_a_checkpoint_from_before_the_initial_weights_were_fingerprinted_still_resumes(tmp_path):
    assert LATER_ENTRIES == ("init_weights",)
    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    save_checkpoint({"kind": CHECKPOINT_KIND, "fingerprint": FINGERPRINT, "member": 0, "seed": 7}, old)
    now = {**FINGERPRINT, "init_weights": "0123abcd"}
    assert _read(old, fingerprint=now)["member"] == 0  # it cannot tell which weights it started from
    save_checkpoint({"kind": CHECKPOINT_KIND, "fingerprint": now, "member": 0, "seed": 7}, new)
    assert _read(new, fingerprint=now)["member"] == 0
    with pytest.raises(ModelError, match=r"other options or data \(other init_weights\)"):  # one that can, does
        _read(new, fingerprint={**now, "init_weights": "4567ef01"})
    with pytest.raises(ModelError, match=r"other options or data \(other init_weights\)"):
        _read(new, fingerprint=FINGERPRINT)  # a run from scratch does not resume a fine-tuning


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
