"""``python -m rail.deepdisc.cli``: the ``deepdisc`` command (also what ``torchrun -m`` runs)."""

import sys

from rail.deepdisc.cli import main

sys.exit(main())
