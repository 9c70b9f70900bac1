"""The option registry: each option declared once, and the stage, the command line and the settings agree."""

import argparse
import math
from dataclasses import dataclass

import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import Option, OptionSet, build, check_fields, option, options_of, values_of


def _training():
    from rail.deepdisc.cli import train as cli
    from rail.deepdisc.model.config import NetworkConfig
    from rail.deepdisc.training.settings import (
        TRAIN_OPTIONS,
        DistillSettings,
        EnsembleSettings,
        TrainRunOptions,
        TrainSettings,
    )
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    classes = {NetworkConfig: {"bands": ("F444W",), "pixel_scale": 0.03}, EnsembleSettings: {}, TrainSettings: {},
               TrainRunOptions: {}, DistillSettings: {}}
    return TRAIN_OPTIONS, DeepDiscInformer, cli, classes, {}


def _distillation():
    from rail.deepdisc.cli import distill as cli
    from rail.deepdisc.training.settings import (
        DISTILL_OPTIONS,
        DistillSettings,
        EnsembleSettings,
        TrainRunOptions,
        TrainSettings,
    )

    classes = {DistillSettings: {}, EnsembleSettings: {}, TrainSettings: {}, TrainRunOptions: {}}
    return DISTILL_OPTIONS, None, cli, classes, {}


def _simulation():
    from rail.creation.engines.deepdisc_simulator import DeepDiscSimulator
    from rail.deepdisc.cli import simulate as cli
    from rail.deepdisc.simulation import SimulationSettings
    from rail.deepdisc.simulation.settings import SIMULATION_OPTIONS

    return SIMULATION_OPTIONS, DeepDiscSimulator, cli, {SimulationSettings: {}}, {"bands": "NEXUS6",
                                                                           "depth": {"F444W": 29.5},
                                                                           "detection_bands": ["F150W"],
                                                                           "sed_library": "cww+cosmos"}


def _pretraining():
    from rail.deepdisc.cli import pretrain as cli
    from rail.deepdisc.pretraining.randomise import NuisanceRanges
    from rail.deepdisc.pretraining.settings import PRETRAIN_OPTIONS, PretrainRunOptions, PretrainSettings
    from rail.estimation.algos.deepdisc_pretrain import DeepDiscPretrainer

    _, _, _, training, _ = _training()  # the shared options: the training classes, before pretraining's own
    classes = {**training, PretrainRunOptions: {}, PretrainSettings: {}, NuisanceRanges: {}}
    return PRETRAIN_OPTIONS, DeepDiscPretrainer, cli, classes, {"bands": "NEXUS6", "sed_library": "fsps+cww"}


def _backbone_pretraining():
    from rail.deepdisc.cli import pretrain as cli
    from rail.deepdisc.pretraining.settings import BACKBONE_PRETRAIN_OPTIONS, BackboneRunOptions, BackboneSettings

    return BACKBONE_PRETRAIN_OPTIONS, None, cli, {BackboneRunOptions: {}, BackboneSettings: {}}, {}


def _estimation():
    from rail.deepdisc.cli import estimate as cli
    from rail.deepdisc.inference.predictor import InferenceSettings
    from rail.estimation.algos.deepdisc import ESTIMATE_OPTIONS, DeepDiscEstimator

    return ESTIMATE_OPTIONS, DeepDiscEstimator, cli, {InferenceSettings: {}}, {}


def _prep():
    from rail.deepdisc.cli import prep as cli
    from rail.deepdisc.prep.prepare import PrepSettings
    from rail.tools.deepdisc_prep import PREP_OPTIONS, DeepDiscPrep

    return PREP_OPTIONS, DeepDiscPrep, cli, {PrepSettings: {}}, {"bands": "NEXUS6", "match_band": "f356w"}


def _catalog_mdn():
    from types import SimpleNamespace

    from rail.deepdisc.peers.catalog_mdn import CATALOG_MDN_OPTIONS, CatalogMdnSettings
    from rail.estimation.algos.deepdisc_ml import CatalogMdnInformer

    def add_arguments(parser):  # no command of its own (``deepdisc peers`` runs it with its defaults)
        parser.add_argument("-o")
        CATALOG_MDN_OPTIONS.add_arguments(parser)

    cli = SimpleNamespace(add_arguments=add_arguments)
    return CATALOG_MDN_OPTIONS, CatalogMdnInformer, cli, {CatalogMdnSettings: {}}, {}


MECHANISMS = {"train": _training, "catalog MDN": _catalog_mdn, "simulate": _simulation, "pretrain": _pretraining,
              "pretrain --backbone-only": _backbone_pretraining, "estimate": _estimation, "prep": _prep,
              "distill": _distillation}
#: Positional and required arguments of the commands besides -o.
POSITIONAL = {"estimate": ["model.pt", "tiles.h5"], "distill": ["model.pt", "tiles.h5"],
              "prep": ["--mosaics", "m", "--catalog", "c.fits"]}


def _parser(cli) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepdisc")
    cli.add_arguments(parser)
    return parser


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _built(options: OptionSet, classes: dict, values: dict) -> dict:
    """Every option's value once the settings objects are built (options outside them: their checked value)."""
    out = {}
    for cls, fixed in classes.items():
        out.update(values_of(build(cls, values, **fixed)))
    for name, opt in options.items():
        if name not in out:
            out[name] = _plain(opt.coerce(values.get(name, opt.default)))
    return out


def _sample(opt: Option, overrides: dict):
    """A valid value other than the default."""
    if opt.name in overrides:
        return overrides[opt.name]
    if opt.type is bool:
        return not opt.default
    if opt.type is list:
        if opt.choices:
            return [opt.choices[-1]]
        if opt.interval:
            return [opt.default[0], opt.default[1] + 0.125] if opt.default else [0.25, 0.5]
        if opt.item is int:
            return [1, 3]
        if opt.item is str:
            return ["a.h5", "b.h5"]
        return [float(v) + 0.5 for v in opt.default] or [0.5]
    if opt.choices:
        return next(c for c in opt.choices if c != opt.default)
    if opt.type is str:
        return "custom"
    if opt.type is int:
        value = (opt.default or 0) + 1
        if opt.low is not None and value <= opt.low:
            value = int(opt.low) + 1
        return value if opt.high is None or value <= opt.high else int(opt.low)
    if opt.low is not None and opt.high is not None:
        return (opt.low + opt.high) / 2 if opt.default != (opt.low + opt.high) / 2 else (opt.low + opt.default) / 2
    return (opt.default or 0.0) + 0.5


def _argv(opt: Option, value) -> list[str]:
    flag = opt.flag_name()
    if opt.flag_type is not None:
        value = opt.flag_type(29.5)
    if opt.type is bool:
        return [flag]
    if isinstance(value, list):
        return [flag, *map(str, value)]
    return [flag, str(value)]


def _bad_values(opt: Option):
    """Values outside the declared range or choices, or of the wrong type."""
    if opt.type is list:
        if opt.choices:
            yield ["nonsense"]
        if opt.interval:
            yield [1.0]
            yield [2.0, 1.0]
        if opt.low is not None:
            yield [opt.low - 1]
        yield 7
        return
    if opt.choices:
        yield "nonsense"
    if opt.low is not None:
        yield opt.low if opt.low_open else opt.low - 1
    if opt.high is not None:
        yield opt.high if opt.high_open else opt.high + 1
    if opt.type is float and opt.finite:
        yield math.inf
    if opt.type in (int, float):
        yield "abc"
    if opt.type is int:
        yield 1.5


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_stage_param_flag_and_settings_field_agree_for_every_option(mechanism):
    options, stage, cli, classes, overrides = MECHANISMS[mechanism]()
    actions = {a.dest: a for a in _parser(cli)._actions}
    defaults = _built(options, classes, {})
    for name, opt in options.items():
        if stage is not None:
            param = stage.config_options[opt.stage_name]
            assert (param.dtype, param.default, param.msg) == (opt.type, opt.plain_default, opt.help), name
        assert defaults[name] == _plain(opt.coerce(opt.plain_default)), name  # the settings field's default
        action = actions[name]
        assert opt.flag_name() in action.option_strings and action.default is None, name
        assert opt.help.replace("%", "%%") in action.help, name
        if opt.choices is not None and opt.type is not bool:
            assert tuple(action.choices) == opt.choices, name
        value = _sample(opt, overrides)
        expected = _plain(opt.coerce(value))
        argv = _argv(opt, value)
        from_cli = options.from_args(_parser(cli).parse_args([*POSITIONAL.get(mechanism, []), "-o", "x", *argv]))
        assert list(from_cli) == [name], name
        cli_value = opt.coerce(from_cli[name])
        assert _built(options, classes, from_cli)[name] == _plain(cli_value), name
        assert cli_value == (opt.coerce(opt.flag_type(29.5)) if opt.flag_type else opt.coerce(value)), name
        config = {**{o.stage_name: o.plain_default for o in options.values()}, opt.stage_name: value}
        assert _built(options, classes, options.from_config(config))[name] == expected, name


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_out_of_range_values_are_refused_naming_the_option(mechanism):
    options, _, _, classes, _ = MECHANISMS[mechanism]()
    checked = 0
    for name, opt in options.items():
        for bad in _bad_values(opt):
            with pytest.raises(ConfigError, match=rf"\b{name} (must|values must)") as err:
                _built(options, classes, {name: bad})
            assert "got" in str(err.value), (name, bad)
            checked += 1
    assert checked > len(options)


def test_training_options_refuse_misspelled_names_and_bad_values():
    from rail.deepdisc.training.run import check_train_options
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    with pytest.raises(ConfigError, match=r"^training: unknown option 'epoch' \(did you mean 'epochs'\?\)"):
        check_train_options({"epoch": 3})
    with pytest.raises(ConfigError, match="unknown options 'lr', 'batchsize' \\(did you mean 'batch_size'"):
        check_train_options({"lr": 1e-3, "batchsize": 2})  # the flag name is not the option name
    with pytest.raises(ConfigError, match="did you mean 'head_steps'"):
        DeepDiscInformer.make_stage(name="strict_inform_opts", head_step=3)
    with pytest.raises(ConfigError, match=r"^head_dropout must be in \[0, 1\), got 1.0$"):
        check_train_options({"head_dropout": 1.0})
    with pytest.raises(ConfigError, match=r"^epochs must be an integer, got 'many'$"):
        check_train_options({"epochs": "many"})
    assert check_train_options({"epochs": "3", "lr_steps": (1, 2)})["epochs"] == "3"


def test_a_new_option_is_one_declaration():
    """What adding a training option takes: one field; the stage, the flag, the default and the check follow."""
    from rail.deepdisc.training.settings import TRAIN_OPTIONS

    @dataclass(frozen=True)
    class Warmup:
        warmup_epochs: int = option(0, "epochs of linear learning-rate warm-up (0 = none)", low=0)

        def __post_init__(self):
            check_fields(self)

    options = OptionSet(TRAIN_OPTIONS, Warmup)
    assert options.defaults()["warmup_epochs"] == 0
    param = options.params()["warmup_epochs"]
    assert (param.dtype, param.default, param.msg) == (int, 0, "epochs of linear learning-rate warm-up (0 = none)")
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    given = options.from_args(parser.parse_args(["--warmup-epochs", "3", "--epochs", "5"]))
    assert given == {"warmup_epochs": 3, "epochs": 5}
    assert build(Warmup, options.check(given, "training")).warmup_epochs == 3
    with pytest.raises(ConfigError, match="warmup_epochs must be >= 0, got -1"):
        build(Warmup, {"warmup_epochs": -1})
    with pytest.raises(ConfigError, match="did you mean 'warmup_epochs'"):
        options.check({"warmup_epoch": 2}, "training")


def test_option_conversions():
    opt = Option("steps", (), "steps", item=int, low=0)
    assert opt.coerce([1, "2", 3.0]) == (1, 2, 3)
    assert Option("flag", True, "flag").coerce("false") is False
    assert Option("x", 0.5, "x").coerce(2) == 2.0 and isinstance(Option("x", 0.5, "x").coerce(2), float)
    unset = Option("size", None, "size", type=int, optional=True, empty=0, low=16)
    assert unset.coerce(0) is None and unset.coerce(None) is None and unset.coerce(32) == 32
    assert unset.plain_default == 0
    with pytest.raises(ConfigError, match="size must be >= 16, got 8"):
        unset.coerce(8)
    with pytest.raises(ConfigError, match="flag must be true or false, got 'maybe'"):
        Option("flag", True, "flag").coerce("maybe")
    with pytest.raises(ConfigError, match="steps must be a list, got 3"):
        opt.coerce(3)


def test_an_option_is_declared_once_per_set():
    from rail.deepdisc.model.config import NetworkConfig

    with pytest.raises(ValueError, match="'backbone' is declared twice"):
        OptionSet(NetworkConfig, NetworkConfig)
    assert [o.name for o in options_of(NetworkConfig)][:2] == ["backbone", "backbone_norm"]
