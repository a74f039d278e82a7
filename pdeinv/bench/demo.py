"""``pdeinv demo``: a short Helmholtz inverse reconstruction, with and without EquiReg, beside the Bayes limit.

It draws a few Helmholtz sources on the fly (the test-set seed, sample ``i`` from
``sample_generator(2, i)``), solves for the solutions at 64 x 64, observes 3 % of the solution
points (the ``helmholtz-inverse-64`` sensor), and recovers the source with a diffusion method,
the same method with EquiReg, and exact kriging (the Bayes limit for this Gaussian source). It
prints the relative L2 errors and times and saves a PNG of truth, measurements,
reconstruction, error and posterior standard deviation.

The prior is the shipped ``helmholtz-joint`` (or ``--prior``), trained by ``pdeinv train``, in its
operator-consistent form (:mod:`pdeinv.priors.consistent`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.datasets import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS
from pdeinv.plot import reconstruction_panels
from pdeinv.priors import load
from pdeinv.priors.consistent import consistent_if_linear
from pdeinv.sampling.methods import solve
from pdeinv.sampling.problem import MethodOptions, pde_physics

TASK = "helmholtz-inverse-64"
SHIPPED = "helmholtz-joint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv demo`` options on ``parser``."""
    parser.add_argument("--n", type=int, default=2, help="number of sources to reconstruct (default 2)")
    parser.add_argument("--method", default="tmpd", help="diffusion method (default tmpd)")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    parser.add_argument("--samples", type=int, default=2, help="posterior samples per measurement (default 2)")
    parser.add_argument("--prior", default=None, help=f"prior name or checkpoint directory (default {SHIPPED})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    parser.add_argument("--out", default="pdeinv-demo", help="directory for demo.png (default ./pdeinv-demo)")


def _sources(n: int, grf) -> torch.Tensor:
    return torch.cat([grf.sample(1, sample_generator(SPLIT_SEEDS["test"], i)) for i in range(n)]).double()


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    task = get_task(TASK)
    physics = pde_physics(task.pde, task.resolution)
    sources = _sources(args.n, physics.input_prior)
    problem = task.problem(sources, physics.operator.A(sources))
    prior_name = args.prior or SHIPPED
    prior = consistent_if_linear(load(prior_name), problem.operator, problem.input_channel, problem.output_channel)
    print(f"{TASK}: {args.n} source(s), {task.n_points} solution points observed, prior: {prior_name}")
    results = {}
    for method in (args.method, f"{args.method}+equireg", "kriging"):
        options = MethodOptions(args.steps, args.samples, args.seed, prior if method != "kriging" else None)
        start = time.perf_counter()
        results[method] = solve(method, problem, options)
        seconds = time.perf_counter() - start
        errors = relative_l2(results[method].mean, sources)
        print(
            f"  {method:<20} rel. L2 {100 * float(errors.mean()):6.2f} %  (per sample "
            f"{', '.join(f'{100 * e:.2f}' for e in errors.tolist())})  NFE {results[method].nfe}  {seconds:.1f} s"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    guided = results[f"{args.method}+equireg"]
    figure = reconstruction_panels(
        sources[0, 0],
        guided.mean[0, 0],
        measurement=problem.measurements[0, 0],
        std=None if guided.std is None else guided.std[0, 0],
        points=problem.sensor.coordinates,
        title=f"{TASK}: {args.method}+equireg with {prior_name} (kriging limit "
        f"{100 * float(relative_l2(results['kriging'].mean[:1], sources[:1]).mean()):.2f} %)",
    )
    figure.savefig(out / "demo.png", dpi=120, bbox_inches="tight")
    print(f"figure: {out / 'demo.png'}")
    return 0
