"""eazy-photoz folders and templates .param files, resolved as eazy resolves them."""

import shutil

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.eazy_fit import EazyRunner, EazySettings
from rail.deepdisc.peers.eazy_paths import (
    DEFAULT_EAZY_TEMPLATES,
    DEFAULT_TEMPLATE_ERROR,
    PACKAGED_EAZY_ROOT,
    read_eazy_param,
    resolve_eazy_path,
)
from rail.deepdisc.peers.templates import load_template_set


@pytest.fixture
def user_checkout(tmp_path):
    """A user's eazy-photoz checkout elsewhere on disk (a copy of the shipped files, one template scaled)."""
    root = tmp_path / "eazy-photoz"
    shutil.copytree(PACKAGED_EAZY_ROOT, root)
    first = root / "templates" / "fsps_full" / "tweak_fsps_QSF_12_v3_001.dat"
    data = np.loadtxt(first)
    np.savetxt(first, np.column_stack([data[:, 0], 2.0 * data[:, 1]]))
    return root


def test_packaged_defaults_are_eazys():
    entries = read_eazy_param(DEFAULT_EAZY_TEMPLATES)
    assert len(entries) == 12 and all(e.path.is_file() and e.to_angstrom == 1.0 for e in entries)
    assert entries[0].path == (PACKAGED_EAZY_ROOT / "templates/fsps_full/tweak_fsps_QSF_12_v3_001.dat").resolve()
    assert resolve_eazy_path(DEFAULT_TEMPLATE_ERROR, PACKAGED_EAZY_ROOT).name == "template_error_10.def"


def test_unmodified_param_file_of_a_users_checkout(user_checkout, tmp_path):
    param = user_checkout / DEFAULT_EAZY_TEMPLATES
    # as eazy: the paths inside are relative to the checkout, not to the .param file's folder
    assert "templates/fsps_full/" in param.read_text()
    for spec, root in ((DEFAULT_EAZY_TEMPLATES, user_checkout), (param, user_checkout), (param, None)):
        entries = read_eazy_param(spec, root)
        assert entries[0].path == (user_checkout / "templates/fsps_full/tweak_fsps_QSF_12_v3_001.dat").resolve()
    ours = load_template_set(DEFAULT_EAZY_TEMPLATES, extend=False)
    theirs = load_template_set(DEFAULT_EAZY_TEMPLATES, extend=False, root=user_checkout)
    np.testing.assert_allclose(theirs.fluxes[0], 2.0 * ours.fluxes[0], rtol=1e-5)
    np.testing.assert_allclose(theirs.fluxes[1], ours.fluxes[1])


def test_runner_reads_the_users_templates(user_checkout, tmp_path):
    settings = EazySettings(bands=("F150W", "F444W"), templates_root=str(user_checkout))
    runner = EazyRunner(settings, tmp_path)
    listed = runner.params()["TEMPLATES_FILE"]
    assert str(user_checkout) in open(listed).read()
    assert runner.params()["TEMP_ERR_FILE"] == str(user_checkout / DEFAULT_TEMPLATE_ERROR)


def test_param_file_outside_its_checkout_needs_the_root(user_checkout, tmp_path):
    moved = tmp_path / "elsewhere" / "my.param"
    moved.parent.mkdir()
    shutil.copy(user_checkout / DEFAULT_EAZY_TEMPLATES, moved)
    (moved.parent / "extra.param").write_text("1 templates/nowhere/missing.dat 1.0\n")
    with pytest.raises(ConfigError, match="missing SED file.*give templates_root"):
        read_eazy_param(moved.parent / "extra.param", user_checkout)
    assert read_eazy_param(moved, user_checkout)[0].path.is_relative_to(user_checkout.resolve())
    with pytest.raises(ConfigError, match="templates_root .* is not a folder"):
        read_eazy_param(moved, tmp_path / "no-such-folder")
    with pytest.raises(ConfigError, match="templates file 'nothing.param' not found"):
        read_eazy_param("nothing.param", user_checkout)
