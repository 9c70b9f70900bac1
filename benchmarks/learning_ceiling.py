"""How close can a learner get to template fitting on the accuracy benchmark? Catalog learners with every label.

Issue 18 asks DeepDISC to match EAZY's sigma_IQR at F444W < 27 on `bench_accuracy.py`'s test field. Before
asking the pixels for it, this script asks what the *catalog* allows a learner when labels are no limit: the
catalog MDN (`CatalogMdnInformer`: DeepDISC's own redshift head on the catalog's magnitude and colours) and kNN
are trained on every galaxy of a label-complete simulated field (true redshifts, thousands of objects) and
scored on the benchmark run's test field, beside that run's peers and DeepDISC. Three training fields, each
``--tiles`` tiles (``--chunks`` of 64 for the last) of the benchmark's preset and size:

``in-domain``
    the test field's own SED family and shifted nuisances (`bench_accuracy.test_field_args`), another seed:
    the ceiling, which no real survey's training set reaches;
``all libraries, fixed``
    every SED library (``cosmos+fsps+cww``, the pretraining default) at the simulator's default nuisances;
``all libraries, randomised``
    the chunks `deepdisc pretrain` itself streams (its default `NuisanceRanges`, seed ``--seed``): what a
    catalog learner pretrained like DeepDISC would see.

The label-complete fields and their catalogs are kept in ``WORKDIR/PRESET/ceiling`` (seeds fixed; a second run
reuses them). Usage, after `bench_accuracy.py` has made its fields and peers in ``WORKDIR``::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/learning_ceiling.py --workdir /tmp/accall0 \\
        --deepdisc "DeepDISC=/tmp/accall0/JADES9/pz_realistic_p36_finetuned.hdf5"

Costs on 2 cores: simulating 3000 tiles ~4.5 min per field; the 3-member catalog MDN ~13 min wall (33 CPU min)
per field; kNN ~6-7 min per field (its grid search of the kernel width and neighbours).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_accuracy as ba  # noqa: E402

#: Seeds of the label-complete training fields (none is a seed of `bench_accuracy.py`'s fields).
IN_DOMAIN_SEED, FIXED_SEED, RANDOMISED_SEED = 778, 777, 4321
ALL_LIBRARIES = "cosmos+fsps+cww"
#: Tiles per simulated chunk of the randomised field (`deepdisc pretrain`'s default).
CHUNK_TILES = 64
#: Rows of the table: the bins of `bench_accuracy.score` shown.
#: The learners trained with every label (`bench_accuracy._peer_specs` names).
LEARNERS = ("Catalog MDN", "kNN")
SHOWN = ("<27", "18-25", "25-27", "27-28", "28-29", "29-32", "all")


def _simulate(out: Path, tiles: int, seed: int, preset: str, size: int, extra: list[str]) -> None:
    if not out.exists():
        ba._cli(["simulate", "-o", str(out), "--tiles", str(tiles), "--seed", str(seed), "--preset", preset,
                 "--size", str(size), "--label-fraction", "1.0", "--no-progress", *extra], 1)


def _catalog(tileset: Path, out: Path) -> dict:
    import tables_io

    from rail.tools.deepdisc_catalog import TileSetToCatalog

    if not out.exists():
        TileSetToCatalog.make_stage(name=f"catalog_{out.stem}", output=str(out))(str(tileset))
    return tables_io.read(str(out))


def _randomised(folder: Path, n_chunks: int, preset: str, size: int, seed: int) -> dict:
    """One catalog of the pretraining's own chunks (epoch 0, chunks ``0 .. n_chunks - 1`` of `CHUNK_TILES`
    tiles), label-complete, every library."""
    import tables_io

    from rail.deepdisc.pretraining.run import pretraining_source
    from rail.deepdisc.tileset.io import write_tileset

    out = folder / "cat_randomised.hdf5"
    if out.exists():
        return tables_io.read(str(out))
    source = pretraining_source({"bands": preset, "tile_size": size, "sed_library": ALL_LIBRARIES, "seed": seed,
                                 "tiles_per_chunk": CHUNK_TILES, "chunks_per_epoch": n_chunks})
    parts = []
    for chunk in range(n_chunks):  # object ids restart in every chunk: one catalog per chunk file
        path = write_tileset(source.chunk(0, chunk), folder / f"randomised_{chunk}.h5")
        parts.append(_catalog(path, folder / f"cat_randomised_{chunk}.hdf5"))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    tables_io.write(cat, str(out))
    return cat


def _train_and_estimate(name: str, train: dict, test: dict, folder: Path, members: int) -> dict:
    """The catalog MDN and kNN trained on every labelled object of ``train``; photo-z files of ``test``."""
    from rail.core.data import DataStore

    DataStore.allow_overwrite = True
    lab = np.isfinite(train["redshift"])
    labelled = {k: v[lab] for k, v in train.items()}
    bands = [k[len("mag_"):] for k in test if k.startswith("mag_")]
    slug = ba._slug(name).replace(",", "")
    out = {}
    # the benchmark's own peer configurations of these two learners (bench_accuracy.run_peers)
    specs = {spec[0]: spec[1:] for spec in ba._peer_specs(bands, members)}
    for learner in LEARNERS:
        inf_cls, est_cls, common, suffix, inform_only = specs[learner]
        pz = folder / f"pz_{ba._slug(learner)}_{slug}.hdf5"
        cpu_file = pz.with_suffix(".cpu.json")
        if not (pz.exists() and cpu_file.exists()):
            c0 = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inf = inf_cls.make_stage(name=f"{ba._slug(learner)}_inform_{slug}",
                                         model=str(folder / f"model_{ba._slug(learner)}_{slug}.{suffix}"),
                                         **common, **inform_only)
                inf.inform(labelled)
            cpu = time.process_time() - c0
            est_cls.make_stage(name=f"{ba._slug(learner)}_estimate_{slug}", model=inf.get_handle("model"),
                               output=str(pz), chunk_size=5000, **common).estimate(test)
            cpu_file.write_text(json.dumps({"train_cpu_s": cpu}))
        cpu = json.loads(cpu_file.read_text())["train_cpu_s"]
        out[f"{learner}, {int(lab.sum())} labels, {name}"] = (pz, cpu)
    return out


def _row(label: str, res: dict, cpu_s: float) -> str:
    rows = {r["bin"]: r for r in res["rows"]}
    cells = [f"{rows[b]['sigma_iqr']:.3f} / {rows[b]['eta']:.3f}" if b in rows else "-" for b in SHOWN]
    cov = rows["all"]
    return (f"| {label} | " + " | ".join(cells) + f" | {cov['cov68']:.2f} / {cov['cov95']:.2f} | "
            + (f"{cpu_s / 60:.1f} |" if cpu_s else "- |"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True, help="a bench_accuracy.py --workdir")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--tiles", type=int, default=3000, help="tiles of each label-complete training field")
    p.add_argument("--size", type=int, default=128, help="tile side of the benchmark run (px)")
    p.add_argument("--chunks", type=int, default=48, help="chunks of 64 tiles of the randomised field")
    p.add_argument("--members", type=int, default=3, help="catalog MDN members")
    p.add_argument("--seed", type=int, default=RANDOMISED_SEED, help="seed of the randomised chunks")
    p.add_argument("--test-library", default=ba.TEST_SED_LIBRARY, help="the benchmark run's test SED family")
    p.add_argument("--test-mismatch", type=float, default=0.0, help="the benchmark run's --test-mismatch")
    p.add_argument("--deepdisc", action="append", default=[], metavar="LABEL=FILE",
                   help="photo-z files of the test field to show beside them (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run = args.workdir / args.preset
    folder = run / "ceiling"
    folder.mkdir(parents=True, exist_ok=True)
    import tables_io

    from rail.deepdisc.evaluation.io import read_truth

    family = ba.test_family_name(args)
    test_file = run / f"{args.preset}_test_{family}.h5"
    peers = run / "peers_realistic"
    test = tables_io.read(str(peers / "cat_test.hdf5"))
    trainings = {}
    in_domain = folder / f"in_domain_{family}.h5"
    _simulate(in_domain, args.tiles, IN_DOMAIN_SEED, args.preset, args.size, ba.test_field_args(args))
    trainings["in-domain"] = _catalog(in_domain, folder / f"cat_in_domain_{family}.hdf5")
    fixed = folder / "all_libraries_fixed.h5"
    _simulate(fixed, args.tiles, FIXED_SEED, args.preset, args.size, ["--sed-library", ALL_LIBRARIES])
    trainings["all libraries, fixed"] = _catalog(fixed, folder / "cat_all_libraries_fixed.hdf5")
    trainings["all libraries, randomised"] = _randomised(folder, args.chunks, args.preset, args.size, args.seed)

    files = {f"{name} (benchmark run)": (peers / f"pz_{ba._slug(name)}.hdf5", 0.0) for name in ("EAZY", "Catalog MDN",
                                                                                                 "kNN")}
    for item in args.deepdisc:
        label, path = item.split("=", 1)
        files[label] = (Path(path), 0.0)
    for name, train in trainings.items():
        files.update(_train_and_estimate(name, train, test, folder, args.members))

    truth = read_truth(test_file)
    print(f"\n{args.preset} test field {test_file.name}: sigma_IQR / eta of zmode by catalog F444W; 68% / 95% "
          f"coverage of all galaxies\n")
    print("| estimator | " + " | ".join(SHOWN) + " | cov 68 / 95 | CPU min |")
    print("|---|" + "---|" * (len(SHOWN) + 2))
    for label, (path, cpu) in files.items():
        print(_row(label, ba.score(path, truth, label, cpu), cpu), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
