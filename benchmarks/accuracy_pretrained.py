"""The pretrained rows of the accuracy benchmark (`bench_accuracy.py --pretrain` / ``--pretrained PATH``).

Issue 18's recipe, as a user runs it:

1. ``deepdisc pretrain`` on label-complete simulations with domain randomisation (the nuisance ranges of
   ``deepdisc pretrain`` and SEDs from several families, every galaxy drawing its own), *without* the family
   that the benchmark holds out for its test field: ``--sed-library cosmos+cww`` (`pretrain_library`);
2. ``deepdisc train --init PRETRAINED`` on the benchmark's spec-z with the labels-only ensemble's members,
   epochs and options plus `FINETUNE_ARGS`; nothing is frozen, so every part (backbone, FPN, detector heads,
   redshift head) trains on the spec-z.

Rows: ``DeepDISC pretrained + fine-tuned`` (the ensemble) and ``DeepDISC pretrained (no fine-tuning)`` (the
pretrained network alone); their CPU minutes are the pretraining's (the artifact's ``cpu_seconds``: the
pretraining loop's CPU, simulation included, summed over resumed runs; the whole process's when ``--pretrain``
ran it in one go; or ``--pretrain-cpu-min``) plus the fine-tuning's. `acceptance_table` is issue 18's
acceptance for item 3: the pretrained + fine-tuned ensemble against the labels-only one for faint
(F444W >= 27) and z > 3 galaxies (must beat it) and bright ones (F444W < 25: must not lose).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from pathlib import Path

#: The rows this module adds.
FINETUNED = "DeepDISC pretrained + fine-tuned"
PRETRAINED = "DeepDISC pretrained (no fine-tuning)"
LABELS_ONLY = "DeepDISC ensemble"
#: Pretraining for about 40 CPU minutes on 2 cores (128 px tiles, 9 bands, ResNet-18: ~0.3 CPU-s per tile,
#: simulation included, measured with 1 thread): 12 epochs x 8 chunks x 64 tiles = 6144 tiles, 1536 steps of 4.
PRETRAIN_ARGS = "--epochs 12 --chunks-per-epoch 8 --tiles-per-chunk 64 --validation-tiles 16"
#: Fine-tuning options added after the labels-only training's: a learning rate well below the from-scratch
#: one and no extra head-only updates (docs/pretraining.md), so the spec-z refine the pretrained mapping.
FINETUNE_ARGS = "--lr 1e-4 --head-steps 0"
#: Issue 18's acceptance subsets: (name, binning of `score`'s values, low, high, must beat labels-only).
SUBSETS = (("F444W >= 27", "mag", 27.0, math.inf, True), ("z > 3", "z", 3.0, math.inf, True),
           ("F444W < 25", "mag", -math.inf, 25.0, False))


def pretrain_library(held_out: str) -> str:
    """Every SED family but the test field's held-out one, joined by ``+`` (``cosmos+cww`` for ``fsps``)."""
    from rail.deepdisc.simulation.sed_library import SED_FAMILIES, library_families

    held = set(library_families(held_out))
    return "+".join(f for f in SED_FAMILIES if f not in held)


def pretrain_command(output: Path, preset: str, args, held_out: str) -> list[str]:
    """The ``deepdisc pretrain`` arguments of the benchmark's pretraining (resumes a killed run)."""
    return ["pretrain", "-o", str(output), "--bands", preset, "--tile-size", str(args.size), "--sed-library",
            pretrain_library(held_out), "--threads", str(args.threads), "--seed", str(args.seed), "--device", "cpu",
            "--no-progress", "--resume", *shlex.split(args.pretrain_args)]


def pretrained_path(args, out: Path, preset: str, held_out: str) -> Path:
    """``--pretrained`` (``{preset}`` replaced), or the file that ``--pretrain`` writes in the preset's folder."""
    if args.pretrained:
        return Path(args.pretrained.format(preset=preset))
    return out / f"pretrained_{pretrain_library(held_out)}.pt"


def pretrain_cpu_seconds(path: Path, cpu_min: float | None) -> float:
    """The pretraining's CPU seconds: ``--pretrain-cpu-min`` when given, else the artifact's ``cpu_seconds``."""
    if cpu_min is not None:
        return 60.0 * cpu_min
    from rail.deepdisc.model.artifact import load_artifact

    prov = load_artifact(path).get("provenance") or {}
    if prov.get("kind") != "pretrained":
        raise SystemExit(f"{path}: not a `deepdisc pretrain` model (provenance kind {prov.get('kind')!r})")
    if "cpu_seconds" not in prov:
        raise SystemExit(f"{path} does not record its CPU time (written before cpu_seconds existed): give "
                         f"--pretrain-cpu-min")
    return float(prov["cpu_seconds"])


def run_pretrained(cli: Callable, out: Path, preset: str, args, train: Path, held_out: str,
                   reused: Callable) -> tuple[list[tuple[str, Path, float, str]], dict]:
    """Pretrain (``--pretrain``, unless done), fine-tune the ensemble from the pretrained network.

    Parameters
    ----------
    cli : callable
        ``cli(args, threads) -> (wall s, CPU s)`` (`bench_accuracy._cli`).
    reused : callable
        ``reused(key, path)``: the earlier run's timing ``key`` when ``--reuse`` applies and ``path`` exists,
        else None.

    Returns
    -------
    models : list of (label, model path, CPU seconds, file tag)
        The fine-tuned ensemble and the pretrained network, with their training CPU (pretraining included) and
        the tag of their photo-z files.
    timings : dict
    """
    pretrained = pretrained_path(args, out, preset, held_out)
    timings = {}
    if args.pretrain and not pretrained.exists():
        timings["pretrain_wall_s"], timings["pretrain_child_cpu_s"] = cli(
            pretrain_command(pretrained, preset, args, held_out), args.threads)
    if not pretrained.exists():
        raise SystemExit(f"{pretrained}: no pretrained model (give --pretrain to make it, or --pretrained PATH)")
    pre_cpu = pretrain_cpu_seconds(pretrained, args.pretrain_cpu_min)
    if args.pretrain_cpu_min is None:  # a run made here also counts its start-up (imports), as training's does
        pre_cpu = max(pre_cpu, timings.get("pretrain_child_cpu_s", 0.0))
    model = out / f"model_{args.labels}{args.tag}_finetuned.pt"
    wall, cpu = reused("finetune_wall_s", model), reused("finetune_cpu_s", model)
    if wall is None or cpu is None:
        wall, cpu = cli(["train", str(train), "-o", str(model), "--init", str(pretrained), "--members",
                         str(args.members), "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed",
                         str(args.seed), "--no-progress", "--device", "cpu", *shlex.split(args.train_args),
                         *shlex.split(args.finetune_args)], args.threads)
    timings.update({"pretrain_cpu_s": pre_cpu, "finetune_wall_s": wall, "finetune_cpu_s": cpu,
                    "pretrained_model": str(pretrained)})
    return [(FINETUNED, model, pre_cpu + cpu, "finetuned"), (PRETRAINED, pretrained, pre_cpu, "pretrained")], timings


def _subset(scores: dict, estimator: str, name: str) -> dict:
    return next(r for r in scores[estimator]["rows"] if r["binning"] == "subset" and r["bin"] == name)


def _better(a: dict, b: dict, key: str) -> bool:
    return a[key] < b[key]


def _not_worse(a: dict, b: dict, key: str) -> bool:
    """``a`` no worse than ``b`` beyond their combined bootstrap error."""
    return a[key] <= b[key] + math.hypot(a[f"{key}_err"], b[f"{key}_err"])


def acceptance_table(results: list[dict]) -> list[str]:
    """Issue 18 item 3 as a markdown table: pretrained + fine-tuned vs labels-only on `SUBSETS`."""
    lines = ["Pretraining that transfers (issue 18, item 3): the pretrained + fine-tuned ensemble must beat the "
             "labels-only ensemble (lower sigma_IQR and lower eta) for F444W >= 27 and for z > 3, and not lose on "
             "F444W < 25 (neither higher by more than the combined bootstrap error). Pretrained alone for "
             "reference.", "",
             "| preset | subset | n | sigma_IQR labels-only / fine-tuned / pretrained | eta labels-only / fine-tuned "
             "/ pretrained | needed | met |", "|---|---|---:|---|---|---|---|"]
    for res in results:
        by = {s["estimator"]: s for s in res["scores"]}
        if FINETUNED not in by:
            continue
        for name, _, _, _, beat in SUBSETS:
            lo, ft, pre = (_subset(by, e, name) for e in (LABELS_ONLY, FINETUNED, PRETRAINED))
            check = _better if beat else _not_worse
            met = check(ft, lo, "sigma_iqr") and check(ft, lo, "eta")
            cells = [" / ".join(f"{r[k]:.3f} ± {r[k + '_err']:.3f}" for r in (lo, ft, pre))
                     for k in ("sigma_iqr", "eta")]
            lines.append(f"| {res['preset']} | {name} | {lo['n']} | {cells[0]} | {cells[1]} | "
                         f"{'beat' if beat else 'not lose'} | {'yes' if met else 'no'} |")
    return lines + [""]
