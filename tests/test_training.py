"""Training: bit-for-bit resume, the `pdeinv train` command end to end, DDP weight sync."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pdeinv.priors import load
from pdeinv.priors.data import TrainingData
from pdeinv.priors.training import STATE, Trainer, TrainConfig, train

TINY_FNO = {"width": 8, "n_modes": 4, "n_layers": 2, "embedding_dim": 16}


def tiny_data(n: int = 16, size: int = 16) -> TrainingData:
    g = torch.Generator().manual_seed(1)
    fields = torch.nn.functional.avg_pool2d(torch.randn(n, 2, size + 3, size + 3, generator=g), 4, stride=1)
    fields = (fields - fields.mean()) / fields.std()
    return TrainingData(
        fields=fields,
        channels=("source", "solution"),
        mean=[0.0, 0.0],
        std=[1.0, 2.0],
        provenance={"grid": "vertex", "attrs": {"pde": "helmholtz", "seed": 1}},
    )


def tiny_config(out: Path, steps: int = 6) -> TrainConfig:
    return TrainConfig(
        out=str(out),
        backbone_options=dict(TINY_FNO),
        steps=steps,
        batch_size=4,
        warmup=2,
        ema_halflife=2.0,
        checkpoint_every=3,
        log_every=1,
        augment_symmetries=True,
        progress=False,
    )


def log_rows(out: Path) -> list[tuple[str, str, str]]:
    with open(out / "log.csv", newline="") as f:
        return [(r["step"], r["epoch"], r["loss"]) for r in csv.DictReader(f)]


def test_resume_is_bit_for_bit(tmp_path, monkeypatch):
    data = tiny_data()
    straight = train(tiny_config(tmp_path / "a"), data)
    reference = torch.load(tmp_path / "a" / STATE, weights_only=False)

    original = Trainer.train_step

    def killed_after_four(self):
        if self.step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "b"), data)
    assert torch.load(tmp_path / "b" / STATE, weights_only=False)["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = train(tiny_config(tmp_path / "b"), data, resume=True)
    state = torch.load(tmp_path / "b" / STATE, weights_only=False)

    assert state["step"] == reference["step"] == 6 and state["epoch"] == reference["epoch"] == 1
    for key in ("model", "ema"):
        for name, tensor in reference[key].items():
            assert torch.equal(tensor, state[key][name]), f"{key}.{name} differs after resume"
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name])
    for a, b in zip(reference["optimizer"]["state"].values(), state["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert log_rows(tmp_path / "a") == log_rows(tmp_path / "b")


def test_resume_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_config(tmp_path / "empty"), tiny_data(), resume=True)


def test_cli_trains_from_field_file_and_checkpoint_loads(tmp_path):
    from pdeinv.cli import main
    from pdeinv.datasets import FieldDataset, generate, make_config

    path = generate(make_config("helmholtz", 17, 12, 5), tmp_path / "h.h5", progress=False)
    out = tmp_path / "prior"
    options = [f"--backbone-option={k}={v}" for k, v in TINY_FNO.items()]
    argv = ["train", "--data", str(path), "--out", str(out), "--steps", "4", "--batch-size", "4",
            "--resolution", "17", "--checkpoint-every", "2", "--no-progress", *options]
    assert main(argv) == 0
    card = json.loads((out / "card.json").read_text())
    dataset = FieldDataset(path)
    assert card["training"]["steps"] == 4
    assert card["training"]["command"].startswith("pdeinv ")
    assert card["data"]["attrs"]["pde"] == "helmholtz" and card["data"]["attrs"]["seed"] == 5
    assert card["normalization"]["channels"] == list(dataset.channel_names)
    assert card["backbone"]["config"]["grid"] == "vertex"
    prior = load(out)
    assert torch.allclose(prior.mean, dataset.mean) and torch.allclose(prior.std, dataset.std)
    x = torch.randn(2, 2, 17, 17)
    assert prior.denoise(x, 0.5).shape == x.shape
