"""Check the GPU path: run the CUDA cases of the device tests, then time the headline rows on the GPU.

With a CUDA device::

    python benchmarks/gpu_check.py [--n 8] [--batch-size 8] [--data DIR]

1. runs ``pytest -rs tests/test_devices.py tests/test_fast_linear_algebra.py`` (the ``device``
   fixture's ``cuda`` cases run there);
2. makes the 128 x 128 test sets in ``--data`` if they are missing (``pdeinv data benchmark-sets``
   on the GPU);
3. runs each headline row with ``pdeinv bench``'s machinery on ``cuda`` and prints a markdown
   table: rel. L2, seconds per sample (batched), the denoiser's share, NFE, the GPU's name.

Without one it says so, runs a two-step ``tmpd`` sampler on a small Gaussian prior on the CPU as a
smoke test and exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# (task, method, steps, extra BenchConfig settings)
HEADLINE = (
    ("helmholtz-inverse", "tmpd", 100, {}),
    ("helmholtz-inverse", "fundps", 100, {}),
    ("helmholtz-forward", "tmpd", 100, {}),
    ("ns-inverse", "dwgf", 100, {"particle_state": "solved", "solver_dt": 1e-2}),
    ("ns-forward", "tmpd", 100, {}),
)


def _smoke_cpu() -> None:
    """Two Heun steps of Tweedie guidance with a small spectral Gaussian prior on the CPU."""
    from pdeinv.operators.helmholtz import Helmholtz
    from pdeinv.operators.observation import PointObservation, random_points
    from pdeinv.priors.backbones import build_backbone
    from pdeinv.priors.consistent import OperatorConsistentPrior
    from pdeinv.priors.edm import EDMConfig, EDMDenoiser, GaussianPart
    from pdeinv.priors.gaussian import helmholtz_joint_prior
    from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser
    from pdeinv.sampling.sampler import PosteriorSampler, SamplerConfig
    from pdeinv.sampling.terms import ObservationTerm

    size, g = 16, torch.Generator().manual_seed(0)
    exact = helmholtz_joint_prior(size)
    base = SpectralGaussianDenoiser.fit(exact.sample(400, g, dtype=torch.float64).float(), "dst")
    backbone = build_backbone("fno", channels=2, width=4, n_layers=1, n_modes=2)
    network = EDMDenoiser(backbone, EDMConfig(), channels=exact.channels, std=exact.std, resolution=size, base=base)
    prior = OperatorConsistentPrior(GaussianPart(network), Helmholtz(size, k=1.0))
    sensor = PointObservation(size, indices=random_points(7, size, seed=1))
    term = ObservationTerm(sensor, torch.zeros(1, 1, 7), "solution", loss="tweedie", noise_std=1e-2)
    result = PosteriorSampler(prior, SamplerConfig(steps=2, guidance="drift"), [term]).sample(2, g, resolution=size)
    if not torch.isfinite(result.physical).all():
        raise SystemExit("CPU smoke run: non-finite samples")
    print(f"CPU smoke run: 2 tmpd steps on a {size} x {size} Gaussian prior, NFE {result.nfe}, finite: OK")


def _run_tests() -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_devices.py", "tests/test_fast_linear_algebra.py"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def _ensure_data(data: Path) -> None:
    names = ("helmholtz_128_test.h5", "navier-stokes_128_test.h5")
    if all((data / name).exists() for name in names):
        return
    command = [sys.executable, "-m", "pdeinv.cli", "data", "benchmark-sets", "--out", str(data), "--resolution", "128",
               "--n", "32", "--device", "cuda", "--no-progress"]
    subprocess.run(command, cwd=ROOT, check=True)


def _time_rows(n: int, batch_size: int, data: Path) -> list[str]:
    from pdeinv.bench.runner import BenchConfig, run_benchmark
    from pdeinv.bench.tasks import get_task

    rows = []
    for task, method, steps, extra in HEADLINE:
        pde_file = data / f"{get_task(task).pde}_128_test.h5"
        config = BenchConfig(task=task, method=method, n=n, steps=steps, batch_size=batch_size, device="cuda",
                             data=str(pde_file), **extra)
        record = run_benchmark(config)
        share = record["denoiser_seconds"] / record["seconds_per_sample"]
        settings = ", ".join(f"{k}={v}" for k, v in extra.items())
        rows.append(
            f"| {task} | {method}{f' ({settings})' if settings else ''} | {steps} | {n} | {batch_size} | "
            f"{100 * record['rel_l2_mean']:.2f} | {record['seconds_per_sample']:.3g} | {100 * share:.0f} % | "
            f"{record['nfe']} | {record['device']} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="test and time the GPU path")
    parser.add_argument("--n", type=int, default=8, help="test fields per headline row")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", default=str(ROOT / "data"), help="directory of the 128 x 128 test sets")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False; no GPU table. Running the CPU smoke test only.")
        _smoke_cpu()
        return 0
    status = _run_tests()
    if status != 0:
        print(f"the device tests failed (exit {status}); no timing table")
        return status
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    _ensure_data(data)
    print(
        "| task | method | steps | n | batch | rel. L2 % | s / sample | denoiser share | NFE | device |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    for row in _time_rows(args.n, args.batch_size, data):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
