"""Run ceci stages and package modules in subprocesses, optionally on several MPI ranks (``mpiexec``)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: ``mpiexec`` of the mpich wheel beside the interpreter, or None.
MPIEXEC = str(Path(sys.executable).parent / "mpiexec") if (Path(sys.executable).parent / "mpiexec").exists() \
    else None
#: Skip marker for tests that need ``mpiexec``.
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec (mpich wheel) not installed beside python")


def subprocess_env():
    """Environment of a test subprocess: one thread, this checkout's ``src`` and tests first on the path.

    A ``WORLD_SIZE`` inherited from a distributed launcher is dropped: the child is not one of its ranks.
    """
    path = [str(REPO / "src"), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(path))
    env.pop("WORLD_SIZE", None)
    return env


def stage_config(folder, name):
    """A minimal ceci configuration file for stage ``name`` in ``folder``."""
    path = Path(folder) / "config.yml"
    path.write_text(textwrap.dedent(f"""\
        {name}:
            name: {name}
    """))
    return path


def run_stage(args, *, cwd, n_ranks=1, module="ceci"):
    """Run ``python -m <module> ARGS`` on ``n_ranks`` processes (``mpiexec ... --mpi`` when more than one).

    Fails the test with the subprocess's output tail when it exits non-zero; returns the completed process.
    """
    cmd = [sys.executable, "-m", module, *map(str, args)]
    if n_ranks > 1:
        cmd = [MPIEXEC, "-n", str(n_ranks), *cmd, "--mpi"]
    proc = subprocess.run(cmd, env=subprocess_env(), cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc
