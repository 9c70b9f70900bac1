"""How much of DeepDISC's fine-tuning is its redshift head? The head fine-tuned alone on frozen features.

Issue 18: after pretraining, fine-tuning every layer on the 1391 spec-z of the JADES-size benchmark costs ~58
CPU minutes per member and leaves F444W 18-25 at sigma_IQR ~0.06. This script separates the two things
fine-tuning moves: the backbone's features and the redshift head that reads them. It

1. runs each given network (``--pretrained``, ``--finetuned``: `rail.deepdisc.model.artifact` files, first
   member) over the training field's tiles that hold a spec-z and over every tile of the test field, and keeps
   the redshift head's inputs of every primary object in its catalog box
   (`rail.deepdisc.analysis.features.object_features`: the RoI-aligned FPN features and the pixel path's colours
   and patches);
2. scores each network's own head on the test field;
3. fine-tunes only the pretrained network's head on the frozen features of the spec-z: ``--members`` members,
   each with its own validation tiles (`partition_tiles`), AdamW at the fine-tuning recipe's head rate
   (``--lr``, default 1e-4 x ``head_lr_factor`` 0.5), the training default's head dropout and weight decay,
   cosine decay over ``--epochs`` passes, the epoch of lowest validation NLL kept, widths calibrated on the
   validation objects (`fitted_widths`), members weighted by their validation likelihood (`member_weights`);
4. prints sigma_IQR / eta of the zmode against the true redshift of every test galaxy, overall and by catalog
   F444W (as `bench_accuracy.py`), the 68% / 95% coverage, and the CPU seconds of each fine-tuning.

Head-only fine-tuning sees no augmentation (the features are computed once, unflipped), and the boxes are the
catalog's (the estimator's matched detections differ a little): it bounds what training the head alone gives,
at a fraction of the cost. Usage (after ``bench_accuracy.py --pretrained`` has made its fields and model)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_head_finetune.py --workdir /tmp/accall0 \
        --pretrained /tmp/accall/pretrained_all.pt --finetuned /tmp/accall0/JADES9/model_realistic_finetuned.pt
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import TEST_SED_LIBRARY  # noqa: E402
from bench_head_inputs import _bins, _metrics  # noqa: E402

#: Redshift grid of the zmode and the coverage.
Z_GRID = np.linspace(0.0, 12.0, 2401)


def head_inputs(model, tiles) -> dict:
    """The head's inputs and the catalog columns of every primary object of ``tiles`` (catalog boxes)."""
    import torch

    from rail.deepdisc.analysis.features import object_features
    from rail.deepdisc.model.redshift_head import EBV_SCALE

    f = object_features(model, tiles, boxes="catalog")
    primary = np.flatnonzero(tiles.objects["primary"].astype(bool))
    column = {k: np.asarray(tiles.objects[k])[primary] for k in ("redshift", "redshift_true", "ebv", "mag_F444W",
                                                                   "tile", "true_is_star")}
    return {"features": torch.from_numpy(np.hstack([f.roi, f.pixel]).astype(np.float32)),
            "extra": torch.from_numpy((np.nan_to_num(column["ebv"]) / EBV_SCALE)[:, None].astype(np.float32)),
            **column}


def mixtures(head, data: dict, rows=slice(None)):
    """The head's Gaussian mixtures (a `rail.deepdisc.mixture.Mixture`) of the objects ``rows``."""
    import torch

    from rail.deepdisc.mixture import Mixture

    with torch.no_grad():
        return Mixture(*(t.double().numpy() for t in head(data["features"][rows], data["extra"][rows])))


def finetune_head(head, train: dict, *, seed: int, epochs: int, lr: float, settings) -> tuple:
    """One member: the head fine-tuned on the labelled objects of ``train``; (head, validation log-likelihood)."""
    import copy

    import torch

    from rail.deepdisc.model.redshift_head import mixture_log_prob
    from rail.deepdisc.training.data import partition_tiles
    from rail.deepdisc.training.head_finetune import head_pass
    from rail.deepdisc.training.validation import fitted_widths

    head = copy.deepcopy(head)
    head.std_scale.fill_(1.0)
    z = torch.from_numpy(train["redshift"]).float()
    tiles = np.unique(train["tile"])
    _, val_tiles = partition_tiles(len(tiles), np.arange(len(tiles)), val_fraction=0.2, seed=seed)
    is_val = np.isin(train["tile"], tiles[val_tiles])
    fit, val = np.flatnonzero(~is_val), torch.from_numpy(np.flatnonzero(is_val))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=settings.weight_decay)

    def val_nll() -> float:
        head.eval()
        with torch.no_grad():
            return -float(mixture_log_prob(head(train["features"][val], train["extra"][val]), z[val]).mean())

    best, best_state = val_nll(), copy.deepcopy(head.state_dict())
    for epoch in range(epochs):
        head_pass(head, train["features"], train["extra"], z, rng.permutation(fit), optimizer,
                  lr=lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs)), dropout=settings.head_dropout,
                  batch_size=32, clip_grad_norm=settings.clip_grad_norm)
        nll = val_nll()
        if nll < best:
            best, best_state = nll, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    head.eval()
    with torch.no_grad():
        factor, per_object = fitted_widths(head(train["features"][val], train["extra"][val]), z[val])
    head.std_scale.fill_(factor)
    return head, float(per_object.mean())


def table_row(name: str, cpu: float, mix, test: dict, galaxies: np.ndarray) -> str:
    """sigma_IQR / eta by F444W bin and the 68% / 95% coverage of ``mix`` on the test galaxies."""
    zt = test["redshift_true"][galaxies]
    zp = mix.mode(Z_GRID)
    pit = mix.cdf(zt)
    table = {"mag_F444W": test["mag_F444W"][galaxies]}
    cells = ["{:.3f} / {:.3f}".format(*_metrics(zp[sel], zt[sel])) for _, sel in _bins(table)]
    cover = f"{np.mean(np.abs(pit - 0.5) <= 0.34):.2f} / {np.mean(np.abs(pit - 0.5) <= 0.475):.2f}"
    return f"| {name} | {cpu:.0f} | " + " | ".join(cells) + f" | {cover} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="bench_accuracy.py workdir (holds <preset>/)")
    p.add_argument("--preset", default="JADES9")
    p.add_argument("--labels", default="realistic")
    p.add_argument("--test-family", default=TEST_SED_LIBRARY, help="suffix of the test field's file")
    p.add_argument("--pretrained", required=True, help="the pretrained network (its head is fine-tuned)")
    p.add_argument("--finetuned", nargs="*", default=[], help="fully fine-tuned networks to score beside it")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    from rail.deepdisc.mixture import combine_members
    from rail.deepdisc.model.artifact import load_artifact
    from rail.deepdisc.model.network import model_from_artifact
    from rail.deepdisc.tileset.io import read_tileset
    from rail.deepdisc.training.ensemble import member_weights
    from rail.deepdisc.training.settings import TrainSettings

    torch.set_num_threads(args.threads)
    base = Path(args.workdir) / args.preset
    train_ts = read_tileset(base / f"{args.preset}_train_{args.labels}.h5", validate=False)
    test_ts = read_tileset(base / f"{args.preset}_test_{args.test_family}.h5", validate=False)
    obj = train_ts.objects
    labelled = obj["primary"].astype(bool) & np.isfinite(np.asarray(obj["redshift"], float))
    train_tiles = train_ts.select_tiles(np.unique(np.asarray(obj["tile"])[labelled]))
    models = {"pretrained": args.pretrained, **{f"fine-tuned ({Path(f).parent.parent.name})": f
                                                 for f in args.finetuned}}
    rows, inputs = [], {}
    for name, path in models.items():
        t0 = time.perf_counter()
        model = model_from_artifact(load_artifact(path), 0).eval()
        inputs[name] = (model.redshift_head, head_inputs(model, train_tiles), head_inputs(model, test_ts))
        print(f"{name}: features of {len(inputs[name][1]['tile'])} training and {len(inputs[name][2]['tile'])} "
              f"test objects in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    test = inputs["pretrained"][2]
    galaxies = ~test["true_is_star"].astype(bool)
    for name, (head, _, test_inputs) in inputs.items():
        rows.append(table_row(f"{name} network, its own head", 0, mixtures(head, test_inputs, galaxies), test,
                              galaxies))
    head, train, _ = inputs["pretrained"]
    spec = np.isfinite(train["redshift"]) & (train["redshift"] >= 0)
    train = {k: v[spec] for k, v in train.items()}
    settings = TrainSettings()
    members, lls, cpu = [], [], 0.0
    for m in range(args.members):
        c0 = time.process_time()
        tuned, ll = finetune_head(head, train, seed=1234 + m, epochs=args.epochs, lr=args.lr, settings=settings)
        cpu += time.process_time() - c0
        members.append(mixtures(tuned, test, galaxies))
        lls.append(ll)
        rows.append(table_row(f"pretrained, head alone fine-tuned, member {m}", time.process_time() - c0,
                              members[-1], test, galaxies))
        print(rows[-1], file=sys.stderr, flush=True)
    rows.append(table_row(f"pretrained, head alone fine-tuned, {args.members} members", cpu,
                          combine_members(members, member_weights(lls)), test, galaxies))
    bins = _bins({"mag_F444W": test["mag_F444W"][galaxies]})
    print(f"{args.preset}: {int(spec.sum())} training spec-z, {int(galaxies.sum())} test galaxies; "
          "sigma_IQR / eta of zmode by catalog F444W; coverage 68% / 95%\n")
    print("| network | fine-tuning CPU s | " + " | ".join(f"{n} (n={int(s.sum())})" for n, s in bins)
          + " | coverage |")
    print("|---|---:|" + "---|" * len(bins) + "---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
