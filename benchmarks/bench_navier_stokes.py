"""Speed and time-step accuracy of the pseudo-spectral Navier-Stokes solver.

Usage::

    python benchmarks/bench_navier_stokes.py [--resolutions 64 128] [--batch 32] [--time 1.0]
        [--accuracy-resolution 64] [--accuracy-batch 4] [--threads N] [--device cpu]

Two markdown tables:

1. Wall time of ``NavierStokes2D(S, time=T, dt=1e-4).A`` on a float32 batch of FNO initial
   vorticities (``7^3 (-Laplacian + 49)^(-2.5)``, viscosity 1e-3, FNO forcing), one timed call
   after a short warm-up, with the time per field and per field-step.
2. Accuracy against the time step: the relative L2 difference
   ``||w_dt(T) - w_ref(T)|| / ||w_ref(T)||`` to the ``dt = 1e-4`` solution, in float64 (so that
   round-off does not mask the discretisation error), and the largest ``dt`` within 1e-4.

On a shared CPU the wall times vary with the other load; the accuracy figures do not.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from pdeinv.datasets.grf import ns_vorticity_grf
from pdeinv.operators.navier_stokes import NavierStokes2D

REFERENCE_DT = 1e-4
ACCURACY_TARGET = 1e-4


@dataclass(frozen=True)
class BenchConfig:
    """Grid sizes and batch for timing, the final time, the time steps compared, the device."""

    resolutions: tuple[int, ...] = (64, 128)
    batch: int = 32
    time: float = 1.0
    accuracy_resolution: int = 64
    accuracy_batch: int = 4
    dts: tuple[float, ...] = (2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
    device: str = "cpu"


def initial_vorticity(resolution: int, batch: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A fixed-seed batch ``(batch, 1, S, S)`` of FNO initial vorticities."""
    generator = torch.Generator().manual_seed(0)
    return ns_vorticity_grf(resolution).sample(batch, generator, dtype=dtype).to(device)


def timed_solve(physics: NavierStokes2D, w0: torch.Tensor) -> float:
    """Seconds for one call of ``physics.A(w0)``."""
    if w0.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    physics.A(w0)
    if w0.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def speed_table(config: BenchConfig) -> str:
    """One row per resolution: wall time of the batch, seconds per field, microseconds per field-step."""
    rows = [
        "| S | batch | steps | wall time (s) | s / field | us / field-step |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in config.resolutions:
        physics = NavierStokes2D(s, time=config.time, dt=REFERENCE_DT)
        w0 = initial_vorticity(s, config.batch, torch.float32, config.device)
        NavierStokes2D(s, time=10 * REFERENCE_DT, dt=REFERENCE_DT).A(w0)
        seconds = timed_solve(physics, w0)
        per_field = seconds / config.batch
        rows.append(
            f"| {s} | {config.batch} | {physics.n_steps} | {seconds:.1f} | {per_field:.2f} | "
            f"{1e6 * per_field / physics.n_steps:.1f} |"
        )
    return "\n".join(rows)


def accuracy_rows(config: BenchConfig) -> list[tuple[float, float]]:
    """``(dt, relative L2 difference to the dt = 1e-4 solution)`` for every compared ``dt``."""
    s = config.accuracy_resolution
    w0 = initial_vorticity(s, config.accuracy_batch, torch.float64, config.device)
    reference = NavierStokes2D(s, time=config.time, dt=REFERENCE_DT).A(w0)
    norm = torch.linalg.vector_norm(reference)
    rows = []
    for dt in config.dts:
        solution = NavierStokes2D(s, time=config.time, dt=dt).A(w0)
        rows.append((dt, float(torch.linalg.vector_norm(solution - reference) / norm)))
    return rows


def accuracy_table(rows: list[tuple[float, float]]) -> str:
    """Markdown table of the accuracy rows with a verdict line naming the largest accurate ``dt``."""
    lines = ["| dt | rel. L2 to dt=1e-4 | within 1e-4 |", "| --- | --- | --- |"]
    lines += [f"| {dt:g} | {err:.2e} | {'yes' if err <= ACCURACY_TARGET else 'no'} |" for dt, err in rows]
    accurate = [dt for dt, err in rows if err <= ACCURACY_TARGET]
    verdict = f"largest dt within {ACCURACY_TARGET:g}: {max(accurate):g}" if accurate else "no dt is within the target"
    return "\n".join(lines) + "\n\n" + verdict


def parse_config(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time", type=float, default=1.0)
    parser.add_argument("--accuracy-resolution", type=int, default=64)
    parser.add_argument("--accuracy-batch", type=int, default=4)
    parser.add_argument("--dts", type=float, nargs="+", default=[2e-4, 5e-4, 1e-3, 2e-3, 5e-3])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return BenchConfig(
        tuple(args.resolutions), args.batch, args.time, args.accuracy_resolution, args.accuracy_batch, tuple(args.dts), args.device
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    print(
        f"Navier-Stokes 2-D, viscosity 1e-3, FNO forcing, T={config.time:g}, device={config.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print()
    print(f"Speed (float32, dt={REFERENCE_DT:g})")
    print()
    print(speed_table(config))
    print()
    print(f"Accuracy against dt (float64, {config.accuracy_resolution}x{config.accuracy_resolution}, batch {config.accuracy_batch})")
    print()
    print(accuracy_table(accuracy_rows(config)))


if __name__ == "__main__":
    main()
