"""``pdeinv demo``: a short Helmholtz inverse reconstruction, with and without EquiReg, beside the Bayes limit.

It draws a few Helmholtz sources on the fly (the test-set seed, sample ``i`` from
``sample_generator(2, i)``), solves for the solutions at 64 x 64, observes 3 % of the solution
points (the ``helmholtz-inverse-64`` sensor), and recovers the source with a diffusion method,
the same method with EquiReg, and exact kriging (the Bayes limit for this Gaussian source). It
prints the relative L2 errors and times and saves a PNG of truth, measurements,
reconstruction, error and posterior standard deviation.

The prior is the shipped ``helmholtz-joint`` when it exists (or ``--prior``); otherwise the
exact joint Gaussian prior of (source, solution), whose denoiser is D4-equivariant, so that
EquiReg then changes nothing (a trained network is only approximately equivariant).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.datasets import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS
from pdeinv.priors import load, shipped_priors
from pdeinv.priors.gaussian import JointGaussianPrior
from pdeinv.sampling.figures import save_panels
from pdeinv.sampling.methods import solve
from pdeinv.sampling.problem import MethodOptions, pde_physics

TASK = "helmholtz-inverse-64"
SHIPPED = "helmholtz-joint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv demo`` options on ``parser``."""
    parser.add_argument("--n", type=int, default=2, help="number of sources to reconstruct (default 2)")
    parser.add_argument("--method", default="fundps", help="diffusion method (default fundps)")
    parser.add_argument("--steps", type=int, default=100, help="sampling steps (default 100)")
    parser.add_argument("--samples", type=int, default=4, help="posterior samples per measurement (default 4)")
    parser.add_argument("--prior", default=None, help=f"prior name or directory (default {SHIPPED} if shipped)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    parser.add_argument("--out", default="pdeinv-demo", help="directory for demo.png (default ./pdeinv-demo)")


def _prior(name: str | None, physics):
    if name is not None:
        return load(name), name
    if SHIPPED in shipped_priors():
        return load(SHIPPED), SHIPPED
    exact = JointGaussianPrior(physics.input_prior, physics.operator, channels=physics.channels)
    return exact, "exact joint Gaussian (no shipped prior)"


def _sources(n: int, grf) -> torch.Tensor:
    return torch.cat([grf.sample(1, sample_generator(SPLIT_SEEDS["test"], i)) for i in range(n)]).double()


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    task = get_task(TASK)
    physics = pde_physics(task.pde, task.resolution)
    sources = _sources(args.n, physics.input_prior)
    problem = task.problem(sources, physics.operator.A(sources))
    prior, prior_name = _prior(args.prior, physics)
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
    guided, limit = results[f"{args.method}+equireg"], results["kriging"]
    panels = [
        ("true source", sources[0, 0]),
        (f"{args.method}", results[args.method].mean[0, 0]),
        (f"{args.method}+equireg", guided.mean[0, 0]),
        ("error (+equireg)", guided.mean[0, 0] - sources[0, 0]),
        ("posterior std (+equireg)", guided.std[0, 0] if guided.std is not None else limit.std[0, 0]),
        ("kriging (Bayes limit)", limit.mean[0, 0]),
    ]
    points = (problem.sensor.coordinates, problem.measurements[0, 0])
    figure = save_panels(out / "demo.png", panels, points, title=f"{TASK} with {prior_name}")
    print(f"figure: {figure}")
    return 0
