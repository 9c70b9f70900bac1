"""Run a ceci stage with the stand-in network.

Usage: ``[mpiexec -n N] python -m tests.helpers.mpirunner STAGE ...``.

The same as ``python -m ceci STAGE ...`` (ceci's `PipelineStage.main`), after making the estimator build
`fakenet.FakeNet` members; used by the MPI test.
"""

from ceci.stage import PipelineStage

from tests.helpers import fakenet

if __name__ == "__main__":
    fakenet.install()
    PipelineStage.main()
