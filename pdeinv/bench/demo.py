"""``pdeinv demo``: a short Helmholtz inverse reconstruction, with and without EquiReg, beside the Bayes limit.

It draws a few Helmholtz sources on the fly (the test-set seed, sample ``i`` from
``sample_generator(2, i)``), solves for the solutions at 64 x 64, observes 3 % of the solution
points (the ``helmholtz-inverse-64`` sensor), and recovers the source with a diffusion method,
the same method with EquiReg, and exact kriging (the Bayes limit for this Gaussian source). It
prints the relative L2 errors and times and saves a PNG of truth, measurements,
reconstruction, error and posterior standard deviation.

The prior is the shipped ``helmholtz-joint`` (or ``--prior``), trained by ``pdeinv train``, in its
operator-consistent form (:mod:`pdeinv.priors.consistent`). An existing ``demo.png`` is refused
unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pdeinv.arguments import non_negative_int, positive_int
from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.datasets import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS
from pdeinv.errors import UsageError
from pdeinv.files import atomic_write, check_outputs
from pdeinv.priors import load
from pdeinv.priors.consistent import consistent_if_linear
from pdeinv.sampling.methods import GUIDED, parse_method, solve
from pdeinv.sampling.problem import MethodOptions, pde_physics

TASK = "helmholtz-inverse-64"
SHIPPED = "helmholtz-joint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv demo`` options on ``parser``."""
    parser.add_argument("--n", type=positive_int, default=2, help="number of sources to reconstruct (default 2)")
    parser.add_argument(
        "--method", default="tmpd", help=f"diffusion method, one of {', '.join(sorted(GUIDED))} (default tmpd)"
    )
    parser.add_argument("--steps", type=positive_int, default=50, help="sampling steps (default 50)")
    parser.add_argument(
        "--samples", type=positive_int, default=2, help="posterior samples per measurement (default 2)"
    )
    parser.add_argument("--prior", default=None, help=f"prior name or checkpoint directory (default {SHIPPED})")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampler")
    parser.add_argument("--out", default="pdeinv-demo", help="directory for demo.png (default ./pdeinv-demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing demo.png")


def _sources(n: int, grf) -> torch.Tensor:
    return torch.cat([grf.sample(1, sample_generator(SPLIT_SEEDS["test"], i)) for i in range(n)]).double()


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    if args.method not in GUIDED:
        try:
            parse_method(args.method)
        except ValueError as error:
            raise UsageError(str(error)) from None
        raise UsageError(
            f"the demo compares a diffusion method with its +equireg variant; {args.method!r} is not one of "
            f"{', '.join(sorted(GUIDED))}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory for demo.png")
    out.mkdir(parents=True, exist_ok=True)
    figure_path = check_outputs([out / "demo.png"], overwrite=args.overwrite)[0]
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
    from pdeinv.plot import reconstruction_panels

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
    with atomic_write(figure_path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")
    print(f"wrote {figure_path}")
    return 0
