"""Throughput and accuracy of the template-fitting peers (EAZY, BPZ) on the same objects, matched templates.

Draws a synthetic NIRCam catalog from BPZ's CWWSB4 templates (random template, redshift and brightness, every
band at the given S/N), trains each peer on a labelled half, fitting the same CWWSB4 set (EAZY one template at a
time), and times its estimator on the other half: the fitters' machinery against the limit of the photometry
(the peers' defaults, eazy-py's FSPS set and the COSMOS SEDs, are measured by ``bench_accuracy.py``).
Prints objects/s (estimation only), the inform time, and the fraction within |dz|/(1+z) < 0.02 and the NMAD.

Smoke run:   PYTHONPATH=src python benchmarks/bench_peers.py --n 60
Full run:    PYTHONPATH=src python benchmarks/bench_peers.py --n 5000 --snr 20 --chunk-size 1000
(on a quiet machine; both peers are single-process here, scale them out with MPI through ceci).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY, NONDETECTION_MAG
from rail.deepdisc.peers.templates import load_template_set, template_fluxes
from rail.deepdisc.presets import get_preset


def synthetic_catalog(bands, n, snr, seed, igm):
    """Catalog drawn from the default templates (every band at S/N = snr, dropouts at a noise floor)."""
    rng = np.random.default_rng(seed)
    tset = load_template_set("CWWSB4")
    z = rng.uniform(0.2, 6.0, n)
    kind = rng.integers(0, len(tset), n)
    flux = np.stack([template_fluxes(tset, [zi], bands, igm=igm)[0, k] for zi, k in zip(z, kind)])
    flux *= (10 ** (-0.4 * (rng.uniform(24, 26, n) - AB_ZEROPOINT_NJY)) / flux[:, -1])[:, None]
    sigma = np.maximum(flux, 0.1 * np.median(flux, axis=1, keepdims=True)) / snr
    obs = flux + rng.normal(size=flux.shape) * sigma
    det = obs > sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(det, AB_ZEROPOINT_NJY - 2.5 * np.log10(obs), NONDETECTION_MAG)
        err = np.where(det, 2.5 / np.log(10) * sigma / obs, AB_ZEROPOINT_NJY - 2.5 * np.log10(sigma))
    table = {"object_id": np.arange(n, dtype=np.int64), "redshift": z, "ebv": np.zeros(n)}
    for k, band in enumerate(bands):
        table[f"mag_{band}"], table[f"magerr_{band}"] = mag[:, k], err[:, k]
    return table


def _split(table):
    half = len(table["redshift"]) // 2
    return ({k: v[:half] for k, v in table.items()}, {k: v[half:] for k, v in table.items()})


def _stats(zest, ztrue):
    dz = (np.ravel(zest) - ztrue) / (1 + ztrue)
    return float(np.mean(np.abs(dz) < 0.02)), float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def run_peer(name, informer, estimator, table, workdir, chunk_size, **options):
    """Inform on the first half, estimate the second; return (inform s, estimate s, n, fraction, nmad)."""
    train, test = _split(table)
    t0 = time.perf_counter()
    inf = informer.make_stage(
        name=f"{name}_inform", model=str(workdir / f"{name}_model"), **options["inform"]
    )
    inf.inform(train)
    t1 = time.perf_counter()
    est = estimator.make_stage(
        name=f"{name}_estimate",
        model=inf.get_handle("model"),
        chunk_size=chunk_size,
        output=str(workdir / f"{name}_pz.hdf5"),
        **options["estimate"],
    )
    out = est.estimate(test).data
    t2 = time.perf_counter()
    return (t1 - t0, t2 - t1, len(test["redshift"])) + _stats(out.ancil["zmode"], test["redshift"])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=60, help="objects (half train, half estimate)")
    parser.add_argument("--snr", type=float, default=20.0, help="S/N per band")
    parser.add_argument("--preset", default="JADES9", help="filter preset")
    parser.add_argument("--chunk-size", type=int, default=1000, help="objects per estimator chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
    from rail.estimation.algos.deepdisc_eazy import EazyEstimator, EazyInformer

    bands = get_preset(args.preset)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(tmp)
        eazy_table = synthetic_catalog(bands, args.n, args.snr, args.seed, igm="eazy")
        opts = dict(bands=list(bands), templates="CWWSB4", template_combos="1")
        rows.append(
            ("EAZY",)
            + run_peer(
                "eazy",
                EazyInformer,
                EazyEstimator,
                eazy_table,
                workdir,
                args.chunk_size,
                inform=opts,
                estimate=opts,
            )
        )
        bpz_table = synthetic_catalog(bands, args.n, args.snr, args.seed, igm="madau")
        bpz_opts = dict(nircam_bands=list(bands), data_dir=str(workdir / "bpz"), templates="CWWSB4")
        bpz_inform = dict(bpz_opts, output_hdfn=True)  # uniform synthetic redshifts: not Benitez' prior form
        rows.append(
            ("BPZ",)
            + run_peer(
                "bpz",
                NIRCamBPZInformer,
                NIRCamBPZEstimator,
                bpz_table,
                workdir,
                args.chunk_size,
                inform=bpz_inform,
                estimate=dict(bpz_opts, no_prior=True),
            )
        )
    print(
        f"peers on {args.n // 2} + {args.n - args.n // 2} synthetic {args.preset} objects, S/N {args.snr:g}"
    )
    print(f"{'peer':<6}{'inform s':>10}{'estimate s':>12}{'objects/s':>11}{'|dz|<0.02':>11}{'NMAD':>9}")
    for name, t_inf, t_est, n, frac, nmad in rows:
        print(f"{name:<6}{t_inf:>10.2f}{t_est:>12.2f}{n / t_est:>11.1f}{frac:>11.3f}{nmad:>9.4f}")
    if args.json:
        keys = ("peer", "inform_s", "estimate_s", "objects", "within_002", "nmad")
        Path(args.json).write_text(json.dumps([dict(zip(keys, row)) for row in rows], indent=1))


if __name__ == "__main__":
    main()
