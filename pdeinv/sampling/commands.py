"""``pdeinv solve``: reconstruct fields from your own measurement file.

Usage::

    pdeinv solve --measurements FILE.npz|FILE.h5 [--prior NAME] [--method M] [--steps K]
                 [--method-preset NAME] [--method-option KEY=VALUE ...]
                 [--samples K] [--seed S] [--pde PDE] [--observe input|output] [--noise-std S]
                 [--device cpu] --out RESULT.h5|RESULT.nc [--figure RESULT.png] [--overwrite]

The measurement format is described in :mod:`pdeinv.sampling.measurements`. The result is a
netCDF-4/HDF5 file (readable by ``xarray.open_dataset(path, engine="h5netcdf")``) holding, for
the recovered field (the one not observed), ``mean`` ``(measurement, x, y)``, ``std`` and
``samples`` ``(measurement, sample, x, y)``, the measurements and sensor coordinates, and as
attributes the method, prior, PDE, fields, steps and NFE (:meth:`Reconstruction.save`). The PNG
shows the first measurement. Without ``--method`` the best measured method for the task kind is
used (:data:`pdeinv.api.RECOMMENDED_METHODS`: with ``--prior`` the best diffusion method, without
one the best prior-free method; the documentation's "own problem" page has the table). Both outputs are checked before the work (an existing file is refused unless ``--overwrite``,
the measurement file is never overwritten) and each is written in one rename.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pdeinv.arguments import (
    check_device,
    device,
    key_value,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from pdeinv.errors import NonFiniteError, UsageError
from pdeinv.files import atomic_write, check_outputs
from pdeinv.operators import PointObservation
from pdeinv.priors import load
from pdeinv.sampling.measurements import MeasurementSet, read_measurements
from pdeinv.sampling.methods import BASELINES, configure, method_names, parse_method, solve
from pdeinv.sampling.problem import (
    CHANNELS,
    PARTICLE_STATES,
    InverseProblem,
    MethodOptions,
    Reconstruction,
    pde_physics,
)


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--particle-state``, ``--solver-dt``, ``--method-preset`` and ``--method-option`` (``MethodOptions``).

    Shared by ``pdeinv solve`` and ``pdeinv bench``.
    """
    parser.add_argument(
        "--method-preset", default=None, metavar="NAME",
        help="a named configuration of the method instead of its publication's, e.g. 'calibrated' for "
        "dwgf and rlsd (default: the publication's, 'paper')",
    )
    parser.add_argument(
        "--method-option", dest="method_options", action="append", type=key_value, default=[],
        metavar="KEY=VALUE",
        help="set a field of the method's configuration (repeatable), e.g. --method-option lr=0.5 "
        "--method-option betas=0.9,0.999; the fields are listed in docs/methods.md and in the error "
        "for an unknown key; recorded in the run's method_config",
    )
    parser.add_argument(
        "--particle-state", choices=PARTICLE_STATES, default=MethodOptions.particle_state,
        help="particle methods on a joint prior: 'solved' = particles are input fields decoded to (a, A a), "
        "'joint' = both channels free, 'auto' = solved for a linear PDE (default)",
    )
    parser.add_argument(
        "--solver-dt", type=positive_float, default=MethodOptions.solver_dt,
        help="time step of the method's own Navier-Stokes solves (adjoint iterations, solved particle "
        "state, forward tasks' final solve); default: the data's step. 1e-2 is 100x cheaper than 1e-4",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv solve`` options on ``parser``."""
    parser.add_argument("--measurements", required=True, help="measurement file (.npz or .h5)")
    parser.add_argument("--prior", default=None, help="prior name or checkpoint directory (diffusion methods)")
    parser.add_argument(
        "--method", default=None,
        help=f"one of {', '.join(method_names())} (default: the best measured method for the task kind)",
    )
    parser.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: the method's)")
    parser.add_argument(
        "--samples", type=positive_int, default=8, help="posterior samples per measurement (default 8)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--pde", default=None, choices=tuple(CHANNELS), help="the physics (overrides the file)")
    parser.add_argument("--observe", default=None, choices=("input", "output"), help="which field was measured")
    parser.add_argument(
        "--noise-std", type=non_negative_float, default=None, help="measurement noise std (physical units)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=4)
    add_solver_arguments(parser)
    parser.add_argument("--device", type=device, default="cpu")
    parser.add_argument("--out", required=True, help="result file (.h5 or .nc)")
    parser.add_argument("--figure", default=None, help="PNG figure (default: the result path with .png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out / --figure files")


def build_problem(measurements: MeasurementSet, prior) -> InverseProblem:
    """The :class:`InverseProblem` of a measurement file (checks the mask against the prior's grid)."""
    if prior is not None and prior.resolution != measurements.resolution:
        raise ValueError(
            f"the sensor mask/indices describe a {measurements.resolution} x {measurements.resolution} grid, but the "
            f"prior works at {prior.resolution} x {prior.resolution}; give the mask on the prior's grid"
        )
    physics = pde_physics(measurements.pde, measurements.resolution)
    sensor = PointObservation(measurements.resolution, indices=measurements.indices, grid=physics.grid)
    target = "output" if measurements.observed == "input" else "input"
    return InverseProblem(
        physics.operator,
        sensor,
        measurements.values,
        measurements.observed,
        target,
        physics.channels[0],
        physics.channels[1],
        measurements.pde,
        physics.input_prior,
        measurements.noise_std,
        physics.grid,
    )


def _figure(problem: InverseProblem, reconstruction: Reconstruction, path: Path, field: str) -> Path:
    """Save the posterior of the first measurement: samples, mean and std (or the mean alone)."""
    from pdeinv.plot import field_grid, sample_grid

    title = f"{problem.pde}: {field} given {problem.channel(problem.observed)} at {problem.sensor.n_points} points"
    if reconstruction.samples is not None and reconstruction.samples.shape[1] >= 2:
        figure = sample_grid(reconstruction.samples[0, :, :1], title=title)
    else:
        figure = field_grid({f"{field}: estimate": reconstruction.mean[0, 0]}, title=title)
    with atomic_write(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    return path


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    from pdeinv.api import recommended_method

    method = args.method
    try:
        base = parse_method(method)[0] if method is not None else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = Path(args.out)
    figure_path = Path(args.figure) if args.figure else out.with_suffix(".png")
    if figure_path == out:
        raise UsageError(f"--figure and --out are the same file {out}; give the figure a .png path")
    check_outputs([out, figure_path], inputs=[args.measurements], overwrite=args.overwrite)
    check_device(args.device)
    measurements = read_measurements(args.measurements, pde=args.pde, observed=args.observe, noise_std=args.noise_std)
    needs_prior = base is not None and (base not in BASELINES or base == "deepinv-dps")
    if needs_prior and args.prior is None:
        raise UsageError(f"method {method!r} needs a diffusion prior; pass --prior NAME or a directory")
    uses_prior = args.prior is not None and (base is None or needs_prior)
    prior = load(args.prior, device=args.device) if uses_prior else None
    problem = build_problem(measurements, prior)
    settings = {
        "particle_state": args.particle_state, "solver_dt": args.solver_dt, "steps": args.steps,
        "method_preset": args.method_preset, "method_options": tuple(args.method_options),
    }
    if method is None:
        choice = recommended_method(problem, prior is not None)
        method = choice.method
        settings.update({k: v for k, v in choice.options.items() if settings[k] == getattr(MethodOptions, k)})
        print(f"method: {method} (best measured for this task, results/{choice.result}; choose with --method)")
    options = MethodOptions(samples=args.samples, seed=args.seed, prior=prior, batch_size=args.batch_size, **settings)
    try:
        configure(method, problem, options)
    except ValueError as error:
        raise UsageError(str(error)) from None
    reconstruction = solve(method, problem, options)
    if not torch.isfinite(reconstruction.mean).all():
        raise NonFiniteError(f"the reconstruction with {method} holds NaN or infinite values; nothing was written")
    field = problem.channel(problem.target)
    attributes = {
        "method": method,
        "prior": str(args.prior),
        "pde": problem.pde,
        "observed_field": problem.channel(problem.observed),
        "recovered_field": field,
        "steps": -1 if args.steps is None else args.steps,
    }
    reconstruction.describe(problem, **attributes).save(out)
    _figure(problem, reconstruction, figure_path, field)
    print(f"recovered {field} for {problem.n} measurement(s) with {method} (NFE {reconstruction.nfe})")
    print(f"wrote {out}")
    print(f"wrote {figure_path}")
    return 0
