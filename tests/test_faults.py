"""Faults: SIGKILL in the middle of ``pdeinv data generate``, ``bench`` and ``solve``, interrupted writes.

A killed run never leaves a half-written output, never damages the file it was to replace, and
the same command run again gives the result of an uninterrupted run: byte-identical HDF5 for
``data generate`` (whose resume without ``--overwrite`` is covered with other batch sizes in
``test_generate.py``), the same record apart from timings for ``bench``, the same netCDF result for
``solve``. ``pdeinv train`` is covered in ``test_training_safety.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pdeinv import cli
from pdeinv.bench.runner import write_json
from pdeinv.datasets.generate import generate, make_config

NS = {"time": 0.1, "dt": 0.001, "solver_batch": 2}
TIMINGS = ("seconds_per_sample", "wall_seconds", "denoiser_seconds")


def generate_argv(out: Path) -> list[str]:
    return [
        "data", "generate", "navier-stokes", "--resolution", "16", "--n", "16", "--seed", "5", "--time", "0.1",
        "--dt", "0.001", "--solver-batch", "2", "--batch-size", "2", "--no-progress", "--out", str(out),
    ]  # fmt: skip


def start(argv: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "pdeinv.cli", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 90) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` is true (fail if it ends or times out first)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def first_shard(parts: Path):
    return lambda: parts.is_dir() and any(p.name.endswith(".npz") for p in parts.iterdir())


def test_killed_generation_resumes_and_a_killed_overwrite_keeps_the_old_file(tmp_path, capsys):
    reference = generate(make_config("navier-stokes", 16, 16, 5, **NS), tmp_path / "ref.h5", progress=False)
    out, parts = tmp_path / "out.h5", tmp_path / "out.h5.parts"
    argv = generate_argv(out)
    process = start(argv)
    kill_when(process, first_shard(parts), "first shard")
    process.stderr.close()
    assert not out.exists() and parts.is_dir()
    # the same command resumes the killed run (no --overwrite needed) and says so
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"resuming {out}" in err
    assert out.read_bytes() == reference.read_bytes() and not parts.exists()
    # a finished file is not regenerated silently
    assert cli.main(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    # a killed --overwrite run leaves the finished file as it was; running it again completes it
    finished = out.read_bytes()
    process = start(argv + ["--overwrite"])
    kill_when(process, first_shard(parts), "first shard")
    process.stderr.close()
    assert out.read_bytes() == finished
    assert cli.main(argv + ["--overwrite"]) == 0
    assert out.read_bytes() == reference.read_bytes() and not parts.exists()


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    return generate(make_config("helmholtz", 64, 2, 2), tmp_path_factory.mktemp("faults") / "h.h5", progress=False)


def bench_argv(data: Path, out: Path) -> list[str]:
    return [
        "bench", "--task", "helmholtz-inverse-64", "--method", "adjoint", "--steps", "80", "--n", "2",
        "--batch-size", "1", "--data", str(data), "--out", str(out),
    ]  # fmt: skip


def test_killed_bench_keeps_the_old_record_and_reruns_to_the_same_record(tmp_path, test_set, capsys):
    out = tmp_path / "run.json"
    out.write_text('{"old": true}\n')
    process = start(bench_argv(test_set, out) + ["--overwrite"])
    progress = []
    reader = threading.Thread(target=lambda: progress.extend(iter(lambda: process.stderr.read(1), b"")), daemon=True)
    reader.start()
    kill_when(process, lambda: b"1/2" in b"".join(progress), "first finished batch")
    reader.join(timeout=5)
    process.stderr.close()
    assert out.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"], "no temporary file is left behind"
    assert cli.main(bench_argv(test_set, out) + ["--overwrite", "--no-progress"]) == 0
    reference = tmp_path / "reference.json"
    assert cli.main(bench_argv(test_set, reference) + ["--no-progress"]) == 0
    capsys.readouterr()
    rerun, uninterrupted = json.loads(out.read_text()), json.loads(reference.read_text())
    for record in (rerun, uninterrupted):
        for key in TIMINGS:
            record.pop(key)
        record["provenance"].pop("timestamp")
    assert rerun == uninterrupted


def test_an_interrupted_record_write_leaves_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text('{"old": true}\n')
    record = {"task": "t", "rel_l2": [0.5, 0.25]}

    def half_then_interrupt(self, text, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_json(record, out)
    monkeypatch.undo()
    assert out.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_non_finite_records_are_refused_before_writing(tmp_path):
    out = tmp_path / "run.json"
    with pytest.raises(ValueError, match="test sample 1 of d.h5 is nan"):
        write_json({"data": "d.h5", "rel_l2": [0.1, float("nan")]}, out)
    with pytest.raises(ValueError, match="rel_l2_std"):
        write_json({"rel_l2": [0.1], "rel_l2_std": float("inf")}, out)
    assert not out.exists()
    write_json({"rel_l2": [0.1]}, out)
    json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))


def solve_argv(measurements: Path, out: Path) -> list[str]:
    return [
        "solve", "--measurements", str(measurements), "--method", "adjoint", "--steps", "400", "--batch-size", "1",
        "--out", str(out), "--figure", str(out.with_suffix(".png")),
    ]  # fmt: skip


def test_killed_solve_keeps_the_old_result_and_reruns_to_the_same_result(tmp_path, test_set, capsys):
    import h5py
    import numpy as np

    with h5py.File(test_set) as f:
        solutions = f["t0_fields/solution"][:, 0]
    indices = np.stack(np.meshgrid(np.arange(4, 60, 7), np.arange(4, 60, 7), indexing="ij"), -1).reshape(-1, 2)
    measurements = tmp_path / "m.npz"
    values = np.tile(solutions[:, indices[:, 0], indices[:, 1]], (4, 1))  # 8 rows: several seconds of work
    np.savez(measurements, values=values, indices=indices, resolution=64, pde="helmholtz", observed="output")
    out = tmp_path / "result.nc"
    out.write_bytes(b"old result")
    out.with_suffix(".png").write_bytes(b"old figure")
    process = start(solve_argv(measurements, out) + ["--overwrite"])
    started = time.monotonic()
    kill_when(process, lambda: time.monotonic() - started > 3.0, "three seconds of work")
    process.stderr.close()
    assert out.read_bytes() == b"old result" and out.with_suffix(".png").read_bytes() == b"old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "result.nc", "result.png"], "no temporary file"
    assert cli.main(solve_argv(measurements, out) + ["--overwrite"]) == 0
    reference = tmp_path / "reference.nc"
    assert cli.main(solve_argv(measurements, reference)) == 0
    capsys.readouterr()
    import xarray as xr

    with xr.open_dataset(out, engine="h5netcdf") as rerun, xr.open_dataset(reference, engine="h5netcdf") as ref:
        xr.testing.assert_identical(rerun, ref)
