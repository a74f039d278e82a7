"""Pair generation: PDE consistency of every stored pair, resumability after SIGKILL, clear errors."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
import yaml

from pdeinv.cli import main
from pdeinv.datasets.generate import generate, make_config
from pdeinv.datasets.grf import helmholtz_source_grf, ns_vorticity_grf
from pdeinv.datasets.inspection import check_file
from pdeinv.datasets.seeding import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.navier_stokes import NavierStokes2D

NS_SMALL = {"viscosity": 1e-3, "time": 0.05, "dt": 0.01}


def read_fields(path):
    with h5py.File(path, "r") as f:
        return {name: ds[()] for name, ds in f["t0_fields"].items()}


@pytest.mark.parametrize("pde, k", [("helmholtz", 1.0), ("poisson", 0.0)])
def test_every_helmholtz_pair_solves_the_pde(tmp_path, pde, k):
    s = 17
    out = generate(make_config(pde, s, 6, seed=4), tmp_path / "h.h5", batch_size=4, progress=False)
    fields = read_fields(out)
    a = torch.from_numpy(fields["source"]).double()
    u = torch.from_numpy(fields["solution"]).double()
    assert a.shape == u.shape == (6, 1, s, s)
    residual = Helmholtz(s, k=k).residual(a, u)
    # stored u is u_exact rounded to float32 (relative error <= 2^-24); the stencil amplifies it by <= 8/h^2 + k^2
    h = 1.0 / (s - 1)
    bound = (8 / h**2 + k**2) * (2.0**-24 + 1e-13) * u.abs().amax(dim=(1, 2, 3))
    assert torch.all(residual.abs().amax(dim=(1, 2, 3)) <= bound)
    assert torch.all(u[..., [0, -1], :] == 0) and torch.all(u[..., :, [0, -1]] == 0)
    for i in range(6):
        expected = helmholtz_source_grf(s).sample(1, sample_generator(4, i))
        assert torch.equal(torch.from_numpy(fields["source"][i : i + 1]), expected)


def test_every_navier_stokes_pair_is_the_solver_output(tmp_path):
    s, n = 16, 5
    config = make_config("navier-stokes", s, n, seed=1, **NS_SMALL)
    out = generate(config, tmp_path / "ns.h5", batch_size=2, progress=False)
    w = read_fields(out)["vorticity"]
    assert w.shape == (n, 2, s, s) and w.dtype == np.float32
    w0 = torch.from_numpy(w[:, :1])
    recomputed = NavierStokes2D(s, viscosity=1e-3, time=0.05, dt=0.01).A(w0)
    # float32 FFT rounding differs between batch shapes (the generator solves groups of 16)
    torch.testing.assert_close(recomputed, torch.from_numpy(w[:, 1:]), rtol=0, atol=1e-6 * float(w0.abs().max()))
    for i in range(n):
        assert torch.equal(w0[i : i + 1], ns_vorticity_grf(s).sample(1, sample_generator(1, i)))
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["time"][()], np.float32([0.0, 0.05]))
        assert f.attrs["viscosity"] == 1e-3 and f.attrs["dt"] == 0.01


def _cli(out, batch_size, n=40):
    return [
        sys.executable, "-m", "pdeinv.cli", "data", "generate", "navier-stokes", "--resolution", "16",
        "--n", str(n), "--seed", "3", "--out", str(out), "--batch-size", str(batch_size),
        "--time", "0.1", "--dt", "0.001", "--solver-batch", "2", "--no-progress",
    ]  # fmt: skip


def test_sigkill_then_resume_gives_the_uninterrupted_bytes(tmp_path):
    out = tmp_path / "resumed.h5"
    parts = tmp_path / "resumed.h5.parts"
    process = subprocess.Popen(_cli(out, batch_size=2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (parts.exists() and any(p.name.endswith(".npz") for p in parts.iterdir())):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no shard written within 60 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert not out.exists(), "a killed run must not leave a file at the final path"
    n_done = len([p for p in parts.iterdir() if p.name.endswith(".npz")])
    assert 0 < n_done < 20, "the run must have been killed mid-way"
    assert main(_cli(out, batch_size=5)[3:]) == 0
    assert not parts.exists()
    reference = generate(
        make_config("navier-stokes", 16, 40, seed=3, time=0.1, dt=0.001, solver_batch=2),
        tmp_path / "ref.h5",
        batch_size=40,
        progress=False,
    )
    got, expected = read_fields(out), read_fields(reference)
    assert got["vorticity"].tobytes() == expected["vorticity"].tobytes()


def test_stale_temporaries_and_leftover_parts_are_harmless(tmp_path):
    config = make_config("helmholtz", 9, 7, seed=0, solver_batch=2)
    reference = read_fields(generate(config, tmp_path / "ref.h5", batch_size=7, progress=False))
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    # a run killed while writing its first shard and one killed while assembling leave temporaries only
    parts.mkdir()
    (parts / "shard-000000000-000000003.npz.tmp").write_bytes(b"\x00" * 10)
    (parts / "assembled.h5.tmp").write_bytes(b"garbage")
    generate(config, out, batch_size=2, progress=False)
    assert read_fields(out)["solution"].tobytes() == reference["solution"].tobytes()
    # a run killed after the final rename but before removing the parts directory
    parts.mkdir()
    generate(config, out, batch_size=2, progress=False)
    assert not parts.exists()
    assert read_fields(out)["source"].tobytes() == reference["source"].tobytes()


def test_different_configuration_is_refused_with_the_differing_settings(tmp_path):
    out = tmp_path / "h.h5"
    generate(make_config("helmholtz", 9, 3, seed=0), out, progress=False)
    with pytest.raises(ValueError, match=r"n: 3 \(existing\) vs 4 \(requested\)"):
        generate(make_config("helmholtz", 9, 4, seed=0), out, progress=False)
    parts = tmp_path / "p.h5.parts"
    parts.mkdir()
    (parts / "config.json").write_text('{"pde": "helmholtz", "seed": 1}')
    with pytest.raises(ValueError, match=r"seed: 1 \(existing\) vs 0 \(requested\)"):
        generate(make_config("helmholtz", 9, 3, seed=0), tmp_path / "p.h5", progress=False)


def test_bad_input_is_rejected_clearly(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown PDE 'heat'; choose one of helmholtz, poisson, darcy, navier-stokes"):
        make_config("heat", 16, 4, 0)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        make_config("helmholtz", 16, 0, 0)
    with pytest.raises(ValueError, match="resolution must be an integer >= 3, got -2"):
        make_config("poisson", -2, 4, 0)
    with pytest.raises(ValueError, match="--dt only apply to navier-stokes"):
        make_config("helmholtz", 16, 4, 0, dt=0.1)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        make_config("navier-stokes", 16, 4, 0, dt=-1.0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        generate(make_config("helmholtz", 9, 2, 0), tmp_path / "x.h5", batch_size=0)
    args = ["--resolution", "0", "--n", "2", "--seed", "0", "--out", str(tmp_path / "y.h5")]
    code = main(["data", "generate", "helmholtz", *args])
    assert code == 2 and "resolution must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "y.h5").exists()


def test_benchmark_sets_are_the_documented_generate_commands(tmp_path, capsys):
    small = ["--resolution", "8", "--n", "2", "--no-progress"]
    assert main(["data", "benchmark-sets", "--out", str(tmp_path), *small]) == 0
    printed = capsys.readouterr().out
    for name in ("helmholtz_8_test.h5", "navier-stokes_8_test.h5"):
        assert check_file(tmp_path / name) == []
        statistics = tmp_path / name.replace(".h5", ".stats.yaml")  # the sets share a folder: one file each
        assert f"wrote {statistics}" in printed
        with h5py.File(tmp_path / name, "r") as f:
            for field, ds in f["t0_fields"].items():
                stored = yaml.safe_load(statistics.read_text())["std"][field]
                assert stored == pytest.approx(ds[()].astype(np.float64).std(), rel=1e-9)
        with h5py.File(tmp_path / name, "r") as f:
            assert f.attrs["seed"] == SPLIT_SEEDS["test"] == 2 and f.attrs["n_trajectories"] == 2
    with h5py.File(tmp_path / "navier-stokes_8_test.h5", "r") as f:
        assert (f.attrs["viscosity"], f.attrs["final_time"], f.attrs["dt"]) == (1e-3, 1.0, 1e-4)
    explicit = tmp_path / "explicit.h5"
    assert main(["data", "generate", "helmholtz", "--seed", "2", "--out", str(explicit), *small]) == 0
    benchmark = read_fields(tmp_path / "helmholtz_8_test.h5")
    assert read_fields(explicit)["source"].tobytes() == benchmark["source"].tobytes()
