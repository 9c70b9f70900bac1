"""Write the checked-in ceci pipeline YAMLs of ``examples/pipelines`` from `rail.deepdisc.pipelines`.

Run from the repository root after changing a pipeline or a stage's options:

    python examples/build_pipelines.py            # rewrite examples/pipelines/*.yml
    ceci examples/pipelines/main_JADES9.yml       # simulate -> inform -> estimate -> evaluate (JADES9 bands)
"""

import argparse
import logging
import os
from pathlib import Path

from rail.deepdisc.pipelines import PIPELINES, write_pipeline

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, default=Path("examples/pipelines"),
                        help="where the YAMLs go, relative to the repository root (ceci runs from there)")
    args = parser.parse_args()
    logging.getLogger("rail").setLevel(logging.WARNING)
    os.chdir(ROOT)  # the YAMLs name their stage-config files relative to the repository root
    for stem, (factory, options) in PIPELINES.items():
        path = write_pipeline(factory(), args.outdir / f"{stem}.yml", **options)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
