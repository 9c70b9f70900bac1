"""Releasing a memory-mapped artifact's pages: out of the resident set, values kept, ordinary memory untouched."""

import sys

import pytest
import torch

from rail.deepdisc.model.artifact import artifact_tensors, load_artifact, save_artifact
from rail.deepdisc.model.pages import FilePages
from tests.helpers.memory import rss_file_mb

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux only")

MEMBER_MB = 24


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    """An artifact of three members of MEMBER_MB MB each (random weights, distinct per member)."""
    n = MEMBER_MB * 2**20 // 4
    members = [{"state_dict": {"w": torch.randn(n, generator=torch.Generator().manual_seed(k)),
                               "b": torch.full((7,), float(k))}, "weight": 1.0} for k in range(3)]
    path = tmp_path_factory.mktemp("pages") / "big.pt"
    return save_artifact({"config": {"bands": ["F444W"], "pixel_scale": 0.03}, "members": members}, path)


def test_mapped_load_holds_no_member_and_reads_the_same_values(big_model):
    before = rss_file_mb()
    mapped = load_artifact(big_model, mmap=True)  # every member is read (its check), then released
    assert rss_file_mb() - before < MEMBER_MB / 2
    plain = load_artifact(big_model)
    for a, b in zip(mapped["members"], plain["members"], strict=True):
        for key in ("w", "b"):
            assert torch.equal(a["state_dict"][key], b["state_dict"][key])


def test_release_drops_a_members_pages_and_keeps_its_values(big_model):
    art = load_artifact(big_model, mmap=True)
    pages = FilePages.of(artifact_tensors(art))
    assert pages is not None and pages.path == str(big_model)
    w = art["members"][1]["state_dict"]["w"]
    before = rss_file_mb()
    total = float(w.double().sum())  # pages in
    touched = rss_file_mb()
    assert touched - before > MEMBER_MB * 0.9
    assert pages.release(art["members"][1]["state_dict"].values()) >= MEMBER_MB * 2**20
    assert touched - rss_file_mb() > MEMBER_MB * 0.9
    assert float(w.double().sum()) == total  # read again from the file
    assert torch.equal(art["members"][2]["state_dict"]["b"], torch.full((7,), 2.0))  # a neighbour's page


def test_ordinary_memory_and_written_pages_are_never_released(big_model):
    assert FilePages.of([torch.randn(1000)]) is None  # heap memory: releasing it would zero it
    art = load_artifact(big_model, mmap=True)
    w = art["members"][0]["state_dict"]["w"]
    w[0] = 123.0  # a private copy of the page: releasing it would bring back the file's value
    assert FilePages.of(artifact_tensors(art)) is None
    assert float(w[0]) == 123.0
    other = FilePages.of(artifact_tensors(load_artifact(big_model, mmap=True)))
    assert other is not None and other.release([torch.randn(10)]) == 0  # tensors outside the mapping
