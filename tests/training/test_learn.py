"""End-to-end training (slow): learnability on colour-coded blobs, DDP with 2 gloo processes, a real kill."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from rail.deepdisc.model.artifact import load_artifact
from rail.deepdisc.model.network import model_from_artifact
from rail.deepdisc.model.redshift_head import mixture_log_prob
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.training.data import tile_targets
from rail.deepdisc.training.run import train_from_options
from tests.helpers.nethelpers import FAST, FAST_CLI, make_colour_tileset
from tests.helpers.subprocesses import subprocess_env

IOU_MATCH = 0.5
SCORE_MIN = 0.3


@pytest.mark.slow
def test_learns_redshift_from_colours_and_detects_bright_objects():
    train = make_colour_tileset(n_tiles=64, seed=1)
    test = make_colour_tileset(n_tiles=16, seed=99, labelled_fraction=1.0)
    art = train_from_options(train, {**FAST, "epochs": 14, "patience": 14, "val_fraction": 0.2, "seed": 3})
    model = model_from_artifact(art, 0)
    targets = tile_targets(test)
    with torch.inference_mode():
        enc = model.encode(torch.from_numpy(test.images))
        params = model.redshift(
            enc,
            [torch.from_numpy(t["boxes"]) for t in targets],
            [torch.from_numpy(t["ebv"]) for t in targets],
        )
        detections = model.detect(enc)
    z = np.concatenate([t["redshift"] for t in targets])
    nll = -float(mixture_log_prob(params, torch.from_numpy(z)).mean())
    labels = train.objects["redshift"][np.isfinite(train.objects["redshift"])]
    mu, sd = labels.mean(), labels.std()  # the label distribution alone, as a Gaussian
    nll_labels = float(np.mean(0.5 * ((z - mu) / sd) ** 2 + np.log(sd) + 0.5 * np.log(2 * np.pi)))
    assert nll < nll_labels - 0.4, (nll, nll_labels)
    found = total = 0
    for det, t in zip(detections, targets):
        kept = det["boxes"][det["scores"] >= SCORE_MIN]
        iou = box_iou(torch.from_numpy(t["boxes"]), kept)
        found += int((iou.max(dim=1).values >= IOU_MATCH).sum()) if len(kept) else 0
        total += len(t["boxes"])
    # untrained: 0 of 48; after these 14 epochs 36-46 of 48 depending on the seed and head_dropout (measured for
    # seeds 3 and 4, head_dropout 0 and 0.3): the random draws of one small run, not a property of the options
    assert found / total >= 0.7, (found, total)


@pytest.mark.slow
def test_ddp_two_gloo_processes_train_a_loadable_model(tmp_path):
    tiles = write_tileset(make_colour_tileset(n_tiles=8, seed=4), tmp_path / "tiles.h5")
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 400),
        "-m",
        "rail.deepdisc.cli",
        "train",
        str(tiles),
        "-o",
        str(out),
        "--members",
        "1",
        "--epochs",
        "2",
        *FAST_CLI,
        "--head-hidden",
        "32",
    ]
    run = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    art = load_artifact(out)
    assert art["provenance"]["world_size"] == 2
    assert len(art["members"][0]["history"]) == 2
    model = model_from_artifact(art, 0)
    with torch.inference_mode():
        det = model.detect(model.encode(torch.zeros(1, 4, 32, 32)))
    assert det[0]["boxes"].shape[1] == 4


@pytest.mark.slow
def test_killed_process_resumes_to_the_uninterrupted_result(tmp_path):
    tiles = write_tileset(make_colour_tileset(n_tiles=8, seed=5), tmp_path / "tiles.h5")
    args = [
        "--members",
        "1",
        "--epochs",
        "4",
        "--patience",
        "4",
        *FAST_CLI,
        "--head-hidden",
        "32",
        "--seed",
        "9",
    ]
    cli = [sys.executable, "-m", "rail.deepdisc.cli", "train", str(tiles)]
    ref = subprocess.run([*cli, "-o", str(tmp_path / "ref.pt"), *args], env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    ckpt = tmp_path / "killed_checkpoints" / "member_000.pt"
    proc = subprocess.Popen(
        [*cli, "-o", str(tmp_path / "killed.pt"), *args],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "killed.pt").exists()
    res = subprocess.run(
        [*cli, "-o", str(tmp_path / "killed.pt"), *args, "--resume"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = load_artifact(tmp_path / "ref.pt"), load_artifact(tmp_path / "killed.pt")
    sa, sb = a["members"][0]["state_dict"], b["members"][0]["state_dict"]
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    assert a["members"][0]["val_log_likelihood"] == b["members"][0]["val_log_likelihood"]
