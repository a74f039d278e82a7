"""Bad inputs to the library: `pdeinv train`, `load()`, the operators, the shard store.

Every case asserts the error's type and message, and that no input changed (files hashed
before and after, tensors compared byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pdeinv.datasets.grf import ns_vorticity_grf
from pdeinv.errors import NonFiniteError, OutputExistsError, PdeinvError, UsageError
from pdeinv.operators import Downsampling, Helmholtz, NavierStokes2D, PointObservation, check_finite
from pdeinv.operators.helmholtz import ResonanceWarning

sys.path.insert(0, str(Path(__file__).parent))
from test_training import TINY_FNO  # noqa: E402

FNO_OPTIONS = [f"--backbone-option={k}={v}" for k, v in TINY_FNO.items()]
TINY_OPTIONS = ["--resolution", "9", *FNO_OPTIONS]


def digest(path: Path) -> str:
    """SHA-256 of a file, or of every file under a directory (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def tensor_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def field_file(tmp_path_factory) -> Path:
    from pdeinv.datasets import generate, make_config

    return generate(make_config("helmholtz", 9, 8, 5), tmp_path_factory.mktemp("data") / "h.h5", progress=False)


@pytest.fixture(scope="module")
def nan_file(field_file, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nan") / "nan.h5"
    shutil.copy(field_file, path)
    with h5py.File(path, "r+") as f:
        f["t0_fields/solution"][3, 0, 4, 4] = np.nan
    return path


@pytest.fixture(scope="module")
def finished_run(field_file, tmp_path_factory) -> Path:
    from pdeinv.cli import main

    out = tmp_path_factory.mktemp("runs") / "done"
    argv = ["train", "prior", "--data", str(field_file), "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--checkpoint-every", "2", "--no-progress", *TINY_OPTIONS]
    assert main(argv) == 0
    return out


# --- pdeinv train ------------------------------------------------------------------------------------------------

TRAIN_CASES = {
    "width-not-a-number": (["--backbone-option", "width=abc"], UsageError, r"width=\"abc\".*expected an integer >= 1"),
    "width-zero": (["--backbone-option", "width=0"], UsageError, r"width=0 .*integer >= 1"),
    "width-float-truncated": (["--backbone-option", "width=8.5"], UsageError, r"width=8.5 .*integer"),
    "unknown-option": (["--backbone-option", "depth=3"], UsageError, r"unknown --backbone-option depth.*valid options"),
    "unet-widths-not-a-list": (["--backbone", "unet", "--backbone-option", "block_out_channels=8"], UsageError,
                               r"block_out_channels=8 .*list of integers"),
    "autoencoder-zero-latents": (["autoencoder", "--backbone-option", "latent_channels=0"], UsageError,
                                 r"latent_channels=0 for the autoencoder"),
    "surrogate-negative-index": (["surrogate", "--backbone-option", "in_channel=-1"], UsageError,
                                 r"in_channel=-1 .*integer >= 0"),
    "sigma-data-zero": (["--sigma-data", "0"], UsageError, r"sigma_data \(--sigma-data\) and p_std must be positive"),
    "sigma-data-nan": (["--sigma-data", "nan"], UsageError, r"edm.sigma_data must be a finite real number"),
    "lr-zero": (["--lr", "0"], UsageError, r"lr and ema_halflife must be positive"),
    "lr-inf": (["--lr", "inf"], UsageError, r"lr must be a finite real number"),
    "steps-zero": (["--steps", "0"], UsageError, r"steps must be an integer >= 1"),
    "negative-grad-clip": (["--grad-clip", "-1"], UsageError, r"grad_clip non-negative"),
    "unknown-device": (["--device", "gpu0"], UsageError, r"unknown device 'gpu0'"),
    "unsupported-device": (["--device", "meta"], UsageError, r"'cpu', 'cuda' or 'cuda:N', not 'meta'"),
    "batch-larger-than-data": (["--batch-size", "64"], ValueError, r"8 samples cannot fill a batch of 64"),
    "resume-and-overwrite": (["--resume", "--overwrite"], UsageError, r"pass only one"),
    "resume-nothing": (["--resume"], FileNotFoundError, r"nothing to resume"),
    "diverging-lr": (["--lr", "1e6", "--grad-clip", "0", "--warmup", "0", "--steps", "20"], NonFiniteError,
                     r"training diverged at step \d+: the loss is .* smaller --lr"),
}


@pytest.mark.parametrize("extra, error, match", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_train_rejects_bad_settings(field_file, tmp_path, extra, error, match):
    from pdeinv.cli import main

    before = digest(field_file)
    network, *extra = extra if extra[0] in ("autoencoder", "surrogate") else ["prior", *extra]
    options = ["--resolution", "9"] + (FNO_OPTIONS if network == "prior" and "--backbone" not in extra else [])
    argv = ["--debug", "train", network, "--data", str(field_file), "--out", str(tmp_path / "run"), "--steps", "2",
            "--batch-size", "4", "--no-progress", *options, *extra]
    with pytest.raises(error, match=match):
        main(argv)
    assert digest(field_file) == before
    assert not (tmp_path / "run" / "model.safetensors").exists(), "a refused or diverged run wrote weights"


def test_train_rejects_an_unavailable_gpu(field_file, tmp_path):
    from pdeinv.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UsageError, match="CUDA is not available on this machine; use --device cpu"):
        main(["--debug", "train", "prior", "--data", str(field_file), "--out", str(tmp_path / "run"),
              "--resolution", "9", "--device", "cuda"])


def test_train_names_the_file_field_and_sample_of_a_nan(nan_file, tmp_path):
    from pdeinv.cli import main

    before = digest(nan_file)
    with pytest.raises(NonFiniteError, match=rf"{nan_file}: field 'solution' of sample 3 holds NaN .*indices \[3\]"):
        main(["--debug", "train", "prior", "--data", str(nan_file), "--out", str(tmp_path / "run"), "--steps", "2",
              "--no-progress", *TINY_OPTIONS])
    assert digest(nan_file) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["existing-run", "out-is-a-file", "missing-data"])
def test_train_refuses_outputs_and_inputs_it_cannot_use(field_file, finished_run, tmp_path, where):
    from pdeinv.cli import main

    out = {"existing-run": finished_run, "out-is-a-file": field_file, "missing-data": tmp_path / "x"}[where]
    data = tmp_path / "nowhere.h5" if where == "missing-data" else field_file
    error, match = {
        "existing-run": (OutputExistsError, r"holds a training run \(.*card.json.*\); pass --resume .* --overwrite"),
        "out-is-a-file": (UsageError, r"is a file; training writes a directory"),
        "missing-data": (FileNotFoundError, r"nowhere.h5 does not exist"),
    }[where]
    before = {p: digest(p) for p in (field_file, finished_run)}
    with pytest.raises(error, match=match):
        main(["--debug", "train", "prior", "--data", str(data), "--out", str(out), "--steps", "2", "--no-progress",
              *TINY_OPTIONS])
    assert {p: digest(p) for p in before} == before


# --- load() ------------------------------------------------------------------------------------------------------


def _poison(directory: Path, value: float) -> str:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(directory / "model.safetensors"))
    name = sorted(k for k, v in weights.items() if v.is_floating_point())[0]
    weights[name].view(-1)[0] = value
    save_file(weights, str(directory / "model.safetensors"))
    return name


LOAD_CASES = {
    "nan-weight": (lambda d: _poison(d, float("nan")), NonFiniteError, r"tensor '{name}' holds 1 NaN or infinite"),
    "inf-weight": (lambda d: _poison(d, float("inf")), NonFiniteError, r"tensor '{name}' holds 1 NaN or infinite"),
    "pickle-as-weights": (lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04K\x01."), ValueError,
                          r"not a readable safetensors file"),
    "card-not-json": (lambda d: (d / "card.json").write_text("{"), ValueError, r"not valid JSON"),
    "card-not-a-prior": (lambda d: (d / "card.json").write_text(json.dumps({"format": "pdeinv-autoencoder"})),
                         ValueError, r"describes an autoencoder, not a prior"),
    "weights-missing": (lambda d: (d / "model.safetensors").unlink(), FileNotFoundError,
                        r"model.safetensors is missing"),
}


@pytest.mark.parametrize("spoil, error, match", LOAD_CASES.values(), ids=LOAD_CASES.keys())
def test_load_refuses_bad_checkpoints(finished_run, tmp_path, spoil, error, match):
    from pdeinv.priors import load

    directory = tmp_path / "ckpt"
    shutil.copytree(finished_run, directory)
    name = spoil(directory)
    before = digest(directory)
    with pytest.raises(error, match=match.format(name=name)):
        load(directory)
    assert digest(directory) == before


# --- operators ---------------------------------------------------------------------------------------------------


def _nan_at(shape, index, dtype=torch.float64):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[index] = float("nan")
    return x


OPERATOR_CASES = {
    "helmholtz-nan": (lambda: Helmholtz(9).A, _nan_at((2, 1, 9, 9), (1, 0, 3, 4)), NonFiniteError,
                      r"Helmholtz.A: a holds 1 NaN or infinite value\(s\) of 162, first at index \(1, 0, 3, 4\)"),
    "helmholtz-adjoint-inf": (lambda: Helmholtz(9).A_adjoint, torch.full((1, 1, 9, 9), math.inf), NonFiniteError,
                              r"Helmholtz.A_adjoint: y holds 81 NaN"),
    "navier-stokes-nan": (lambda: NavierStokes2D(8, time=0.02, dt=0.01).A, _nan_at((1, 1, 8, 8), (0, 0, 0, 1)),
                          NonFiniteError, r"NavierStokes2D: w0 holds 1 NaN"),
    "observation-nan": (lambda: PointObservation(9, coords=torch.tensor([[0.5, 0.5]])).A,
                        _nan_at((1, 1, 9, 9), (0, 0, 2, 2)), NonFiniteError, r"x holds 1 NaN"),
    "downsampling-inf": (lambda: Downsampling(16, 2).A, torch.full((1, 1, 16, 16), -math.inf), NonFiniteError,
                         r"x holds 256 NaN"),
    "float16": (lambda: Helmholtz(9).A, torch.zeros(1, 1, 9, 9, dtype=torch.float16), ValueError,
                r"got dtype torch.float16 \(half precision\); convert it with .float\(\)"),
    "bfloat16": (lambda: NavierStokes2D(8, time=0.02, dt=0.01).A, torch.zeros(1, 1, 8, 8, dtype=torch.bfloat16),
                 ValueError, r"NavierStokes2D: w0 .* torch.bfloat16 \(half precision\)"),
    "complex": (lambda: Helmholtz(9).A, torch.zeros(1, 1, 9, 9, dtype=torch.complex64), ValueError,
                r"torch.complex64 \(complex\); pass the real and imaginary parts as separate fields"),
    "integer": (lambda: Helmholtz(9).A, torch.zeros(1, 1, 9, 9, dtype=torch.int64), ValueError,
                r"torch.int64 \(not floating point\)"),
    "three-dims": (lambda: Helmholtz(9).A, torch.zeros(1, 9, 9), ValueError, r"\(4 dimensions\), got \(1, 9, 9\)"),
    "wrong-resolution": (lambda: Helmholtz(9).A, torch.zeros(1, 1, 17, 17), ValueError,
                         r"resolution 17 x 17, but this operator was built for 9 x 9"),
    "ns-two-channels": (lambda: NavierStokes2D(8, time=0.02, dt=0.01).A, torch.zeros(1, 2, 8, 8), ValueError,
                        r"must have 1 channel\(s\), got 2"),
    "ns-unstable-dt": (lambda: NavierStokes2D(16, time=1.0, dt=0.5).A,
                       100 * ns_vorticity_grf(16).sample(2, generator=torch.Generator().manual_seed(0)), NonFiniteError,
                       r"NavierStokes2D.A blew up with dt=0.5: .*use dt <= [0-9.e-]+ \(the stability bound"),
}


@pytest.mark.parametrize("operator, x, error, match", OPERATOR_CASES.values(), ids=OPERATOR_CASES.keys())
def test_operators_reject_bad_inputs_with_checks_on(operator, x, error, match):
    before = tensor_digest(x)
    with check_finite(True), pytest.raises(error, match=match):
        operator()(x)
    assert tensor_digest(x) == before


CONSTRUCTOR_CASES = {
    "helmholtz-float-resolution": (lambda: Helmholtz(8.5), r"resolution must be an int S >= 3"),
    "helmholtz-complex-k": (lambda: Helmholtz(9, k=1 + 1j), r"k must be a finite real wavenumber"),
    "helmholtz-nan-k": (lambda: Helmholtz(9, k=math.nan), r"k must be a finite real wavenumber"),
    "helmholtz-resonant-k": (lambda: Helmholtz(9, k=math.sqrt(8 * 64 * math.sin(math.pi / 16) ** 2)),
                             r"is resonant: .*mode \(j, l\) = \(1, 1\)"),
    "ns-float-resolution": (lambda: NavierStokes2D(16.0), r"resolution must be an integer >= 4, got 16.0"),
    "ns-zero-dt": (lambda: NavierStokes2D(16, dt=0.0), r"dt must be a finite number > 0"),
    "ns-complex-forcing": (lambda: NavierStokes2D(8, forcing=torch.zeros(8, 8, dtype=torch.complex64)),
                           r"real float tensor of shape \(8, 8\)"),
}


@pytest.mark.parametrize("build, match", CONSTRUCTOR_CASES.values(), ids=CONSTRUCTOR_CASES.keys())
def test_operator_constructors_reject_bad_parameters(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_finite_checks_are_off_by_default_and_scoped_by_the_context_manager():
    from pdeinv.operators import finite_checks_enabled

    x = _nan_at((1, 1, 9, 9), (0, 0, 4, 4))
    assert not finite_checks_enabled()
    assert torch.isnan(Helmholtz(9).A(x)).any(), "without checks the NaN propagates (no cost in tight loops)"
    with check_finite(True):
        assert finite_checks_enabled()
        with check_finite(False):
            Helmholtz(9).A(x)
        assert finite_checks_enabled()
    assert not finite_checks_enabled()


def test_near_resonance_warns_with_the_condition_number_of_the_discrete_operator():
    import scipy.sparse as sp

    size, h = 9, 1 / 8
    second = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(size - 2, size - 2)) / h**2
    laplacian = sp.kronsum(second, second).toarray()
    lowest = np.sort(np.linalg.eigvalsh(-laplacian))[0]
    k = math.sqrt(lowest * (1 + 3e-4))
    eigenvalues = np.linalg.eigvalsh(laplacian + k**2 * np.eye(len(laplacian)))
    expected = np.abs(eigenvalues).max() / np.abs(eigenvalues).min()
    with pytest.warns(ResonanceWarning, match=r"within a relative 0.0003 .*condition number") as record:
        Helmholtz(size, k=k)
    quoted = float(str(record[0].message).split("condition number ")[1].split(",")[0])
    assert quoted == pytest.approx(expected, rel=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Helmholtz(size, k=math.sqrt(lowest * 1.05))


def test_navier_stokes_below_its_stability_bound_runs():
    w0 = 100 * ns_vorticity_grf(16).sample(2, generator=torch.Generator().manual_seed(0)).double()
    bound = NavierStokes2D(16, time=0.02, dt=0.01).stable_time_step(w0)
    steps = math.ceil(0.02 / bound)
    out = NavierStokes2D(16, time=0.02, dt=0.02 / steps).A(w0)
    rms = out.flatten(1).square().mean(-1).sqrt()
    # Enstrophy bound of the exact solution: ||w(t)|| <= ||w0|| + t ||f|| (the FNO forcing has rms 0.1).
    assert torch.isfinite(out).all() and (rms <= w0.flatten(1).square().mean(-1).sqrt() * 1.001 + 0.02 * 0.1).all()


# --- training data and shards ------------------------------------------------------------------------------------


def test_in_memory_training_data_names_the_bad_sample():
    from pdeinv.priors.data import TrainingData

    fields = torch.zeros(6, 2, 8, 8)
    fields[4, 1, 0, 0] = math.inf
    with pytest.raises(NonFiniteError, match=r"field 'solution' of sample 4 holds NaN or infinite values"):
        TrainingData(fields, ("source", "solution"), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(NonFiniteError, match=r"normalisation of channel\(s\) \['source'\]"):
        TrainingData(torch.zeros(6, 2, 8, 8), ("source", "solution"), [0.0, 0.0], [0.0, 1.0])


SHARD_CASES = {
    "nan-array": ({"u": np.array([[0.0], [np.nan]])}, NonFiniteError, r"'u' for sample\(s\) \[11\]"),
    "complex-array": ({"u": np.zeros((2, 1), np.complex64)}, ValueError, r"'u' is complex"),
    "wrong-length": ({"u": np.zeros((3, 1))}, ValueError, r"holds 3 samples, expected 2"),
}


@pytest.mark.parametrize("arrays, error, match", SHARD_CASES.values(), ids=SHARD_CASES.keys())
def test_shard_store_refuses_bad_arrays(tmp_path, arrays, error, match):
    from pdeinv.datasets.store import ShardStore

    store = ShardStore(tmp_path / "f.h5", {"n": 12})
    store.open()
    with pytest.raises(error, match=match):
        store.write(10, 12, arrays)
    assert store.ranges() == []
    store.close()


def test_a_corrupt_shard_is_named(tmp_path):
    from pdeinv.datasets.store import ShardStore

    store = ShardStore(tmp_path / "f.h5", {"n": 2})
    store.open()
    store.write(0, 2, {"u": np.zeros((2, 3))})
    shard = next(store.directory.glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:40])
    before = digest(shard)
    with pytest.raises(PdeinvError, match=rf"the shard {shard} is corrupt .*delete it and run the same command again"):
        list(store.shards(2))
    assert digest(shard) == before
    store.close()
