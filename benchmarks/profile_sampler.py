r"""Where a reconstruction spends its time: denoiser, Tweedie covariance, PDE solves, the rest.

Runs one benchmark task with one method on the first ``--n`` test fields, like ``pdeinv bench``,
with timers around

- ``denoiser``: the trained denoiser's forward and backward passes (the operator-consistent
  projection of a linear PDE is a solve, counted under ``pde``);
- ``tweedie``: the measurement covariance :math:`\sigma_y^2 I + \sigma^2 G J G^\top` of
  ``ObservationTerm(loss="tweedie")`` and its factorisation, PDE solves inside it included;
- ``pde``: ``A``, ``A_adjoint`` and ``A_dagger`` of the PDE operators (Helmholtz, Poisson,
  Navier-Stokes), forward and backward;
- ``other``: the rest (sampler arithmetic, sensors, autograd of everything else).

Time is charged to the outermost open region (:mod:`pdeinv.bench.timing`). ``--cprofile N``
also prints the N functions with the largest cumulative time. Example::

    OMP_NUM_THREADS=1 python benchmarks/profile_sampler.py --task helmholtz-inverse --method tmpd \
        --n 2 --steps 20 --batch-size 2

Per-step figures are the run's seconds divided by the steps, so a 20-step profile scales to the
preset's step count by multiplying with it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time

import torch

from pdeinv.bench.runner import BenchConfig, task_prior
from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.bench.timing import CategoryTimer, patched, timed_denoiser
from pdeinv.operators import Helmholtz, NavierStokes2D
from pdeinv.sampling.methods import solve
from pdeinv.sampling.problem import MethodOptions
from pdeinv.sampling.terms import ObservationTerm

CATEGORIES = ("denoiser", "tweedie", "pde", "other")
PDE_CLASSES = (Helmholtz, NavierStokes2D)
PDE_METHODS = ("A", "A_adjoint", "A_dagger")
TWEEDIE_METHODS = ("_tweedie_covariance", "_tweedie_factor")


def _instrument(stack: contextlib.ExitStack, prior, timer: CategoryTimer) -> None:
    stack.enter_context(timed_denoiser(prior, timer))
    for owner in PDE_CLASSES:
        for name in PDE_METHODS:
            if name in vars(owner):
                stack.enter_context(patched(owner, name, timer.wrap(vars(owner)[name], "pde")))
    for name in TWEEDIE_METHODS:
        if name in vars(ObservationTerm):
            stack.enter_context(patched(ObservationTerm, name, timer.wrap(vars(ObservationTerm)[name], "tweedie")))


def profile(config: BenchConfig, cprofile: int = 0) -> dict:
    """Run ``config`` with the timers; the seconds per category (whole run), the error and the NFE."""
    task = get_task(config.task)
    inputs, outputs, settings = task.load_test_set(config.data, config.n)
    problem = task.problem(inputs, outputs, settings)
    prior = task_prior(config, problem)
    options = MethodOptions(
        config.steps, config.samples, config.seed, prior, config.batch_size,
        particle_state=config.particle_state, solver_dt=config.solver_dt,
    )
    timer = CategoryTimer(synchronize=torch.device(config.device).type == "cuda")
    profiler = cProfile.Profile() if cprofile else None
    with contextlib.ExitStack() as stack:
        _instrument(stack, prior, timer)
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        reconstruction = solve(config.method, problem, options)
        if profiler is not None:
            profiler.disable()
        total = time.perf_counter() - start
    truth = outputs if task.target == "output" else inputs
    seconds = {c: timer.seconds.get(c, 0.0) for c in CATEGORIES[:-1]}
    seconds["other"] = total - sum(seconds.values())
    record = {
        "task": config.task,
        "method": config.method,
        "n": config.n,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "threads": torch.get_num_threads(),
        "device": config.device,
        "seconds_total": total,
        "seconds": seconds,
        "denoiser_calls": timer.calls.get("denoiser", 0),
        "nfe": reconstruction.nfe,
        "rel_l2_mean": float(relative_l2(reconstruction.mean.cpu(), truth).mean()),
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(cprofile)
        record["cprofile"] = text.getvalue()
    return record


def precision_check(config: BenchConfig, sigmas=(0.01, 0.1, 1.0, 10.0, 100.0)) -> str:
    r"""Markdown table: the Tweedie solve :math:`K_\sigma^{-1} r` with the level's matrix product in float32 vs float64.

    Uses the task's prior and sensor with the ``tmpd`` preset's term (its noise level); ``r`` is
    drawn from :math:`N(0, K_\sigma)`. Columns: seconds of the product per level in each
    precision and the relative differences of :math:`K_\sigma` and of :math:`K_\sigma^{-1} r`.
    """
    from pdeinv.sampling.methods import tmpd_preset
    from pdeinv.sampling.terms import gaussian_measurement_covariance

    task = get_task(config.task)
    inputs, outputs, settings = task.load_test_set(config.data, 1)
    problem = task.problem(inputs, outputs, settings)
    prior = task_prior(config, problem)
    options = MethodOptions(config.steps, 1, 0, prior, 1)
    term = tmpd_preset(problem, prior, options).terms(problem.measurements[:1])[0]
    like = torch.zeros(1, len(prior.channels), task.resolution, task.resolution)
    covariance = gaussian_measurement_covariance(prior, term.operator, term.channels, term.scale, term.noise_std, like)
    if covariance is None or covariance.columns is None:
        return f"{config.task}: the prior has no spectral Gaussian part; nothing to compare"
    columns32, variances32 = covariance.columns.float(), covariance.variances.float()
    eye = torch.eye(covariance.size, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    rows = [
        f"{config.task}: M = {covariance.size} measurements, {covariance.columns.shape[1]} spectral modes kept, "
        f"noise std {term.noise_std:.3g}\n",
        "| sigma | s / level (float64) | s / level (float32) | rel. diff. of K | rel. diff. of K^-1 r |",
        "|---|---|---|---|---|",
    ]
    for sigma in sigmas:
        start = time.perf_counter()
        exact = covariance.covariance(sigma)
        seconds64 = time.perf_counter() - start
        start = time.perf_counter()
        gains = variances32 / (variances32 + sigma**2)
        spread32 = ((columns32 * gains) @ columns32.T).double()
        seconds32 = time.perf_counter() - start
        single = term.noise_std**2 * eye + sigma**2 * 0.5 * (spread32 + spread32.T)
        factor = torch.linalg.cholesky(exact)
        r = factor @ torch.randn(covariance.size, 1, generator=g, dtype=torch.float64)
        solved64 = torch.cholesky_solve(r, factor)
        solved32 = torch.linalg.solve(single, r)
        rows.append(
            f"| {sigma:g} | {seconds64:.3f} | {seconds32:.3f} | {float((single - exact).norm() / exact.norm()):.2e} | "
            f"{float((solved32 - solved64).norm() / solved64.norm()):.2e} |"
        )
    return "\n".join(rows)


def markdown_row(record: dict) -> str:
    """``| task | method | steps | n | s/sample | denoiser | tweedie | pde | other | total/denoiser |``."""
    n, seconds = record["n"], record["seconds"]
    ratio = record["seconds_total"] / seconds["denoiser"] if seconds["denoiser"] > 0 else float("inf")
    parts = " | ".join(f"{seconds[c] / n:.2f}" for c in CATEGORIES)
    return (
        f"| {record['task']} | {record['method']} | {record['steps']} | {n} | {record['seconds_total'] / n:.2f} | "
        f"{parts} | {ratio:.2f} |"
    )


HEADER = (
    "| task | method | steps | n | s / sample | denoiser | tweedie | pde | other | total / denoiser |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gaussian-part", action="store_true")
    parser.add_argument("--particle-state", default="auto", choices=("auto", "joint", "solved"))
    parser.add_argument("--solver-dt", type=float, default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the N top cumulative functions")
    parser.add_argument("--json", default=None, help="append the record as one JSON line to this file")
    parser.add_argument(
        "--precision", action="store_true", help="compare the Tweedie solve in float32 and float64 instead of profiling"
    )
    args = parser.parse_args(argv)
    config = BenchConfig(
        task=args.task, method=args.method, n=args.n, steps=args.steps, batch_size=args.batch_size,
        device=args.device, gaussian_part=args.gaussian_part, particle_state=args.particle_state,
        solver_dt=args.solver_dt, data=args.data,
    )
    if args.precision:
        print(precision_check(config))
        return 0
    record = profile(config, args.cprofile)
    print(f"{HEADER}\n{markdown_row(record)}")
    print(f"threads {record['threads']}, NFE {record['nfe']}, rel. L2 {100 * record['rel_l2_mean']:.2f} %, "
          f"seconds per category are per sample (whole run / n)")
    if "cprofile" in record:
        print(record.pop("cprofile"))
    if args.json:
        with open(args.json, "a") as stream:
            stream.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
