"""Training safety: no pickle is ever executed, divergence keeps the last good checkpoint, resume refuses another
run's settings or data, and a SIGKILLed `pdeinv train` resumes to the same bytes as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pdeinv.errors import NonFiniteError, OutputExistsError, PdeinvError
from pdeinv.priors import load
from pdeinv.priors.training import Trainer, train
from pdeinv.priors.training_state import read_training_state

sys.path.insert(0, str(Path(__file__).parent))
from test_training import TINY_FNO, tiny_config, tiny_data  # noqa: E402


class _Touch:
    """Unpickling this object creates ``marker``: a stand-in for arbitrary code in a malicious file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"step": 0, "model": _Touch(marker)})


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != ".train.lock":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "finished"
    train(tiny_config(out), tiny_data())
    return out


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".train.lock"))
    return target


# --- no pickle is ever executed -----------------------------------------------------------------------------------


def test_the_payload_is_live(tmp_path):
    """The crafted file really runs code when unpickled (so the tests below test something)."""
    marker = tmp_path / "pwned"
    pickle.loads(malicious_pickle(marker))
    assert marker.exists()


def test_a_legacy_pickle_state_is_refused_unread(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    for path in run.glob("training_state*"):
        path.unlink()
    marker = tmp_path / "pwned"
    (run / "training_state.pt").write_bytes(malicious_pickle(marker))
    with pytest.raises(PdeinvError, match=r"holds training_state.pt, the pickle-based training state .* not read"):
        train(tiny_config(run), tiny_data(), resume=True)
    assert not marker.exists()


def test_a_pickle_beside_the_state_is_never_read(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "pwned"
    (run / "training_state.pt").write_bytes(malicious_pickle(marker))
    train(tiny_config(run), tiny_data(), resume=True)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["tensors", "weights"])
def test_a_pickle_in_place_of_tensors_fails_safely(finished, tmp_path, target):
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "pwned"
    if target == "tensors":
        victim = next(run.glob("training_state.step*.safetensors"))
        error, match, action = PdeinvError, "does not match the SHA-256", lambda: train(
            tiny_config(run), tiny_data(), resume=True
        )
    else:
        victim = run / "model.safetensors"
        error, match, action = ValueError, "not a readable safetensors file", lambda: load(run)
    victim.write_bytes(malicious_pickle(marker))
    with pytest.raises(error, match=match):
        action()
    assert not marker.exists()


def test_no_library_code_unpickles():
    root = Path(__file__).parents[1] / "pdeinv"
    offending = [
        f"{p.relative_to(root)}:{n}"
        for p in root.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "weights_only=False" in line or "pickle.load" in line or "allow_pickle=True" in line
    ]
    assert offending == []


# --- divergence --------------------------------------------------------------------------------------------------


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    reference = tmp_path / "three-steps"
    train(tiny_config(reference, steps=3), tiny_data())

    original = Trainer.loss

    def nan_at_step_five(self, x0):
        loss = original(self, x0)
        return loss * float("nan") if self.step == 4 else loss

    monkeypatch.setattr(Trainer, "loss", nan_at_step_five)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"diverged at step 5: the loss is nan .*last good checkpoint \(step 3\)"):
        train(tiny_config(run), tiny_data())
    assert read_training_state(run)["step"] == 3
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert all(torch.isfinite(p).all() for p in load(run).parameters())

    monkeypatch.setattr(Trainer, "loss", original)
    resumed = train(tiny_config(run), tiny_data(), resume=True)
    straight = train(tiny_config(tmp_path / "straight"), tiny_data())
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_a_huge_learning_rate_without_clipping_never_writes_non_finite_weights(tmp_path):
    config = dataclasses.replace(tiny_config(tmp_path / "run", steps=30), lr=1e6, grad_clip=0.0, warmup=0,
                                 checkpoint_every=1)
    with pytest.raises(NonFiniteError, match=r"training diverged at step \d+.*smaller --lr.*--grad-clip 1") as info:
        train(config, tiny_data())
    step = int(re.search(r"diverged at step (\d+)", str(info.value)).group(1))
    state = read_training_state(tmp_path / "run")
    assert step >= 2 and state["step"] == step - 1, "checkpointing every step keeps the step before divergence"
    for section in ("model", "ema"):
        assert all(torch.isfinite(t).all() for t in state[section].values())
    load(tmp_path / "run")


# --- resume checks -----------------------------------------------------------------------------------------------

MISMATCHES = {
    "lr": ({"lr": 2e-3}, r"lr: 0.001 \(run\) vs 0.002 \(now\)"),
    "steps": ({"steps": 8}, r"steps: 6 \(run\) vs 8 \(now\)"),
    "sigma-data": ({"edm": {"sigma_data": 0.5}}, r"edm.sigma_data: 1.0 \(run\) vs 0.5 \(now\)"),
    "grad-clip": ({"grad_clip": 0.5}, r"grad_clip: 1.0 \(run\) vs 0.5 \(now\)"),
    "width": ({"backbone_options": {**TINY_FNO, "width": 12}},
              r"backbone_options.width: 8 \(run\) vs 12 \(now\); card backbone.config.width: 8 \(run\) vs 12 \(now\)"),
    "augment": ({"augment_symmetries": False}, r"augment_symmetries: True \(run\) vs False \(now\)"),
}


@pytest.mark.parametrize("change, match", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_resume_refuses_changed_settings(finished, tmp_path, change, match):
    run = copy_run(finished, tmp_path / "run")
    before = digest(run)
    config = dataclasses.replace(tiny_config(run), **change)
    with pytest.raises(PdeinvError, match=rf"was started with other settings: .*{match}.*Resume with the run's"):
        train(config, tiny_data(), resume=True)
    assert digest(run) == before


def test_resume_refuses_other_data(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = digest(run)
    data = tiny_data()
    other = dataclasses.replace(data, fields=data.fields.flip(-1).contiguous())
    with pytest.raises(PdeinvError, match=r"on data with SHA-256 [0-9a-f]{64}, but .* has SHA-256 [0-9a-f]{64}"):
        train(tiny_config(run), other, resume=True)
    assert digest(run) == before


def test_a_run_directory_needs_resume_or_overwrite(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = digest(run)
    with pytest.raises(OutputExistsError, match=r"holds a training run .*pass --resume to continue it, --overwrite"):
        train(tiny_config(run), tiny_data())
    assert digest(run) == before
    train(tiny_config(run, steps=2), tiny_data(), overwrite=True)
    card = json.loads((run / "card.json").read_text())
    assert card["training"]["steps"] == 2 and read_training_state(run)["step"] == 2
    assert len(list(run.glob("training_state.step*.safetensors"))) == 1


# --- SIGKILL -----------------------------------------------------------------------------------------------------


def test_sigkilled_train_resumes_to_the_same_bytes(tmp_path, capsys):
    """A `pdeinv train` process killed by SIGKILL, resumed, equals an uninterrupted run bit for bit.

    The killed run is a subprocess with one thread; the resume and the reference run in this
    process, also on one thread (the same arithmetic).
    """
    from pdeinv.cli import main
    from pdeinv.datasets import generate, make_config

    data = generate(make_config("helmholtz", 9, 8, 5), tmp_path / "h.h5", progress=False)
    steps = 60

    def argv(out: Path, *extra: str) -> list[str]:
        options = [f"--backbone-option={k}={v}" for k, v in TINY_FNO.items()]
        return ["train", "prior", "--data", str(data), "--out", str(out), "--resolution", "9", "--steps", str(steps),
                "--batch-size", "4", "--checkpoint-every", "5", "--log-every", "5", "--no-progress", *options, *extra]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "pdeinv.cli", *argv(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        state = killed / "training_state.json"
        if state.is_file() and json.loads(state.read_text())["step"] >= 10:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert 10 <= read_training_state(killed)["step"] < steps, "the run must be killed part-way"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv(killed, "--resume")) == 0
        assert f"trained {killed}: step {steps}, final loss" in capsys.readouterr().out
        straight = tmp_path / "straight"
        assert main(argv(straight)) == 0
    finally:
        torch.set_num_threads(threads)

    assert (killed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    a, b = read_training_state(killed), read_training_state(straight)
    for section in ("model", "ema"):
        assert all(torch.equal(t, b[section][k]) for k, t in a[section].items())
    losses = [[line.split(",")[:3] for line in (d / "log.csv").read_text().splitlines()] for d in (killed, straight)]
    assert losses[0] == losses[1]
