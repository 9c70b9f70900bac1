"""RAIL stages of the consensus photo-z: `ConsensusInformer` fits it, `ConsensusEstimator` applies it.

The science is in :mod:`rail.deepdisc.consensus` (calibration per method, then the hierarchical Bayesian
combination).

Both take the methods' photo-z of the same objects as ``input_1``, ``input_2``, ... (any qp ensembles, e.g.
DeepDISC, BPZ and EAZY outputs); ceci stages have a fixed list of inputs, so the two-method stages have
subclasses for three and four methods (`ConsensusInformer3`, `ConsensusEstimator3`, ...). The informer's
``truth`` is a TileSet (or table file) of the same rows whose ``truth_column`` (the spectroscopic ``redshift``
by default) labels the calibration objects, which must be held out from the methods' training; its ``model``
is a pickle-free ``.npz``. The estimator reads the magnitudes of the bad-fraction bins from ``tiles`` and
writes a ``qp.interp`` ensemble on the model's grid with ``zmode``, ``zmean``, ``zmedian`` (the combined
posterior's, before the model's output PIT maps) and ``object_id``, chunk by chunk.
"""

from __future__ import annotations

import os
from typing import Any

import qp
from ceci.config import StageParameter as Param
from rail.core.data import QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.consensus.io import fit_sources, iter_consensus, labels_of, read_table
from rail.deepdisc.consensus.model import ConsensusModel, ConsensusSettings
from rail.deepdisc.consensus.sources import DEFAULT_CHUNK, check_same_rows
from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.peers.model_io import NpzModelHandle
from rail.deepdisc.tileset.handles import TileSetHandle

__all__ = ["method_inputs", "ConsensusInformer", "ConsensusEstimator", "ConsensusInformer3",
           "ConsensusEstimator3", "ConsensusInformer4", "ConsensusEstimator4"]

_DEFAULTS = ConsensusSettings()


def method_inputs(n: int) -> list[tuple[str, type]]:
    """The input tags ``input_1`` ... ``input_n`` of an n-method consensus stage."""
    return [(f"input_{k}", QPHandle) for k in range(1, n + 1)]


_COMMON = dict(
    methods=Param(list, [], msg="method names, in input order (default: the input tags input_1, input_2, ...)"),
    chunk_size=Param(int, DEFAULT_CHUNK, msg="objects combined at a time"),
)


class _ConsensusStage(RailStage):
    """Shared handling of the methods' photo-z inputs."""

    parallel = False  # one process: the inputs are read in lockstep chunks

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    @classmethod
    def method_tags(cls) -> list[str]:
        """The photo-z input tags, in order."""
        return [tag for tag, _ in cls.inputs if tag.startswith("input_")]

    def method_names(self) -> list[str]:
        """The configured method names (default: the input tags)."""
        tags = self.method_tags()
        names = [str(m) for m in self.config.methods] or tags
        if len(names) != len(tags) or len(set(names)) != len(names):
            raise ConfigError(f"{self.name}: methods must be {len(tags)} distinct names (one per input "
                              f"{', '.join(tags)}), got {names}")
        return names

    def _attach(self, ensembles, **others) -> None:
        tags = self.method_tags()
        if len(ensembles) != len(tags):
            raise ConfigError(f"{self.name} combines {len(tags)} photo-z inputs, {len(ensembles)} given "
                              f"(use {type(self).__name__.rstrip('0123456789')}{len(ensembles)} for "
                              f"{len(ensembles)} methods)")
        for tag, value in [*zip(tags, ensembles), *others.items()]:
            if isinstance(value, (str, os.PathLike)):
                self.set_data(tag, None, path=str(value), do_read=False)
            else:
                self.set_data(tag, value, do_read=False)

    def _source(self, tag: str):
        """A file path when the input is on disk and not read yet, else the in-memory data."""
        handle = self.get_handle(tag, allow_missing=True)
        if handle.data is None and handle.path:
            return handle.path
        return self.get_data(tag)

    def _sources(self) -> list:
        return [self._source(tag) for tag in self.method_tags()]


class ConsensusInformer(_ConsensusStage):
    """Fit the consensus of two methods' photo-z on the labelled objects of ``truth``.

    Inputs ``input_1``, ``input_2`` (qp ensembles of the same objects) and ``truth``
    (their TileSet, or a table file, row for row); output ``model`` (``.npz``:
    temperatures, bad fractions per magnitude bin, beta).
    """

    name = "ConsensusInformer"
    entrypoint_function = "inform"
    interactive_function = "consensus_informer"
    config_options = RailStage.config_options.copy()
    config_options.update(
        **_COMMON,
        truth_column=Param(str, "redshift", msg="truth column labelling the calibration objects (NaN = not "
                           "labelled; the TileSet's spec-z by default, never redshift_true of a simulation)"),
        mag_band=Param(str, _DEFAULTS.mag_band, msg="band of the bad-fraction magnitude bins (reddest if absent)"),
        mag_edges=Param(list, list(_DEFAULTS.mag_edges), msg="inner magnitude bin edges, merged until each bin "
                        "holds min_per_bin labels"),
        min_per_bin=Param(int, _DEFAULTS.min_per_bin, msg="fewest labelled objects per magnitude bin"),
        pit_correction=Param(bool, _DEFAULTS.pit_correction, msg="fit a PIT shape correction per method"),
        pit_knots=Param(int, _DEFAULTS.pit_knots, msg="intervals of the PIT correction"),
        output_pit=Param(str, _DEFAULTS.output_pit, msg="PIT shape correction of the combined PDFs, fitted on the "
                         "labels' held-out PITs: auto (maps by magnitude, or one map without magnitudes, where the "
                         "labels' cross-validated likelihood gains), none, one, magnitude (one map per magnitude "
                         "group)"),
        output_pit_shift=Param(bool, _DEFAULTS.output_pit_shift, msg="let the output PIT maps also move the PDFs "
                               "(default: symmetric maps that only widen or narrow them, because spec-z are a "
                               "selection of the objects at any magnitude); for labels drawn like the objects"),
        fit_beta=Param(bool, _DEFAULTS.fit_beta, msg="fit the combination's beta (else 1: independent methods)"),
        select_methods=Param(bool, _DEFAULTS.select_methods, msg="leave out the methods whose removal raises "
                             "the labels' cross-validated likelihood"),
        beta_by_magnitude=Param(bool, _DEFAULTS.beta_by_magnitude, msg="let beta grow linearly with magnitude "
                                "above the labels' median magnitude where their cross-validated likelihood "
                                "says so"),
        min_bad_fraction=Param(float, _DEFAULTS.min_bad_fraction, msg="floor of every bad fraction"),
        prior_without_labels=Param(bool, _DEFAULTS.prior_without_labels, msg="with too few labelled objects, "
                                   "write the prior model (no calibration, beta = number of methods) with a "
                                   "warning instead of failing"),
        zmin=Param(float, ZMIN, msg="lowest redshift of the consensus grid"),
        zmax=Param(float, ZMAX, msg="highest redshift of the consensus grid"),
        nzbins=Param(int, NZBINS, msg="points of the consensus grid"),
    )
    inputs = [*method_inputs(2), ("truth", TileSetHandle)]
    outputs = [("model", NpzModelHandle)]

    def inform(self, *ensembles, truth) -> NpzModelHandle:
        """Fit the consensus of the methods' ensembles on the labelled objects of ``truth``.

        Parameters
        ----------
        *ensembles : qp.Ensemble, str or DataHandle
            One photo-z ensemble per method (objects, file paths or handles), in
            ``input_1``, ``input_2``, ... order, row for row.
        truth : TileSet, str or DataHandle
            The objects' TileSet (or a table file) with the calibration spec-z.

        Returns
        -------
        NpzModelHandle
            The fitted consensus model (``model``).
        """
        self._attach(ensembles, truth=truth)
        self.run()
        self.finalize()
        return self.get_handle("model")

    def run(self) -> None:
        """Fit and register the model."""
        c = self.config
        settings = ConsensusSettings(mag_band=c.mag_band, mag_edges=tuple(c.mag_edges), min_per_bin=c.min_per_bin,
                                     pit_correction=c.pit_correction, pit_knots=c.pit_knots,
                                     output_pit=c.output_pit, output_pit_shift=c.output_pit_shift,
                                     fit_beta=c.fit_beta,
                                     beta_by_magnitude=c.beta_by_magnitude, select_methods=c.select_methods,
                                     min_bad_fraction=c.min_bad_fraction,
                                     prior_without_labels=c.prior_without_labels, zmin=c.zmin, zmax=c.zmax,
                                     nzbins=c.nzbins)
        model = fit_sources(self._sources(), self.method_names(), self._source("truth"), settings=settings,
                            truth_column=c.truth_column, chunk_size=c.chunk_size)
        self.add_data("model", model.to_dict())


class ConsensusEstimator(_ConsensusStage):
    """Combine two methods' photo-z with a fitted consensus model into one ensemble.

    Inputs ``model`` (from `ConsensusInformer`), ``input_1``, ``input_2`` (qp ensembles
    of the same objects, in the model's method order) and ``tiles`` (their TileSet or a
    table file: the magnitudes of the bad-fraction bins); output ``output``, a
    ``qp.interp`` ensemble with one row per object in the inputs' order.
    """

    name = "ConsensusEstimator"
    entrypoint_function = "estimate"
    interactive_function = "consensus_estimator"
    config_options = RailStage.config_options.copy()
    config_options.update(**_COMMON)
    inputs = [("model", NpzModelHandle), *method_inputs(2), ("tiles", TileSetHandle)]
    outputs = [("output", QPHandle)]

    def estimate(self, model, *ensembles, tiles) -> QPHandle:
        """Combine the methods' ensembles with a fitted consensus model.

        Parameters
        ----------
        model : dict, str or DataHandle
            The consensus model from `ConsensusInformer`.
        *ensembles : qp.Ensemble, str or DataHandle
            One photo-z ensemble per method, in the model's method order, row for row.
        tiles : TileSet, str or DataHandle
            The objects' TileSet (or a table file): the magnitudes of the bins.

        Returns
        -------
        QPHandle
            The consensus photo-z (``output``).
        """
        self._attach(ensembles, model=model, tiles=tiles)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def _model(self) -> ConsensusModel:
        data = self.get_data("model")
        model = data if isinstance(data, ConsensusModel) else ConsensusModel.from_dict(data, "model")
        names = self.method_names() if self.config.methods else list(model.methods)
        if list(model.methods) != names:
            raise ConfigError(f"{self.name}: the model combines {list(model.methods)}, the inputs are {names}: "
                              f"give the inputs in the model's order")
        return model

    def run(self) -> None:
        """Combine chunk by chunk and write the output."""
        model = self._model()
        sources = self._sources()
        n = check_same_rows(sources, list(model.methods))
        _, mag, band = labels_of(read_table(self._source("tiles")), n, column=None, mag_band=model.mag_band)
        if band and band != model.mag_band:
            self.log.warning(f"the model's magnitude bins are in {model.mag_band}, the tiles give {band}")
        handle, parts = None, []
        write = self.config.output_mode != "return"
        for start, end, ens in iter_consensus(sources, model, mag, chunk_size=self.config.chunk_size):
            if handle is None:
                handle = self.add_handle("output", data=ens)
                if write:
                    handle.initialize_write(n, communicator=self.comm)
            handle.set_data(ens, partial=True)
            if write:
                handle.write_chunk(start, end)
            else:
                parts.append(ens)
        if write:
            handle.finalize_write()
        else:
            handle.set_data(parts[0] if len(parts) == 1 else qp.concatenate(parts))


class ConsensusInformer3(ConsensusInformer):
    """`ConsensusInformer` for three methods (``input_1``, ``input_2``, ``input_3``)."""

    name = "ConsensusInformer3"
    interactive_function = "consensus_informer3"
    inputs = [*method_inputs(3), ("truth", TileSetHandle)]


class ConsensusEstimator3(ConsensusEstimator):
    """`ConsensusEstimator` for three methods (``input_1``, ``input_2``, ``input_3``)."""

    name = "ConsensusEstimator3"
    interactive_function = "consensus_estimator3"
    inputs = [("model", NpzModelHandle), *method_inputs(3), ("tiles", TileSetHandle)]


class ConsensusInformer4(ConsensusInformer):
    """`ConsensusInformer` for four methods (``input_1`` ... ``input_4``)."""

    name = "ConsensusInformer4"
    interactive_function = "consensus_informer4"
    inputs = [*method_inputs(4), ("truth", TileSetHandle)]


class ConsensusEstimator4(ConsensusEstimator):
    """`ConsensusEstimator` for four methods (``input_1`` ... ``input_4``)."""

    name = "ConsensusEstimator4"
    interactive_function = "consensus_estimator4"
    inputs = [("model", NpzModelHandle), *method_inputs(4), ("tiles", TileSetHandle)]
