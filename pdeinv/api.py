r"""The short path for one's own problem: ``pdeinv.reconstruct(y, physics, prior)``.

In the spirit of deepinv's ``xhat = model(y, physics)``: ``physics`` is any deepinv ``Physics``
(pdeinv's or deepinv's); what it contains says what was measured.

- ``sensor * operator`` (a point sensor, a mask, a blur... after a pdeinv PDE operator
  :math:`A`): the sensor read the *output* :math:`A(a)`; the *input* :math:`a` is recovered
  (``target="output"`` recovers the output instead).
- ``sensor`` with ``operator=A``: the sensor read the input; the output is recovered.
- ``sensor`` alone: it read the field it recovers (``target`` names which of the prior's fields).

The noise level is the sensor's ``GaussianNoise`` (``physics.noise_model``); the PDE, the field
names (the prior card's ``input_fields``/``output_fields``) and the grid follow from the operator
and the prior. The method defaults to the recommended one for the task kind, with the options of
its benchmark record (:data:`RECOMMENDED_METHODS`, docs/own-problem.md). Example, the Helmholtz source from 200 noisy
point values of the solution::

    sensor = PointObservation(64, indices=random_points(200, 64, seed=0), noise_level=1e-4)
    result = pdeinv.reconstruct(y, sensor * Helmholtz(64), prior="helmholtz-joint")
    result.mean            # (n, 1, 64, 64) source estimate, physical units
    result.save("source.nc")
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from deepinv.physics import ComposedPhysics, Physics, compose

from pdeinv.errors import UsageError
from pdeinv.sampling.methods import solve
from pdeinv.sampling.problem import (
    CHANNELS,
    ROLES,
    InverseProblem,
    MethodOptions,
    Reconstruction,
    check_pde_name,
    pde_of,
    pde_physics,
)


@dataclass(frozen=True)
class MethodChoice:
    """The recommended method of a task kind, the options it was measured with, and the measurement.

    Attributes
    ----------
    method : str
        Registered method name.
    options : dict
        ``MethodOptions`` fields it was measured with (beyond the defaults).
    result : str
        The benchmark record holding the measurement, relative to ``results/`` (a current record: its
        provenance names the commit, the prior weights and the test file).
    """

    method: str
    options: dict
    result: str


# (pde kind, direction, with a diffusion prior) -> the recommended method and its record (docs/own-problem.md).
RECOMMENDED_METHODS = {
    ("linear", "inverse", True): MethodChoice("tmpd", {"steps": 50}, "bench/helmholtz-inverse-64-tmpd-50.json"),
    ("linear", "forward", True): MethodChoice("tmpd", {"steps": 50}, "bench/helmholtz-forward-64-tmpd-50.json"),
    ("linear", "inverse", False): MethodChoice("kriging", {}, "bench/helmholtz-inverse-64-kriging.json"),
    ("linear", "forward", False): MethodChoice("kriging", {}, "bench/helmholtz-forward-64-kriging.json"),
    ("navier-stokes", "forward", True): MethodChoice(
        "fundps", {"steps": 200}, "bench/ns-forward-64-fundps-200.json"
    ),
    ("navier-stokes", "forward", False): MethodChoice("interp-solve", {}, "bench/ns-forward-64-interp-solve.json"),
    ("navier-stokes", "inverse", True): MethodChoice(
        "dwgf",
        {"method_preset": "calibrated", "steps": 100, "particle_state": "solved", "solver_dt": 1e-2},
        "bench/ns-inverse-64-dwgf-solved-100.json",
    ),
    ("darcy", "forward", True): MethodChoice(
        "tmpd-solve", {"steps": 50}, "darcy/darcy-forward-64-tmpd-solve-50-k8.json"
    ),
    ("darcy", "forward", False): MethodChoice("interp-solve", {}, "darcy/darcy-forward-interp-solve.json"),
    ("darcy", "inverse", True): MethodChoice(
        "tmpd-solve", {"steps": 50}, "darcy/darcy-inverse-64-tmpd-solve-50-k4.json"
    ),
    ("darcy", "inverse", False): MethodChoice("adjoint", {}, "darcy/darcy-inverse-64-adjoint.json"),
}

# pde -> its kind in RECOMMENDED_METHODS; every other PDE is "linear" (Helmholtz, Poisson)
METHOD_KINDS = {"navier-stokes": "navier-stokes", "darcy": "darcy"}


def recommended_method(problem: InverseProblem, with_prior: bool) -> MethodChoice:
    """The recommended method for ``problem``'s kind (linear PDE, Darcy or Navier-Stokes, forward or inverse).

    Raises
    ------
    UsageError
        For a Navier-Stokes inverse problem without a prior (no prior-free method was measured there).
    """
    kind = METHOD_KINDS.get(problem.pde, "linear")
    direction = "forward" if problem.observed == "input" else "inverse"
    if problem.observed == problem.target:
        direction = "inverse"
    choice = RECOMMENDED_METHODS.get((kind, direction, with_prior))
    if choice is None:
        raise UsageError(
            f"no prior-free method is recommended for a {problem.pde} {direction} problem; pass a prior "
            "(e.g. prior='ns-joint') or name a method (method='adjoint')"
        )
    return choice


def _factors(physics: Physics) -> list[Physics]:
    """The operators of ``physics`` in the order they act (one for a plain Physics)."""
    return list(physics.physics_list) if isinstance(physics, ComposedPhysics) else [physics]


def split_physics(physics: Physics, operator: Physics | None = None) -> tuple[Physics, Physics | None, str]:
    r"""Split ``physics`` into (sensor, PDE operator, observed role).

    ``sensor * operator`` (the operator acting first) gives ``(sensor, operator, "output")``;
    a sensor with ``operator`` given separately gives ``(sensor, operator, "input")``; a sensor alone
    ``(sensor, None, None)`` (the sensor reads the recovered field).

    Raises
    ------
    UsageError
        If ``physics`` holds several PDE operators, applies one after the sensor, or holds one
        while ``operator`` is given too.
    """
    factors = _factors(physics)
    positions = [i for i, factor in enumerate(factors) if pde_of(factor) is not None]
    if len(positions) > 1:
        raise UsageError("physics applies more than one PDE operator; compose one sensor with one operator")
    if not positions:
        if operator is not None and pde_of(operator) is None:
            raise UsageError(
                f"operator must be a pdeinv PDE operator (Helmholtz, Poisson, NavierStokes2D), got {operator!r}"
            )
        return physics, operator, None if operator is None else "input"
    if operator is not None:
        raise UsageError(
            "physics already applies a PDE operator (sensor * operator) and operator= was given too; pass one of them"
        )
    if positions[0] != 0:
        raise UsageError("the PDE operator must act first: write physics = sensor * operator")
    rest = factors[1:]
    if not rest:
        raise UsageError(
            "physics is a PDE operator without a sensor; compose the sensor that read the solution: sensor * operator"
        )
    sensor = rest[0] if len(rest) == 1 else compose(*rest)
    return sensor, factors[0], "output"


def _card_channels(prior, pde: str) -> tuple[str, str]:
    """(input, output) field names: the prior card's data attributes, else pdeinv's names for ``pde``."""
    attrs = (getattr(prior, "card", None) or {}).get("data", {}).get("attrs", {})
    inputs, outputs = attrs.get("input_fields"), attrs.get("output_fields")
    if inputs and outputs:
        return str(inputs[0]), str(outputs[0])
    return CHANNELS[pde]


def _card_pde(prior) -> str | None:
    attrs = (getattr(prior, "card", None) or {}).get("data", {}).get("attrs", {})
    return attrs.get("pde")


def _load_prior(prior, device: str):
    if prior is None or not isinstance(prior, str):
        return prior
    from pdeinv.priors import load

    return load(prior, device=device)


def build_problem(
    measurements: torch.Tensor,
    physics: Physics,
    prior=None,
    *,
    operator: Physics | None = None,
    target: str | None = None,
    observed: str | None = None,
    pde: str | None = None,
    noise_std: float | None = None,
) -> InverseProblem:
    """The :class:`InverseProblem` that :func:`reconstruct` solves (same arguments; ``prior`` already loaded)."""
    sensor, pde_operator, physics_observed = split_physics(physics, operator)
    if observed is not None and physics_observed is not None and observed != physics_observed:
        reading = "the output A(a)" if physics_observed == "output" else "the input (operator= given separately)"
        raise UsageError(
            f"observed={observed!r} contradicts physics, whose sensor reads {reading}; drop observed= "
            "(it follows from physics: sensor * operator reads the output, sensor with operator= the input)"
        )
    for name, role in (("observed", observed), ("target", target)):
        if role is not None and role not in ROLES:
            raise UsageError(f"{name} must be 'input' or 'output', got {role!r}")
    if pde_operator is None:
        pde = pde or _card_pde(prior)
        if pde is None:
            raise UsageError(
                "physics holds no PDE operator and the prior names no PDE; compose sensor * operator "
                "(e.g. PointObservation(...) * Helmholtz(S)) or pass pde="
            )
        role = target or observed
        if role is None:
            raise UsageError(
                "physics holds no PDE operator, so its sensor reads the field to recover; say which with "
                "target='input' or 'output', or compose sensor * operator"
            )
        resolution = getattr(sensor, "resolution", None) or getattr(prior, "resolution", None)
        setup = pde_physics(check_pde_name(pde), int(resolution))
        pde_operator, physics_observed, target = setup.operator, role, role
    solved = pde_of(pde_operator)
    if pde is not None and pde != solved:
        check_pde_name(pde)
        raise UsageError(
            f"pde={pde!r} contradicts the operator {pde_operator!r}, which solves the {solved} problem; "
            f"drop pde= or pass pde={solved!r}"
        )
    target = target or ("input" if physics_observed == "output" else "output")
    setup = pde_physics(solved, int(pde_operator.resolution))
    channels = _card_channels(prior, solved) if prior is not None else setup.channels
    return InverseProblem(
        pde_operator,
        sensor,
        torch.as_tensor(measurements),
        physics_observed,
        target,
        channels[0],
        channels[1],
        solved,
        setup.input_prior,
        noise_std,
        setup.grid,
    )


def reconstruct(
    measurements: torch.Tensor,
    physics: Physics,
    prior=None,
    *,
    method: str | None = None,
    operator: Physics | None = None,
    target: str | None = None,
    observed: str | None = None,
    pde: str | None = None,
    noise_std: float | None = None,
    samples: int = 8,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 4,
    device: str = "cpu",
) -> Reconstruction:
    r"""Reconstruct a field from measurements ``y`` of ``physics``; returns mean, std, samples and provenance.

    Parameters
    ----------
    measurements : torch.Tensor
        :math:`y`, physical units: ``(n, 1, M)`` for a point sensor, ``(n, *shape)`` for another
        sensor (one row per measured field).
    physics : deepinv.physics.Physics
        ``sensor * operator`` (the sensor read :math:`A(a)`), or a sensor alone (see the module
        docstring). Sensors: ``PointObservation``, pdeinv's imaging operators or deepinv's
        (``Inpainting``, ``Blur``, ``Downsampling``, ...).
    prior : str, FieldPrior or None
        Name or directory of a prior (``pdeinv.priors.shipped_priors()``) or a loaded prior;
        ``None`` for the prior-free methods (``kriging``, ``interp-solve``, ``adjoint``).
    method : str, optional
        A registered method (``pdeinv.sampling.method_names()``); default: the recommended one
        for the task (:func:`recommended_method`, with its measured options).
    operator : deepinv.physics.Physics, optional
        The PDE operator when the sensor read its *input* (a forward problem).
    target, observed : {"input", "output"}, optional
        The recovered and the measured field; inferred from ``physics``. An ``observed`` that
        contradicts ``physics`` is an error.
    pde : str, optional
        ``"helmholtz"``, ``"poisson"`` or ``"navier-stokes"``; inferred from the operator, an
        error if it disagrees.
    noise_std : float, optional
        Measurement noise std (physical units); default: the sensor's ``GaussianNoise`` sigma
        (0 without one). A value that disagrees with the sensor's is an error.
    samples, steps, seed, batch_size : int
        ``MethodOptions``: posterior samples per measurement, method steps (``None``: the
        method's default), seed, measurements per batch.
    device : str
        Where a named prior is loaded.

    Returns
    -------
    Reconstruction
        ``mean``, ``std``, ``samples`` ``(n, [K,] 1, S, S)`` of the target in physical units, with
        its problem attached: ``to_xarray()`` and ``save(path)`` work at once.

    Raises
    ------
    UsageError
        For contradicting roles, PDE or noise level, an unknown PDE or method, or a prior that
        does not model the problem's fields.
    """
    prior_name = prior if isinstance(prior, str) else None
    prior = _load_prior(prior, device)
    problem = build_problem(
        measurements, physics, prior, operator=operator, target=target, observed=observed, pde=pde, noise_std=noise_std
    )
    settings = {"steps": steps, "samples": samples, "seed": seed, "batch_size": batch_size}
    if method is None:
        choice = recommended_method(problem, prior is not None)
        method = choice.method
        settings = {**settings, **{k: v for k, v in choice.options.items() if not (k == "steps" and steps)}}
    options = MethodOptions(prior=prior, **settings)
    result = solve(method, problem, options)
    name = prior_name or ("none" if prior is None else type(prior).__name__)
    return result.describe(
        problem,
        method=method,
        prior=str(name),
        steps=-1 if options.steps is None else options.steps,
        samples=options.samples,
        seed=options.seed,
    )


__all__ = ["MethodChoice", "RECOMMENDED_METHODS", "build_problem", "recommended_method", "reconstruct", "split_physics"]
