"""Distillation: the cross-entropy, the student moving toward the ensemble, the student file, bad input."""

import math

import numpy as np
import pytest
import qp
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.redshift_head import MixtureParams
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.training.distill import mixture_cross_entropy, mixture_kl
from rail.deepdisc.training.run import teacher_path, train_from_options
from tests.helpers.nethelpers import FAST, FAST_CLI, make_colour_tileset


@pytest.fixture(scope="module")
def tiles():
    return make_colour_tileset(n_tiles=8, size=32, seed=3)


@pytest.fixture(scope="module")
def distilled(tiles, tmp_path_factory):
    """A 2-member ensemble trained briefly and distilled by the informer's ``distill`` option."""
    folder = tmp_path_factory.mktemp("distill")
    model = folder / "model.pt"
    options = {**FAST, "members": 2, "distill": True, "distill_epochs": 4, "distill_lr": 1e-3}
    student = train_from_options(tiles, options, model_path=model)
    save_artifact(student, model)
    return student, model


def _gaussian(mu, sd):
    return MixtureParams(*(torch.tensor([[v]], dtype=torch.float64) for v in (1.0, mu, sd)))


def test_cross_entropy_of_gaussians_has_the_closed_form():
    p, q = _gaussian(1.0, 0.3), _gaussian(1.4, 0.5)
    exact = math.log(0.5 * math.sqrt(2 * math.pi)) + (0.3**2 + 0.4**2) / (2 * 0.5**2)
    assert float(mixture_cross_entropy(p, q)[0]) == pytest.approx(exact, rel=1e-9)
    entropy = 0.5 * math.log(2 * math.pi * math.e * 0.3**2)  # H(p, p) = H(p): the minimum, reached at q = p
    assert float(mixture_cross_entropy(p, p)[0]) == pytest.approx(entropy, rel=1e-9)
    kl = math.log(0.5 / 0.3) + (0.3**2 + 0.4**2) / (2 * 0.5**2) - 0.5  # KL(p || q) of two Gaussians
    assert float(mixture_kl(p, q)[0]) == pytest.approx(kl, rel=1e-9) and abs(float(mixture_kl(p, p)[0])) < 1e-12
    # a narrow teacher component off the student's peak costs more than one on it
    two = MixtureParams(torch.tensor([[0.5, 0.5]]).double(), torch.tensor([[1.0, 3.0]]).double(),
                        torch.tensor([[0.01, 0.01]]).double())
    assert float(mixture_cross_entropy(two, _gaussian(1.0, 0.3))[0]) > float(
        mixture_cross_entropy(two, MixtureParams(*two))[0]) + 1.0


def test_distillation_moves_the_student_toward_the_ensemble(distilled):
    student, model = distilled
    teacher = load_artifact(teacher_path(model))
    assert len(teacher["members"]) == 2 and len(student["members"]) == 1
    gap = student["provenance"]["distillation"]
    assert gap["n_objects"] == 24 and gap["n_labelled_objects"] < gap["n_objects"]  # unlabelled objects too
    history = student["members"][0]["history"]
    assert len(history) == 4 and history[-1]["loss_distill"] < history[0]["loss_distill"]
    before, after = gap["gap_before"], gap["gap_after"]
    assert after["kl"] < 0.7 * before["kl"], (before, after)
    assert after["dzmean"] < before["dzmean"], (before, after)


def test_student_file_loads_weights_only_and_estimates(distilled, tiles, tmp_path):
    _, model = distilled
    data = tmp_path / "tiles.h5"
    write_tileset(tiles, data)
    art = load_artifact(model)  # weights_only
    assert len(art["members"]) == 1 and art["members"][0]["weight"] == 1.0
    assert main(["estimate", str(model), str(data), "-o", str(tmp_path / "pz.hdf5"), *FAST_CLI]) == 0
    ens = qp.read(str(tmp_path / "pz.hdf5"))
    assert ens.npdf == int(tiles.objects["primary"].sum())
    zmean = ens.ancil["zmean"]
    assert np.all(np.isfinite(zmean)) and np.all(zmean > 0)


def test_cli_distils_and_refuses_other_bands(distilled, tmp_path, capsys):
    _, model = distilled
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    write_tileset(make_colour_tileset(n_tiles=2, size=32, seed=5), good)
    write_tileset(make_colour_tileset(n_tiles=2, size=32, seed=5, bands=("F090W", "F150W", "F356W", "F410M")), bad)
    out = tmp_path / "student.pt"
    teacher = str(teacher_path(model))
    assert main(["distill", teacher, str(good), "-o", str(out), "--distill-epochs", "1", *FAST_CLI]) == 0
    assert len(load_artifact(out)["members"]) == 1
    assert (tmp_path / "student_checkpoints" / "distill.pt").exists()
    capsys.readouterr()
    assert main(["distill", teacher, str(good), str(bad), "-o", str(tmp_path / "x.pt"), *FAST_CLI]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.h5" in err[0] and "bands" in err[0] and not (tmp_path / "x.pt").exists()


def test_a_killed_distillation_resumes_to_the_same_student(distilled, tiles, tmp_path, monkeypatch):
    from rail.deepdisc.training import distill as module
    from rail.deepdisc.training.run import distill_from_options

    teacher = load_artifact(teacher_path(distilled[1]))
    options = {"distill_epochs": 2, "distill_lr": 1e-3, "num_threads": 1, "device": "cpu", "progress_bar": False,
               "checkpoint_dir": str(tmp_path / "ckpt")}
    whole = distill_from_options(teacher, [tiles], {**options, "checkpoint_dir": str(tmp_path / "other")})
    save = module.save_checkpoint

    def save_then_die(ckpt, path):
        save(ckpt, path)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        distill_from_options(teacher, [tiles], options)
    monkeypatch.setattr(module, "save_checkpoint", save)
    resumed = distill_from_options(teacher, [tiles], {**options, "resume": True})
    assert len(resumed["members"][0]["history"]) == 2
    a, b = whole["members"][0]["state_dict"], resumed["members"][0]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Exception, match="other options or data"):
        distill_from_options(teacher, [tiles], {**options, "resume": True, "distill_lr": 5e-4})


def test_the_student_head_distils_without_the_members_dropout_unless_asked(distilled, tiles, monkeypatch):
    """The members train their head with dropout (``head_dropout`` 0.3); the student, estimated in eval mode,
    must learn the ensemble's mixtures in that deterministic form: no dropout unless ``distill_head_dropout``."""
    from rail.deepdisc.model.redshift_head import RedshiftMixtureHead
    from rail.deepdisc.training.run import distill_from_options
    from rail.deepdisc.training.settings import DISTILL_OPTIONS, TrainSettings

    assert TrainSettings().head_dropout > 0 and "head_dropout" not in DISTILL_OPTIONS
    seen = []
    forward = RedshiftMixtureHead.forward

    def spy(self, *args, **kwargs):
        if self.training:
            seen.append(self.dropout)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(RedshiftMixtureHead, "forward", spy)
    teacher = load_artifact(teacher_path(distilled[1]))
    options = {"distill_epochs": 1, "num_threads": 1, "device": "cpu", "progress_bar": False}
    student = distill_from_options(teacher, [tiles], options)
    assert seen and set(seen) == {0.0}
    assert student["provenance"]["distillation"]["head_dropout"] == 0.0
    seen.clear()
    distill_from_options(teacher, [tiles], {**options, "distill_head_dropout": 0.25})
    assert seen and set(seen) == {0.25}


def test_a_student_with_more_components_starts_as_its_member_and_estimates(distilled, tiles, tmp_path):
    """``distill_components``: the student's head is its member's with every component split in copies, so
    distillation starts from the same mixtures (the same gap to the ensemble); the file says how many it has."""
    from rail.deepdisc.exceptions import ConfigError
    from rail.deepdisc.training.run import distill_from_options

    teacher = load_artifact(teacher_path(distilled[1]))
    k = int(teacher["config"]["n_components"])
    options = {"distill_epochs": 1, "distill_lr": 1e-3, "num_threads": 1, "device": "cpu", "progress_bar": False}
    same = distill_from_options(teacher, [tiles], options)
    more = distill_from_options(teacher, [tiles], {**options, "distill_components": 2 * k + 1})
    start_same, start_more = (s["provenance"]["distillation"]["gap_before"] for s in (same, more))
    assert start_more["kl"] == pytest.approx(start_same["kl"], rel=0.05, abs=2e-3), (start_same, start_more)
    assert more["config"]["n_components"] == 2 * k + 1 and same["config"]["n_components"] == k
    assert more["provenance"]["distillation"]["components"] == 2 * k + 1
    model, data, out = tmp_path / "student.pt", tmp_path / "tiles.h5", tmp_path / "pz.hdf5"
    save_artifact(more, model)
    write_tileset(tiles, data)
    assert main(["estimate", str(model), str(data), "-o", str(out), "--forced-all", *FAST_CLI]) == 0  # catalog boxes
    weights = np.asarray(qp.read(str(out)).dist.objdata["weights"])
    assert weights.shape == (int(tiles.objects["primary"].sum()), 2 * k + 1)
    assert np.allclose(weights.sum(1), 1.0)
    with pytest.raises(ConfigError, match="fewer than the members"):
        distill_from_options(teacher, [tiles], {**options, "distill_components": k - 1})
