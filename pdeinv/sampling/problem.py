r"""What every reconstruction method is given: a field-recovery problem with point observations.

The physics is a forward operator :math:`A` from an *input* field (source, initial vorticity) to
an *output* field (solution, final vorticity). One of them, the *observed* field, is read by a
point sensor :math:`P`, giving measurements :math:`y = P\,f_\text{obs}` (physical units); the
*target* field is to be recovered. Forward problems observe the input and recover the output,
inverse problems the reverse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import deepinv
import torch

from pdeinv.datasets import helmholtz_source_grf, ns_vorticity_grf
from pdeinv.operators import Helmholtz, NavierStokes2D
from pdeinv.sampling.terms import EQUIREG_WEIGHT

REPA_WEIGHT = 0.05  # Align & Invert term: lambda = REPA_WEIGHT * 1000 / steps
REPA_CUTOFF = 0.3  # fraction of the steps whose proxy is the measurement-pasted estimate

PARTICLE_STATES = ("auto", "joint", "solved")
ROLES = ("input", "output")
CHANNELS = {
    "helmholtz": ("source", "solution"),
    "poisson": ("source", "solution"),
    "navier-stokes": ("vorticity[0]", "vorticity[-1]"),
}


@dataclass(frozen=True)
class Physics:
    """The physics of a PDE at one resolution: operator, input GRF, field names and grid.

    Attributes
    ----------
    pde : str
        ``"helmholtz"`` (k = 1), ``"poisson"`` (k = 0) or ``"navier-stokes"``.
    operator : deepinv.physics.Physics
        Input to output map.
    input_prior : pdeinv.datasets.GaussianRandomField
        Distribution of the inputs in the generated data.
    channels : tuple of str
        (input, output) field names of the data files and joint priors.
    grid : str
        ``"vertex"`` or ``"periodic"``.
    """

    pde: str
    operator: object
    input_prior: object
    channels: tuple[str, str]
    grid: str


def pde_physics(pde: str, resolution: int, settings: dict | None = None) -> Physics:
    """The :class:`Physics` of ``pde``; Navier-Stokes reads ``viscosity``, ``time``, ``dt`` from ``settings``.

    Raises
    ------
    ValueError
        For an unknown ``pde``.
    """
    if pde not in CHANNELS:
        raise ValueError(f"unknown PDE {pde!r}; choose one of {', '.join(CHANNELS)}")
    if pde == "navier-stokes":
        settings = settings or {}
        operator = NavierStokes2D(
            resolution,
            viscosity=settings.get("viscosity") or 1e-3,
            time=settings.get("time") or 1.0,
            dt=settings.get("dt") or 1e-4,
        )
        return Physics(pde, operator, ns_vorticity_grf(resolution), CHANNELS[pde], "periodic")
    operator = Helmholtz(resolution, k=1.0 if pde == "helmholtz" else 0.0)
    return Physics(pde, operator, helmholtz_source_grf(resolution), CHANNELS[pde], "vertex")


@dataclass
class InverseProblem:
    """A batch of measurements of one point sensor and the physics around them.

    Parameters
    ----------
    operator : deepinv.physics.Physics
        :math:`A`: input ``(B, 1, S, S)`` to output ``(B, 1, S, S)``.
    sensor : deepinv.physics.Physics
        :math:`P`: ``(B, 1, S, S) -> (B, *shape)``: a ``PointObservation`` (``(B, 1, M)``, with
        ``n_points``) or an imaging operator (blur, mask, downsampling, Fourier magnitudes) whose
        output has any shape.
    measurements : torch.Tensor
        :math:`y`, ``(n, *shape)`` physical units, finite (``(n, 1, M)`` for point sensors).
    observed, target : {"input", "output"}
        Which field the sensor reads and which is recovered.
    input_channel, output_channel : str
        Names of the two fields in a joint prior's ``channels`` (e.g. ``"source"``, ``"solution"``).
    pde : str
        ``"helmholtz"``, ``"poisson"`` or ``"navier-stokes"`` (selects method presets).
    input_prior : object, optional
        The Gaussian random field the inputs are drawn from (``covariance``, ``covariance_sqrt``,
        ``variance``), for the Gaussian baselines.
    noise_std : float
        Standard deviation of the measurement noise (physical units; 0 for exact data).
    grid : {"vertex", "periodic"}
        Grid of the fields, for interpolation.
    """

    operator: object
    sensor: object
    measurements: torch.Tensor
    observed: str
    target: str
    input_channel: str
    output_channel: str
    pde: str
    input_prior: object | None = None
    noise_std: float = 0.0
    grid: str = "vertex"

    def __post_init__(self) -> None:
        if self.observed not in ROLES or self.target not in ROLES:
            raise ValueError(f"observed and target must be one of {ROLES}, got {self.observed!r}, {self.target!r}")
        y = self.measurements
        points = hasattr(self.sensor, "n_points")
        if not isinstance(y, torch.Tensor) or y.ndim < 2 or (points and (y.ndim != 3 or y.shape[1] != 1)):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            expected = "(n, 1, M) for a point sensor" if points else "(n, ...) with one row per measurement"
            raise ValueError(f"measurements must be a tensor of shape {expected}, got {shape}")
        if points and y.shape[-1] != self.sensor.n_points:
            raise ValueError(
                f"measurements hold {y.shape[-1]} values per sample but the sensor has {self.sensor.n_points} "
                "points; the mask/points and the measurement vector must describe the same sensors"
            )
        if not torch.isfinite(y).all():
            raise ValueError("measurements contain NaN or infinite values; remove those sensors from the mask")

    @property
    def linear(self) -> bool:
        """``True`` when the forward operator :math:`A` is a deepinv ``LinearPhysics`` (Helmholtz, Poisson)."""
        return isinstance(self.operator, deepinv.physics.LinearPhysics)

    @property
    def resolution(self) -> int:
        """Grid size ``S``."""
        return int(self.sensor.resolution)

    @property
    def measurement_size(self) -> int:
        """Number of measured values per sample, ``M`` (the product of ``measurements.shape[1:]``)."""
        return int(self.measurements[0].numel())

    @property
    def n(self) -> int:
        """Number of measurement vectors."""
        return int(self.measurements.shape[0])

    def channel(self, role: str) -> str:
        """The prior channel name of ``"input"`` or ``"output"``."""
        return self.input_channel if role == "input" else self.output_channel

    def to_target(self, role: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """Map a field of ``role`` to the target field (identity or :math:`A`)."""
        if role == self.target:
            return lambda x: x
        if role == "input":
            return self.operator.A
        raise ValueError("the target is the input, which cannot be computed from the output by a forward solve")

    def check_prior(self, prior) -> None:
        """Raise a clear error unless ``prior`` is a joint prior over this problem's fields usable at its resolution."""
        if prior is None:
            raise ValueError("diffusion methods need a prior; pass --prior NAME (see pdeinv.priors.shipped_priors())")
        needed = (self.input_channel, self.output_channel)
        if any(c not in prior.channels for c in needed):
            raise ValueError(
                f"the prior models the fields {tuple(prior.channels)}, but this {self.pde} problem needs a joint "
                f"prior over {needed}; use a prior trained on {self.pde} data"
            )
        if prior.resolution != self.resolution and not prior.resolution_free:
            raise ValueError(
                f"the prior was trained at {prior.resolution} x {prior.resolution} but the problem is "
                f"{self.resolution} x {self.resolution} and its network is tied to its grid; use a function-space "
                "(fno) prior, a prior trained at this resolution, or the matching task"
            )

    def with_solver_dt(self, dt: float) -> InverseProblem:
        """The same problem with its time-stepped operator solved at step ``dt`` (see ``MethodOptions.solver_dt``).

        Raises
        ------
        ValueError
            If the operator has no time step (Helmholtz, Poisson, the imaging operators).
        """
        if not hasattr(self.operator, "with_time_step"):
            raise ValueError(
                f"solver_dt sets the time step of a time-dependent PDE; the {self.pde} operator "
                f"{type(self.operator).__name__} has none. Drop --solver-dt"
            )
        return dataclasses.replace(self, operator=self.operator.with_time_step(dt))

    def select(self, indices: torch.Tensor) -> InverseProblem:
        """The same problem restricted to measurement rows ``indices``."""
        return dataclasses.replace(self, measurements=self.measurements[indices])


@dataclass(frozen=True)
class MethodOptions:
    """Run settings shared by every method.

    Parameters
    ----------
    steps : int, optional
        Sampling steps (diffusion methods) or optimiser iterations (``adjoint``); ``None`` uses
        the method's default.
    samples : int
        Posterior samples per measurement (diffusion methods); the reconstruction is their mean.
    seed : int
        Seed of the method's ``torch.Generator``.
    prior : object, optional
        The diffusion prior (``pdeinv.priors.load(...)``); required by diffusion methods.
    batch_size : int
        Measurements processed together (each with ``samples`` chains).
    equireg : str, optional
        Add the EquiReg term on the group named by this method suffix (``"+equireg"``: the
        operator's symmetries; ``"+equireg-d4"``: plain D4); ``None`` for none.
    equireg_weight : float
        Weight of the EquiReg term (0.01, EquiReg's published ``equi_alpha``, by default).
    repa_weight : float
        Weight of the ``+repa`` alignment term per 1000 steps: :math:`\\lambda = w \\cdot 1000/N`
        (0.05 by default).
    repa_cutoff : float
        Fraction of the steps in which the ``+repa`` proxy is the estimate with the measured values
        pasted in; the current reconstruction afterwards (0.3 by default).
    particle_state : {"auto", "joint", "solved"}
        State of the particle methods on a field-space joint prior: ``"solved"`` parametrises the
        particles by the input field and decodes them to ``(a, A a)``, ``"joint"`` keeps both
        channels free, ``"auto"`` solves for a linear operator
        (:func:`pdeinv.sampling.particles.methods.state_space`).
    solver_dt : float, optional
        Time step of every solve of a time-dependent operator (Navier-Stokes) that the method runs
        itself: the adjoint inversion's iterations, a solved particle state, a forward task's
        final solve. ``None`` keeps the operator's own step (the test data's ``1e-4``); ``1e-2``
        is 100x cheaper and changes ``w(T)`` by about 3e-4 relative (docs/studies/performance.md).
    """

    steps: int | None = None
    samples: int = 1
    seed: int = 0
    prior: object | None = None
    batch_size: int = 4
    equireg: str | None = None
    equireg_weight: float = EQUIREG_WEIGHT
    repa_weight: float = REPA_WEIGHT
    repa_cutoff: float = REPA_CUTOFF
    particle_state: str = "auto"
    solver_dt: float | None = None

    def __post_init__(self) -> None:
        for name in ("samples", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}")
        if not self.equireg_weight > 0:
            raise ValueError(f"equireg_weight must be positive, got {self.equireg_weight!r}")
        if not self.repa_weight >= 0:
            raise ValueError(f"repa_weight must be non-negative, got {self.repa_weight!r}")
        if not 0 <= self.repa_cutoff <= 1:
            raise ValueError(f"repa_cutoff must be a fraction of the steps in [0, 1], got {self.repa_cutoff!r}")
        if self.particle_state not in PARTICLE_STATES:
            raise ValueError(f"unknown particle state {self.particle_state!r}; choose one of {PARTICLE_STATES}")
        dt = self.solver_dt
        if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < math.inf):
            raise ValueError(f"solver_dt must be a positive time step or None, got {self.solver_dt!r}")


@dataclass
class Reconstruction:
    """What a method returns for ``n`` measurements.

    Attributes
    ----------
    mean : torch.Tensor
        The reconstruction of the target field, ``(n, 1, S, S)`` physical units (the posterior
        mean estimate: sample mean, kriging mean or optimiser output).
    std : torch.Tensor, optional
        Pointwise posterior standard deviation ``(n, 1, S, S)`` (sample std or exact kriging std).
    samples : torch.Tensor, optional
        Posterior samples of the target, ``(n, K, 1, S, S)``.
    nfe : int
        Network evaluations per posterior sample (0 for methods without a network).
    """

    mean: torch.Tensor
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    nfe: int = 0
