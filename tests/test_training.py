"""Training: bit-for-bit resume, the `pdeinv train` command end to end, DDP weight sync."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pdeinv.errors import PdeinvError
from pdeinv.priors import load
from pdeinv.priors.checkpoint import save_prior
from pdeinv.priors.data import TrainingData
from pdeinv.priors.training import Trainer, TrainConfig, build_model, learning_rate, train
from pdeinv.priors.training_state import read_training_state

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
    reference = read_training_state(tmp_path / "a")

    original = Trainer.train_step

    def killed_after_four(self):
        if self.step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "b"), data)
    assert read_training_state(tmp_path / "b")["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = train(tiny_config(tmp_path / "b"), data, resume=True)
    state = read_training_state(tmp_path / "b")

    assert state["step"] == reference["step"] == 6 and state["epoch"] == reference["epoch"] == 1
    for key in ("model", "ema"):
        for name, tensor in reference[key].items():
            assert torch.equal(tensor, state[key][name]), f"{key}.{name} differs after resume"
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name])
    for a, b in zip(reference["optimizer"]["state"].values(), state["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert log_rows(tmp_path / "a") == log_rows(tmp_path / "b")


def test_cosine_schedule_warms_up_then_decays_to_its_floor_and_is_logged(tmp_path):
    config = tiny_config(tmp_path / "cosine", steps=10)
    config.lr_schedule, config.lr_floor = "cosine", 0.1
    rates = [learning_rate(config, t) for t in range(config.steps)]
    assert rates[:2] == pytest.approx([0.5e-3, 1e-3])
    assert rates[-1] == pytest.approx(1e-4) and all(a >= b for a, b in zip(rates[1:], rates[2:]))
    # halfway through the decay the cosine is at the midpoint between lr and its floor
    halfway = config.warmup + (config.steps - config.warmup) // 2 - 1
    assert rates[halfway] == pytest.approx(0.55e-3)
    train(config, tiny_data())
    with open(tmp_path / "cosine" / "log.csv", newline="") as f:
        logged = [float(row["lr"]) for row in csv.DictReader(f)]
    assert logged == pytest.approx(rates, rel=1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(out="x", lr_schedule="linear")
    with pytest.raises(ValueError, match="lr_floor"):
        TrainConfig(out="x", lr_floor=1.5)


def test_resume_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_config(tmp_path / "empty"), tiny_data(), resume=True)


def test_cli_trains_from_field_file_and_checkpoint_loads(tmp_path):
    from pdeinv.cli import main
    from pdeinv.datasets import FieldDataset, generate, make_config

    path = generate(make_config("helmholtz", 17, 12, 5), tmp_path / "h.h5", progress=False)
    out = tmp_path / "prior"
    options = [f"--backbone-option={k}={v}" for k, v in TINY_FNO.items()]
    argv = ["train", "prior", "--data", str(path), "--out", str(out), "--steps", "4", "--batch-size", "4",
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
    evaluate = ["evaluate", str(out), "--samples", "4", "--steps", "3"]
    assert main(evaluate) == 0 and main(evaluate + ["--consistent"]) == 0
    quality = json.loads((out / "card.json").read_text())["quality"]
    # The untrained network's joint samples violate the PDE; the consistent form solves it exactly.
    assert quality["17"]["physics_consistency_median"] > 1e-2
    assert quality["17-consistent"]["physics_consistency_median"] < 1e-5



def _train_tiny(tmp_path, pde: str, size: int, *extra: str):
    """Train a tiny fno prior for 2 steps on a generated ``pde`` file through the CLI; its directory."""
    from pdeinv.cli import main
    from pdeinv.datasets import generate, make_config

    path = generate(make_config(pde, size, 12, 5), tmp_path / "data.h5", progress=False)
    out = tmp_path / "prior"
    options = [f"--backbone-option={k}={v}" for k, v in TINY_FNO.items()]
    main(["--debug", "train", "prior", "--data", str(path), "--out", str(out), "--steps", "2", "--batch-size", "4",
          "--resolution", str(size), "--no-progress", *options, *extra])
    return out


def test_operator_consistent_training_loads_a_prior_that_solves_the_pde_at_any_grid_size(tmp_path):
    from pdeinv.operators.helmholtz import Helmholtz
    from pdeinv.priors.consistent import OperatorConsistentPrior
    from pdeinv.priors.quality import relative_residuals

    out = _train_tiny(tmp_path, "helmholtz", 17, "--operator-consistent", "--gaussian-base", "dct")
    card = json.loads((out / "card.json").read_text())
    assert card["operator_consistent"] == {"input_channel": "source", "output_channel": "solution"}
    prior = load(out)
    assert isinstance(prior, OperatorConsistentPrior) and prior.resolution_free
    for size in (17, 33):
        with torch.no_grad():
            estimate = prior.to_physical(prior.denoise(torch.randn(2, 2, size, size), 0.7))
        assert float(relative_residuals(Helmholtz(size, k=1.0), estimate).max()) < 1e-5


def test_navier_stokes_prior_is_evaluated_projected_but_not_trained_so(tmp_path, capsys):
    from pdeinv.cli import main

    out = _train_tiny(tmp_path, "navier-stokes", 16)
    evaluate = ["evaluate", str(out), "--samples", "4", "--steps", "3"]
    assert main(evaluate) == 0 and main(evaluate + ["--consistent", "--solver-dt", "0.01"]) == 0
    quality = json.loads((out / "card.json").read_text())["quality"]
    projected = quality["16-consistent-dt0.01"]
    # The untrained network's w(T) is unrelated to its w(0); projected, w(T) is the dt = 1e-2 solve
    # of w(0), measured against the data's dt = 1e-4 solve: only the coarse step's error is left.
    assert quality["16"]["physics_consistency_median"] > 0.5
    assert projected["solver_dt"] == 0.01 and projected["physics_consistency_median"] < 1e-2
    capsys.readouterr()
    assert main(evaluate + ["--solver-dt", "0.01"]) == 2
    assert "add --consistent" in capsys.readouterr().err
    projected_prior = load(out, consistent=True, solver_dt=0.01)
    assert not projected_prior.linear and projected_prior.operator_at(16).dt == 0.01
    with pytest.raises(ValueError, match="consistent=True"):
        load(out, solver_dt=0.01)
    with pytest.raises(ValueError, match="nonlinear"):
        _train_tiny(tmp_path / "again", "navier-stokes", 16, "--operator-consistent")

DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_training import tiny_config, tiny_data
from pdeinv.priors import distributed
from pdeinv.priors.training import Trainer

trainer = Trainer(tiny_config({out!r}), tiny_data())
for _ in range(3):
    trainer.train_step()
trainer.save_checkpoint()
torch.save({{"model": trainer.model.state_dict(), "order": trainer._order}}, {out!r} + f"/rank{{trainer.env.rank}}.pt")
distributed.teardown(trainer.env)
"""


def test_ddp_two_processes_keep_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = Trainer(tiny_config(tmp_path / "init"), tiny_data()).model.state_dict()
    for name, tensor in rank0["model"].items():
        assert torch.equal(tensor, rank1["model"][name]), f"{name} differs between ranks"
    assert any(not torch.equal(t, initial[k]) for k, t in rank0["model"].items()), "training must change weights"
    assert not set(rank0["order"].flatten().tolist()) & set(rank1["order"].flatten().tolist()), "ranks share samples"
    state = read_training_state(out)
    assert state["world_size"] == 2 and len(state["generators"]) == 2
    assert not torch.equal(state["generators"][0], state["generators"][1])


def saved_prior(tmp_path: Path) -> Path:
    model, card = build_model(tiny_config(tmp_path / "unused"), tiny_data())
    return save_prior(model, tmp_path / "ckpt", card)


def test_checkpoint_round_trip_is_exact(tmp_path):
    model, card = build_model(tiny_config(tmp_path / "unused"), tiny_data())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_prior(model, tmp_path / "ckpt", card)
    loaded = load(tmp_path / "ckpt")
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval().denoise(x, 0.3), loaded.denoise(x, 0.3))
    assert loaded.channels == ("source", "solution") and loaded.resolution == 16
    assert loaded.std.tolist() == [1.0, 2.0]


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a directory holding model.safetensors"):
        load(tmp_path / "nowhere")
    directory = saved_prior(tmp_path)
    card_text = (directory / "card.json").read_text()

    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load(directory)
    directory = saved_prior(tmp_path)

    (directory / "card.json").write_text(card_text[:-20])
    with pytest.raises(ValueError, match="not valid JSON"):
        load(directory)

    card = json.loads(card_text)
    card["backbone"]["config"]["width"] = 12
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="shape mismatches"):
        load(directory)

    card = json.loads(card_text)
    card["backbone"]["name"] = "unet"
    card["backbone"]["config"] = {"channels": 2}
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="missing tensors"):
        load(directory)

    card["backbone"]["name"] = "transformer"
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="expected one of"):
        load(directory)

    (directory / "card.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a pdeinv prior card"):
        load(directory)

    (directory / "card.json").unlink()
    with pytest.raises(FileNotFoundError, match="card.json is missing"):
        load(directory)


def test_shipped_names_resolve_and_unknown_names_list_them(tmp_path, monkeypatch):
    from pdeinv.priors import checkpoint

    shipped = tmp_path / "shipped"
    model, card = build_model(tiny_config(tmp_path / "unused"), tiny_data())
    save_prior(model, shipped / "tiny-joint", card)
    monkeypatch.setattr(checkpoint, "SHIPPED", shipped)
    assert checkpoint.shipped_priors() == ["tiny-joint"]
    assert load("tiny-joint").channels == ("source", "solution")
    with pytest.raises(FileNotFoundError, match=r"\['tiny-joint'\]"):
        load("helmholtz-joint-missing")


def test_two_runs_cannot_write_one_directory(tmp_path):
    from pdeinv.priors.training import _lock_output

    out = tmp_path / "busy"
    out.mkdir()
    held = _lock_output(out)
    try:
        with pytest.raises(PdeinvError, match="another `pdeinv train` is writing"):
            train(tiny_config(out), tiny_data())
    finally:
        held.close()
    assert train(tiny_config(out, steps=1), tiny_data()) is not None


def test_posterior_residual_is_trained_recorded_and_reloaded(tmp_path):
    out = _train_tiny(tmp_path, "navier-stokes", 16, "--gaussian-base", "fft", "--residual", "posterior")
    card = json.loads((out / "card.json").read_text())
    assert card["preconditioning"]["residual"] == "posterior" and load(out).residual == "posterior"
    with pytest.raises(ValueError, match="set gaussian_base"):
        TrainConfig(out=str(tmp_path / "x"), residual="posterior")


def test_init_from_starts_at_the_priors_weights_and_records_them(tmp_path):
    first = tiny_config(tmp_path / "first", steps=3)
    trained = train(first, tiny_data())
    second = tiny_config(tmp_path / "second", steps=3)
    second.init_from = str(tmp_path / "first")
    trainer = Trainer(second, tiny_data())
    for name, tensor in trained.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
        assert torch.equal(trainer.ema.state_dict()[name], tensor), name
    train(second, tiny_data())
    card = json.loads((tmp_path / "second" / "card.json").read_text())
    expected = hashlib.sha256((tmp_path / "first" / "model.safetensors").read_bytes()).hexdigest()
    assert card["init_from"]["sha256"] == expected and card["init_from"]["steps"] == 3
    other = tiny_config(tmp_path / "wider", steps=3)
    other.backbone_options = {**TINY_FNO, "width": 12}
    other.init_from = str(tmp_path / "first")
    with pytest.raises(ValueError, match="init-from .*backbone"):
        Trainer(other, tiny_data())
