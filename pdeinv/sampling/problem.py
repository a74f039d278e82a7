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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import deepinv
import numpy as np
import torch

from pdeinv.errors import UsageError
from pdeinv.operators.following import follow_state
from pdeinv.pdes import get_pde, pde_names, pde_of, solve_estimate
from pdeinv.sampling.terms import EQUIREG_WEIGHT

REPA_CUTOFF = 1.0  # Align & Invert term: fraction of the steps it acts in (its authors' code: every step)

PARTICLE_STATES = ("auto", "joint", "solved")
ROLES = ("input", "output")


class _Channels(Mapping):
    """Read-only view ``{pde: (input, output)}`` of the registered PDEs' channel names."""

    def __getitem__(self, pde: str) -> tuple[str, str]:
        if pde not in pde_names():
            raise KeyError(pde)
        return get_pde(pde).channels

    def __iter__(self):
        return iter(pde_names())

    def __len__(self) -> int:
        return len(pde_names())


CHANNELS = _Channels()


@dataclass(frozen=True)
class PDESetup:
    """The setting of a PDE at one resolution: operator, input GRF, field names and grid.

    Attributes
    ----------
    pde : str
        A registered PDE name (:func:`pdeinv.pdes.pde_names`).
    operator : deepinv.physics.Physics
        Input to output map.
    input_prior : pdeinv.datasets.GaussianRandomField or None
        Distribution of the inputs in the generated data (``None`` for Darcy).
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


def pde_physics(pde: str, resolution: int, settings: dict | None = None) -> PDESetup:
    """The :class:`PDESetup` of the registered ``pde`` at grid size ``resolution``.

    ``settings`` override the PDE's defaults (Navier-Stokes ``viscosity``, ``time``, ``dt``); ``None``
    values and unknown keys are ignored.

    Raises
    ------
    UsageError
        For an unknown ``pde``.
    """
    spec = get_pde(check_pde_name(pde))
    input_prior = spec.input_field(resolution) if spec.input_field is not None else None
    return PDESetup(pde, spec.build_operator(resolution, settings), input_prior, spec.channels, spec.grid)


def check_pde_name(pde: str) -> str:
    """Return ``pde`` if it is a registered PDE, else raise a one-line :class:`UsageError`."""
    if pde not in pde_names():
        raise UsageError(
            f"unknown PDE {pde!r}; pdeinv knows {', '.join(pde_names())}. Leave pde out to infer it from the "
            "operator (pdeinv.reconstruct), or build the operator with pdeinv.operators"
        )
    return pde


def declared_noise_std(sensor) -> float | None:
    r"""Standard deviation :math:`\sigma` of the sensor's Gaussian noise model, ``None`` if it declares none.

    A deepinv ``GaussianNoise(sigma)`` on ``sensor.noise_model`` (also the last factor's model
    of a composition ``sensor * operator``) with :math:`\sigma > 0` declares its level; no model,
    ``ZeroNoise`` or :math:`\sigma = 0` declares nothing.

    Raises
    ------
    UsageError
        For another noise model (Poisson, uniform, ...) or one :math:`\sigma` per sample: the
        methods model a single Gaussian level.
    """
    model = getattr(sensor, "noise_model", None)
    if model is None or isinstance(model, deepinv.physics.ZeroNoise):
        return None
    if not isinstance(model, deepinv.physics.GaussianNoise):
        raise UsageError(
            f"the sensor's noise model is {type(model).__name__}; pdeinv's methods assume additive Gaussian noise. "
            "Set sensor.noise_model = deepinv.physics.GaussianNoise(sigma) with its standard deviation"
        )
    sigma = torch.as_tensor(model.sigma)
    if sigma.numel() != 1:
        raise UsageError(
            f"the sensor's GaussianNoise has {sigma.numel()} noise levels; give one standard deviation for all samples"
        )
    value = float(sigma)
    return value if value > 0 else None


def _resolved_noise_std(explicit: float | None, sensor) -> float:
    """The noise level of a problem: the sensor's, or the explicit one; refuse a disagreement."""
    declared = declared_noise_std(sensor)
    if explicit is None:
        return declared or 0.0
    numeric = isinstance(explicit, (int, float)) and not isinstance(explicit, bool)
    if not numeric or not math.isfinite(explicit) or explicit < 0:
        raise UsageError(f"noise_std must be a finite standard deviation >= 0, got {explicit!r}")
    if declared is not None and not math.isclose(explicit, declared, rel_tol=1e-6):
        raise UsageError(
            f"noise_std={explicit!r} disagrees with the sensor's GaussianNoise(sigma={declared!r}); "
            "leave noise_std out to use the sensor's level, or change the sensor's noise model"
        )
    return float(explicit)


@dataclass
class InverseProblem:
    """A batch of measurements of one sensor (any linear or nonlinear Physics) and the physics around them.

    Parameters
    ----------
    operator : deepinv.physics.Physics
        :math:`A`: input ``(B, 1, S, S)`` to output ``(B, 1, S, S)``.
    sensor : deepinv.physics.Physics
        :math:`P`: ``(B, 1, S, S) -> (B, *shape)``: a ``PointObservation`` (``(B, 1, M)``, with
        ``n_points``) or an imaging operator (blur, mask, downsampling, Fourier magnitudes) whose
        output has any shape. A deepinv operator is replaced by a private copy whose filters and
        masks follow the dtype and device of the fields it is applied to
        (:func:`pdeinv.operators.following.follow_state`); the object passed in is not modified.
    measurements : torch.Tensor
        :math:`y`, ``(n, *shape)`` physical units, finite (``(n, 1, M)`` for point sensors).
    observed, target : {"input", "output"}
        Which field the sensor reads and which is recovered.
    input_channel, output_channel : str
        Names of the two fields in a joint prior's ``channels`` (e.g. ``"source"``, ``"solution"``).
    pde : str or None
        ``"helmholtz"``, ``"poisson"``, ``"darcy"`` or ``"navier-stokes"`` (selects method presets);
        must be the PDE the operator solves (:func:`pde_of`). ``None`` for a problem without one of
        pdeinv's PDEs (an imaging sensor alone, or an operator of one's own).
    input_prior : object, optional
        The Gaussian random field the inputs are drawn from (``covariance``, ``covariance_sqrt``,
        ``variance``), for the Gaussian baselines.
    noise_std : float, optional
        Standard deviation of the measurement noise (physical units; 0 for exact data). ``None``
        (default) takes it from the sensor's ``GaussianNoise`` (:func:`declared_noise_std`), 0 if
        the sensor declares none; an explicit value that disagrees with the sensor's is refused.
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
    pde: str | None
    input_prior: object | None = None
    noise_std: float | None = None
    grid: str = "vertex"

    def __post_init__(self) -> None:
        if self.observed not in ROLES or self.target not in ROLES:
            raise UsageError(
                f"observed and target must each be 'input' or 'output', got {self.observed!r}, {self.target!r}"
            )
        if self.pde is not None:
            check_pde_name(self.pde)
        solved = pde_of(self.operator)
        if solved is not None and solved != self.pde:
            raise UsageError(
                f"pde={self.pde!r} contradicts the operator {self.operator!r}, which solves the {solved} problem; "
                f"pass pde={solved!r} or leave it out"
            )
        self.noise_std = _resolved_noise_std(self.noise_std, self.sensor)
        self.sensor = follow_state(self.sensor)
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
        """Grid size ``S`` of the fields (the sensor's, else the operator's: deepinv sensors carry none)."""
        holder = self.sensor if hasattr(self.sensor, "resolution") else self.operator
        return int(holder.resolution)

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
        """Map a field of ``role`` to the target field (identity, or :math:`A` on the admissible inputs)."""
        if role == self.target:
            return lambda x: x
        if role == "input":
            return partial(solve_estimate, self.operator)
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
    repa_weight : float, optional
        :math:`\\lambda_\\text{repa}` of the ``+repa`` alignment term (Align & Invert's ``--l_repa``, the
        weight of the token-summed misalignment, whatever the number of steps); ``None`` takes the
        publication's value for the task (:class:`~pdeinv.latent.methods.AlignInvertConfig`).
    repa_step : float, optional
        :math:`\\eta`, Align & Invert's step size (``--learning_rate``); ``None`` takes the publication's.
    repa_cutoff : float
        Fraction of the steps in which the ``+repa`` term acts (1 by default: every step, as in its
        authors' code).
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
    method_preset : str, optional
        A named configuration of the method other than its publication's (e.g. ``"calibrated"``
        of ``dwgf``: the config class's ``presets``); ``None`` or ``"paper"``: the publication's.
    method_options : mapping or sequence of (key, value) pairs
        Fields of the method's configuration dataclass to set, applied after the preset and
        ``steps`` (values as text, ``"0.9,0.999"`` for a tuple, or typed);
        :func:`pdeinv.sampling.methods.configure` checks them.
    """

    steps: int | None = None
    samples: int = 1
    seed: int = 0
    prior: object | None = None
    batch_size: int = 4
    equireg: str | None = None
    equireg_weight: float = EQUIREG_WEIGHT
    repa_weight: float | None = None
    repa_step: float | None = None
    repa_cutoff: float = REPA_CUTOFF
    particle_state: str = "auto"
    solver_dt: float | None = None
    method_preset: str | None = None
    method_options: object = ()

    def __post_init__(self) -> None:
        for name in ("samples", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}")
        if not self.equireg_weight > 0:
            raise ValueError(f"equireg_weight must be positive, got {self.equireg_weight!r}")
        if self.repa_weight is not None and not self.repa_weight >= 0:
            raise ValueError(f"repa_weight must be non-negative or None, got {self.repa_weight!r}")
        if self.repa_step is not None and not self.repa_step > 0:
            raise ValueError(f"repa_step must be positive or None, got {self.repa_step!r}")
        if not 0 <= self.repa_cutoff <= 1:
            raise ValueError(f"repa_cutoff must be a fraction of the steps in [0, 1], got {self.repa_cutoff!r}")
        if self.particle_state not in PARTICLE_STATES:
            raise ValueError(f"unknown particle state {self.particle_state!r}; choose one of {PARTICLE_STATES}")
        dt = self.solver_dt
        if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < math.inf):
            raise ValueError(f"solver_dt must be a positive time step or None, got {self.solver_dt!r}")
        pairs = self.method_options.items() if isinstance(self.method_options, Mapping) else self.method_options
        try:
            pairs = tuple((str(key), value) for key, value in pairs)
        except (TypeError, ValueError):
            raise ValueError(
                f"method_options must be a mapping or (key, value) pairs, got {self.method_options!r}"
            ) from None
        object.__setattr__(self, "method_options", pairs)


@dataclass
class Reconstruction:
    """What a method returns for ``n`` measurements, and what it was computed from.

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
    problem : InverseProblem, optional
        The problem it solves (grid, sensor, measurements); set by :meth:`describe`.
    provenance : dict
        Method, prior and settings (str, int or float values), stored as netCDF attributes.
    """

    mean: torch.Tensor
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    nfe: int = 0
    problem: InverseProblem | None = None
    provenance: dict = dataclasses.field(default_factory=dict)

    def describe(self, problem: InverseProblem, **provenance) -> Reconstruction:
        """The same result with its ``problem`` and ``provenance`` (method, prior, ...) attached."""
        return dataclasses.replace(self, problem=problem, provenance={**self.provenance, **provenance})

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` on the operator's grid.

        Variables: ``mean`` and ``std`` ``(measurement, x, y)``, ``samples``
        ``(measurement, sample, x, y)`` (physical units); ``measurements`` ``(measurement, point)``
        with the point locations ``point_x``, ``point_y`` in :math:`[0, 1]^2` for a point sensor,
        ``(measurement, value)`` (flattened) for another sensor. Coordinates ``x``, ``y``: the
        vertex grid :math:`i/(S-1)` or the periodic grid :math:`i/S`. Attributes: the PDE, the
        observed and recovered fields, the noise level, the sensor, the NFE and :attr:`provenance`.

        Raises
        ------
        UsageError
            If no problem is attached (see :meth:`describe`).
        """
        import xarray as xr

        from pdeinv import __version__
        from pdeinv.datasets.schema import coordinates

        problem = self.problem
        if problem is None:
            raise UsageError(
                "this Reconstruction does not know its problem; use pdeinv.reconstruct(...) or "
                "reconstruction.describe(problem, method=...) before to_xarray()/save()"
            )
        axis = coordinates(problem.grid, problem.resolution).astype(np.float64)
        fields = ("measurement", "x", "y")
        variables = {"mean": (fields, _numpy(self.mean[:, 0]))}
        if self.std is not None:
            variables["std"] = (fields, _numpy(self.std[:, 0]))
        if self.samples is not None:
            variables["samples"] = (("measurement", "sample", "x", "y"), _numpy(self.samples[:, :, 0]))
        y = problem.measurements
        if hasattr(problem.sensor, "coordinates"):
            points = problem.sensor.coordinates.numpy()
            variables["measurements"] = (("measurement", "point"), _numpy(y[:, 0]))
            variables["point_x"], variables["point_y"] = ("point", points[:, 0]), ("point", points[:, 1])
        else:
            variables["measurements"] = (("measurement", "value"), _numpy(y.flatten(1)))
        attributes = {
            "pde": problem.pde,
            "grid": problem.grid,
            "observed_field": problem.channel(problem.observed),
            "recovered_field": problem.channel(problem.target),
            "noise_std": float(problem.noise_std),
            "sensor": type(problem.sensor).__name__,
            "nfe": int(self.nfe),
            "pdeinv_version": __version__,
        }
        attributes.update({key: _attribute(value) for key, value in self.provenance.items()})
        return xr.Dataset(variables, coords={"x": axis, "y": axis}, attrs=attributes)

    def save(self, path) -> Path:
        """Write :meth:`to_xarray` to ``path`` as netCDF-4 (HDF5), atomically (temporary file + rename).

        Read it back with ``xarray.open_dataset(path, engine="h5netcdf")``.
        """
        from pdeinv.files import atomic_write

        path = Path(path)
        dataset = self.to_xarray()
        with atomic_write(path) as temporary:
            dataset.to_netcdf(temporary, engine="h5netcdf")
        return path


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


def _attribute(value):
    """A netCDF attribute value: numbers and strings as they are, ``None`` as ``"none"``, anything else as str."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return "none" if value is None else str(value)
