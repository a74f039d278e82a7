"""The settings that define a generated data set: :class:`GenerationConfig` and :func:`make_config`.

Kept apart from :mod:`pdeinv.datasets.generate` (which needs torch and the solvers) so that the
command line can describe and validate the settings without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdeinv.pdes import get_pde

GENERATOR_VERSION = 1
NS_DEFAULTS = get_pde("navier-stokes").defaults
SOLVER_BATCH = 16


@dataclass(frozen=True)
class GenerationConfig:
    """The settings that define a generated data set (batch size and device do not).

    Parameters
    ----------
    pde : str
        Which pairs to generate: a registered PDE (:func:`pdeinv.pdes.pde_names`).
    resolution : int
        Grid points per side ``S >=`` the PDE's ``min_resolution`` (Navier-Stokes 4, the others 3).
    n : int
        Number of samples.
    seed : int
        Data-set seed; sample ``i`` uses ``sample_generator(seed, i)``.
    k : float, optional
        Helmholtz wavenumber (1 for ``helmholtz``, 0 for ``poisson``; ``None`` for Darcy and Navier-Stokes).
    viscosity, time, dt : float, optional
        Navier-Stokes viscosity, final time ``T`` and time step (``None`` for Helmholtz/Poisson).
    solver_batch : int
        Size ``G`` of the fixed solver groups (module doc); part of the data's definition.
    generator_version : int
        Version of this generator; files from another version are never mixed.
    """

    pde: str
    resolution: int
    n: int
    seed: int
    k: float | None = None
    viscosity: float | None = None
    time: float | None = None
    dt: float | None = None
    solver_batch: int = SOLVER_BATCH
    generator_version: int = GENERATOR_VERSION


def make_config(
    pde: str,
    resolution: int,
    n: int,
    seed: int,
    *,
    viscosity: float | None = None,
    time: float | None = None,
    dt: float | None = None,
    solver_batch: int = SOLVER_BATCH,
) -> GenerationConfig:
    """Validate the settings and fill the defaults of ``pde`` (its ``k``, or viscosity 1e-3, T = 1, dt = 1e-4).

    Raises
    ------
    ValueError
        Unknown ``pde``, non-positive ``resolution``/``n``, negative ``seed``, non-positive
        Navier-Stokes settings, or Navier-Stokes settings given for Helmholtz/Poisson.
    """
    spec = get_pde(pde)
    minimum = spec.min_resolution
    checks = (("resolution", resolution, minimum), ("n", n, 1), ("seed", seed, 0), ("solver_batch", solver_batch, 1))
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    ns_settings = {"viscosity": viscosity, "time": time, "dt": dt}
    if not set(ns_settings) <= set(spec.defaults):
        given = [f"--{name}" for name, value in ns_settings.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to navier-stokes, not {pde}; drop them")
        return GenerationConfig(pde, resolution, n, seed, k=spec.defaults.get("k"), solver_batch=solver_batch)
    settings = {name: spec.defaults[name] if value is None else float(value) for name, value in ns_settings.items()}
    for name, value in settings.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return GenerationConfig(pde, resolution, n, seed, **settings, solver_batch=solver_batch)
