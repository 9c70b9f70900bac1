"""A consensus photo-z: calibrated PDFs of several methods combined by hierarchical Bayes (``deepdisc combine``).

Two or more photo-z of the same objects (DeepDISC's Gaussian mixtures, EAZY or BPZ grid PDFs, any qp
ensemble) are first calibrated on labelled objects held out from training (a temperature per method,
optionally a PIT shape correction), then combined with the hierarchical Bayesian model of Dahlen et al.
(2013) and Duncan et al. (2018): each PDF mixed with a flat "it is wrong" term whose weight (the bad fraction)
is fitted per method and magnitude bin, the product over methods softened by ``1 / beta`` and normalised on
the common redshift grid. The labels' cross-validated likelihood decides which methods enter the product
(one that its calibration cannot mend is left out) and whether ``beta`` grows towards faint magnitudes. A model
fitted on the labelled objects applies to all the others.

=================  ======================================================================================
module             holds
=================  ======================================================================================
``grid``           PDFs tabulated on the common grid, normalisation, values at truth, point estimates
``calibration``    temperature (width) fit and PIT shape correction of one method
``hb``             bad fractions, magnitude bins, the softened product and its ``beta``
``model``          fit settings and the fitted model (pickle-free ``.npz``)
``fit``            `fit_consensus` and the method selection on tabulated arrays
``apply``          a fitted model applied to tabulated arrays: `combined_posterior`, `combine_pdfs`
``output_maps``    PIT maps of the combined PDFs, fitted on the labels' held-out PIT values
``sources``        the methods' files or ensembles read in lockstep chunks, row checks
``io``             truth tables, fit from files, the consensus chunk by chunk, the output file
=================  ======================================================================================

The RAIL stages are `rail.estimation.algos.deepdisc_consensus` (`ConsensusInformer`, `ConsensusEstimator`);
the command is ``deepdisc combine``.
"""

from rail.deepdisc.consensus.apply import calibrated_pdfs, combine_pdfs, combined_posterior
from rail.deepdisc.consensus.fit import fit_consensus
from rail.deepdisc.consensus.grid import grid_point_estimates, pdfs_on_grid
from rail.deepdisc.consensus.io import (
    combine_ensembles,
    fit_sources,
    iter_consensus,
    read_table,
    write_consensus,
)
from rail.deepdisc.consensus.model import (
    ConsensusModel,
    ConsensusSettings,
    load_consensus_model,
    save_consensus_model,
)
from rail.deepdisc.consensus.sources import check_same_rows

__all__ = [
    "calibrated_pdfs",
    "combine_pdfs",
    "combined_posterior",
    "fit_consensus",
    "grid_point_estimates",
    "pdfs_on_grid",
    "check_same_rows",
    "combine_ensembles",
    "fit_sources",
    "iter_consensus",
    "read_table",
    "write_consensus",
    "ConsensusModel",
    "ConsensusSettings",
    "load_consensus_model",
    "save_consensus_model",
]
