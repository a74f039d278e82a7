"""DWGF's regulariser weight gamma swept against RLSD on bench tasks: error, diversity and blur.

DWGF's regulariser is a reverse KL, which is mode-seeking; at high ``gamma`` its particles are
expected to collapse onto one smooth estimate. For each task the script runs RLSD (its
``calibrated`` preset) and DWGF (``calibrated`` preset) with ``gamma`` in ``GAMMAS`` on the first ``n`` test samples and records the
relative L2 error of one particle and of the particle mean, the diversity of the particle set
(:mod:`pdeinv.bench.diversity`) and two spectral measures of the first particle, with
:math:`|k|_\\infty` the wavenumber (the 64 x 64 final vorticity holds 99.98 % of its energy below
:math:`S/8`):

- *fine-scale ratio*: its energy in :math:`S/32 \\le |k|_\\infty < S/8` over the truth's there
  (1: as much fine structure as the truth; below 1: blurrier);
- *spurious energy*: its energy at :math:`|k|_\\infty \\ge S/8`, where the final vorticity has
  almost none, as a fraction of the truth's total energy (leftover noise). The inverse tasks'
  rougher targets carry some there themselves (w(0) 0.4 %, the Helmholtz source 4.8 %), so for
  them only the excess over that share is noise.

Rows are written to ``OUT.json`` and ``OUT.md`` as each finishes; a rerun with the same
``--out`` skips the rows already there (same task, method, gamma, n and steps), so an
interrupted sweep resumes where it stopped.

Usage::

    python benchmarks/bench_dwgf_gamma.py --tasks ns-inpaint-box-64 ns-phase-retrieval-64 --n 32 \\
        --out results/particles/dwgf_gamma
    python benchmarks/bench_dwgf_gamma.py --tasks ns-inverse-64 --n 32 --steps 100 --particle-state solved \\
        --solver-dt 1e-2 --batch-size 8 --out results/particles/dwgf_gamma_ns_inverse_100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from pdeinv.bench.diversity import pairwise_cosine, pairwise_relative_distance
from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.pdes import get_pde
from pdeinv.priors import load
from pdeinv.priors.consistent import consistent_if_linear
from pdeinv.sampling import MethodOptions
from pdeinv.sampling.commands import add_solver_arguments
from pdeinv.sampling.particles import DWGFConfig, RLSDConfig, dwgf_solver, rlsd_solver, run_particles
from pdeinv.sampling.particles.methods import state_space

GAMMAS = (0.015, 0.15, 1.5, 15.0)


def band_energy(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Per sample: spectral energy of fields ``(n, 1, S, S)`` at ``low <= |k|_inf < high``, ``(n,)``."""
    s = x.shape[-1]
    k = torch.fft.fftfreq(s, d=1.0 / s).abs()
    k = torch.maximum(k[:, None], k[None, :])
    band = (k >= low) & (k < high)
    return (torch.fft.fft2(x.double()).abs() ** 2)[..., band].flatten(1).sum(1)


def spectral_measures(estimate: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Fine-scale ratio and spurious energy (module docstring), averaged over samples."""
    s = truth.shape[-1]
    fine = band_energy(estimate, s / 32, s / 8) / band_energy(truth, s / 32, s / 8)
    spurious = band_energy(estimate, s / 8, s) / band_energy(truth, 0, s)
    return fine.mean().item(), spurious.mean().item()


def run(task_name: str, method: str, gamma: float | None, n: int, steps: int, particles: int,
        solver: MethodOptions) -> dict:
    """One row of the sweep; ``solver`` carries the batch size, particle state and solver step."""
    task = get_task(task_name)
    inputs, outputs, settings = task.load_test_set(None, n)
    problem = task.problem(inputs, outputs, settings)
    prior = consistent_if_linear(
        load(get_pde(task.pde).default_prior), problem.operator, problem.input_channel, problem.output_channel
    )
    if method == "rlsd":
        build, config = rlsd_solver, RLSDConfig.preset("calibrated", steps=steps)
    else:
        build, config = dwgf_solver, DWGFConfig.preset("calibrated", gamma=gamma, steps=steps)
    truth = outputs if task.target == "output" else inputs
    start = time.perf_counter()
    options = dataclasses.replace(solver, samples=particles, prior=prior)
    if options.solver_dt is not None:
        problem = problem.with_solver_dt(options.solver_dt)
    result = run_particles(build, config, problem, options)
    seconds = (time.perf_counter() - start) / n
    first = result.samples[:, 0].double()
    fine, spurious = spectral_measures(first, truth)
    return {
        "task": task_name,
        "method": method,
        "gamma": gamma,
        "n": n,
        "steps": steps,
        "particles": particles,
        "particle_state": type(state_space(prior, problem, options.particle_state)).__name__,
        "solver_dt": options.solver_dt,
        "rel_l2_single": relative_l2(first, truth).mean().item(),
        "rel_l2_mean": relative_l2(result.mean, truth).mean().item(),
        "pairwise_relative_distance": pairwise_relative_distance(result.samples).mean().item(),
        "pairwise_cosine": pairwise_cosine(result.samples).mean().item(),
        "fine_scale_ratio": fine,
        "spurious_energy": spurious,
        "seconds_per_sample": seconds,
    }


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    lines = [
        "| task | method | gamma | rel. L2 % single | rel. L2 % of mean | pairwise rel. distance | pairwise cosine "
        "| fine-scale ratio | spurious energy | s / sample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} | {r['gamma'] if r['gamma'] is not None else '-'} | "
            f"{100 * r['rel_l2_single']:.1f} | {100 * r['rel_l2_mean']:.1f} | {r['pairwise_relative_distance']:.3f} | "
            f"{r['pairwise_cosine']:.3f} | {r['fine_scale_ratio']:.3f} | {r['spurious_energy']:.2e} | "
            f"{r['seconds_per_sample']:.3g} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["ns-inpaint-box-64", "ns-phase-retrieval-64"])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="measurements per particle run (default: all n)")
    parser.add_argument("--out", default="results/particles/dwgf_gamma", help="output path without suffix")
    add_solver_arguments(parser)
    args = parser.parse_args()
    solver = MethodOptions(
        particle_state=args.particle_state, solver_dt=args.solver_dt, batch_size=args.batch_size or args.n
    )
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else []
    done = {_row_key(r) for r in rows}
    for task in args.tasks:
        for method, gamma in [("rlsd", None)] + [("dwgf", g) for g in GAMMAS]:
            if (task, method, gamma, args.n, args.steps) in done:
                continue
            rows.append(run(task, method, gamma, args.n, args.steps, args.particles, solver))
            out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
            out.with_suffix(".md").write_text(table(rows) + "\n")
            print(table(rows[-1:]).splitlines()[-1], flush=True)


def _row_key(row: dict) -> tuple:
    """What identifies a row of the sweep: task, method, gamma, n and steps."""
    return row["task"], row["method"], row["gamma"], row["n"], row["steps"]


if __name__ == "__main__":
    main()
