r"""Benchmark tasks: operator + point sensor + test-set file + metric.

``{helmholtz,poisson,darcy,ns}-{forward,inverse}`` run at 128 x 128 with 500 points; the ``-64``
variants at 64 x 64 with 3 % of the points (123). Forward tasks observe the input (source,
initial vorticity) and recover the output (solution, final vorticity); inverse tasks the reverse.
The points are drawn once, :func:`~pdeinv.operators.observation.random_points` with seed
``POINT_SEEDS[direction]`` (DiffusionPDE's seeds: 1 for the input, 0 for the output), over the
whole grid. Measurements are exact (noise-free), as in the published protocol.

Imaging tasks on Navier-Stokes fields (``ns-deblur``, ``ns-inpaint-box``, ``ns-inpaint-random``,
``ns-sr4``, ``ns-phase-retrieval``, at 128 x 128 and with ``-64`` at 64 x 64) degrade the *final
vorticity* ``vorticity[-1]`` of the Navier-Stokes test set with an imaging operator and recover the
same field (observed = target = ``"output"``), :math:`y = A(w_T) + \sigma \varepsilon`, with the
noise level :math:`\sigma` = ``IMAGING_NOISE`` = 0.01 (vorticity units, about 5 % of the field's
standard deviation of 0.19) fixed in the task. The noise of sample ``i`` is drawn from
``sample_generator(IMAGING_NOISE_SEED, i)``, so it does not depend on ``n``; for inpainting it is
zero on hidden points (:math:`y = m \odot (x + \sigma\varepsilon)`). Operators (lengths scale
with ``S`` so both tiers see the same physical degradation):

- ``ns-deblur``: Gaussian blur, :math:`\sigma_\text{blur} = 3 S / 128` grid points, ``(B, 1, S, S)``;
- ``ns-inpaint-box``: the centred square of side ``S/2`` hidden, ``(B, 1, S, S)``;
- ``ns-inpaint-random``: 20 % of the points kept (mask seed 0), ``(B, 1, S, S)``;
- ``ns-sr4``: Gaussian anti-aliasing (2 points) and 4x decimation, ``(B, 1, S/4, S/4)``;
- ``ns-phase-retrieval``: magnitudes of the unitary DFT, two-fold oversampled, ``(B, 1, 2S, 2S)``.

Metric: relative L2 error :math:`\|\hat x - x\|_2 / \|x\|_2` per test sample on the recovered field,
except ``darcy-inverse`` (and ``-64``), whose target is the binary permeability (3 or 12): its metric is
the *error rate*, the fraction of grid nodes whose class differs after thresholding the estimate
and the truth at 7.5 (:func:`error_rate`), as DiffusionPDE and FunDPS report it.

Test sets are HDF5 files of ``pdeinv data generate`` with the test seed; by default
``$PDEINV_DATA/<pde>_<S>_test.h5`` (``PDEINV_DATA`` defaults to ``./data``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import torch

from pdeinv.datasets import FieldDataset
from pdeinv.datasets.schema import generation_config
from pdeinv.datasets.seeding import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS
from pdeinv.errors import NonFiniteError, PdeinvError
from pdeinv.metrics import relative_l2
from pdeinv.operators import (
    BoxInpainting,
    Downsampling,
    FourierPhaseRetrieval,
    GaussianBlur,
    PointObservation,
    RandomInpainting,
    random_points,
)
from pdeinv.operators.inpainting import MaskedInpainting
from pdeinv.pdes import get_pde
from pdeinv.pdes.darcy import DARCY_THRESHOLD
from pdeinv.sampling.problem import InverseProblem, pde_physics

PDES = {"helmholtz": "helmholtz", "poisson": "poisson", "darcy": "darcy", "ns": "navier-stokes"}
POINT_SEEDS = {"forward": 1, "inverse": 0}
FULL_RESOLUTION, FULL_POINTS = 128, 500
SMALL_RESOLUTION, SMALL_FRACTION = 64, 0.03
IMAGING_NOISE, IMAGING_NOISE_SEED = 0.01, 7
IMAGING = ("deblur", "inpaint-box", "inpaint-random", "sr4", "phase-retrieval")


@dataclass(frozen=True)
class Task:
    """One benchmark task (see the module docstring).

    Parameters
    ----------
    name : str
        Task name, e.g. ``"helmholtz-inverse-64"``.
    pde : {"helmholtz", "poisson", "darcy", "navier-stokes"}
        The physics.
    direction : {"forward", "inverse"}
        Observe the input and recover the output, or the reverse.
    resolution : int
        Grid size ``S``.
    n_points : int
        Number of observed grid points.
    """

    name: str
    pde: str
    direction: str
    resolution: int
    n_points: int

    @property
    def observed(self) -> str:
        """``"input"`` (forward) or ``"output"`` (inverse)."""
        return "input" if self.direction == "forward" else "output"

    @property
    def target(self) -> str:
        """The recovered field, ``"output"`` (forward) or ``"input"`` (inverse)."""
        return "output" if self.direction == "forward" else "input"

    @property
    def grid(self) -> str:
        """The PDE's grid: ``"periodic"`` for Navier-Stokes, ``"vertex"`` otherwise."""
        return get_pde(self.pde).grid

    @property
    def channels(self) -> tuple[str, str]:
        """Names of the (input, output) fields in the data files and joint priors."""
        return get_pde(self.pde).channels

    @property
    def metric_name(self) -> str:
        """``"error_rate"`` for the binary Darcy permeability, ``"rel_l2"`` otherwise."""
        return "error_rate" if (self.pde, self.target) == ("darcy", "input") else "rel_l2"

    def metric(self, estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Per-sample error of ``(n, ...)`` estimates of the target field, ``(n,)`` float64 (:attr:`metric_name`)."""
        return error_rate(estimate, truth) if self.metric_name == "error_rate" else relative_l2(estimate, truth)

    def sensor(self) -> PointObservation:
        """The fixed point sensor of the task."""
        points = random_points(self.n_points, self.resolution, seed=POINT_SEEDS[self.direction])
        return PointObservation(self.resolution, indices=points, grid=self.grid)

    def default_data(self) -> Path:
        """``$PDEINV_DATA/<pde>_<S>_test.h5``."""
        return Path(os.environ.get("PDEINV_DATA", "data")) / f"{self.pde}_{self.resolution}_test.h5"

    def generate_command(self, path: Path, n: int = 64) -> str:
        """The command that writes this task's test set to ``path``."""
        return (
            f"pdeinv data generate {self.pde} --resolution {self.resolution} --n {n} "
            f"--seed {SPLIT_SEEDS['test']} --out {path}"
        )

    def load_test_set(self, path: str | Path | None, n: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The first ``n`` (input, output) pairs of the test file, physical float64 ``(n, 1, S, S)`` each.

        Also returns the file's generation settings. Raises FileNotFoundError with the
        generate command when the file is missing, ValueError when it holds other data,
        :class:`~pdeinv.errors.NonFiniteError` naming the first sample with a NaN or infinity, and
        :class:`~pdeinv.errors.PdeinvError` naming the first sample with a field that is zero everywhere.
        """
        path = self.default_data() if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"the test set {path} of task {self.name} does not exist; create it with\n  "
                f"{self.generate_command(path, max(n, 64))}\n(or pass --data FILE)"
            )
        with h5py.File(path, "r") as f:
            pde, resolution = str(f.attrs.get("pde", "")), int(f.attrs.get("resolution", -1))
            settings = generation_config(f)
        if pde != self.pde or resolution != self.resolution:
            raise ValueError(
                f"{path} holds {pde or 'unknown'} data at {resolution} x {resolution}, but task {self.name} needs "
                f"{self.pde} at {self.resolution} x {self.resolution}; create it with\n  {self.generate_command(path)}"
            )
        data = FieldDataset(path, channels=self.channels, normalize=False)
        if len(data) < n:
            raise ValueError(f"{path} has {len(data)} samples but --n {n} were requested; lower --n or regenerate")
        pairs = torch.stack([data[i] for i in range(n)]).double()
        data.close()
        finite = torch.isfinite(pairs).flatten(1).all(dim=1)
        if not finite.all():
            index = int((~finite).nonzero()[0])
            raise NonFiniteError(
                f"{path}: test sample {index} holds NaN or infinite values; regenerate the file "
                f"('pdeinv data check {path}' lists the damage)"
            )
        zero = pairs.flatten(2).abs().amax(dim=2).eq(0).any(dim=1)
        if zero.any():
            index = int(zero.nonzero()[0])
            raise PdeinvError(
                f"test sample {index} of {path} holds a field that is zero everywhere, so its relative error is "
                "undefined; regenerate the file"
            )
        return pairs[:, :1], pairs[:, 1:], settings

    def problem(self, inputs: torch.Tensor, outputs: torch.Tensor, settings: dict | None = None) -> InverseProblem:
        """The :class:`InverseProblem` of exact point measurements of the observed field."""
        sensor = self.sensor()
        physics = pde_physics(self.pde, self.resolution, settings)
        observed = inputs if self.observed == "input" else outputs
        return InverseProblem(
            operator=physics.operator,
            sensor=sensor,
            measurements=sensor.A(observed),
            observed=self.observed,
            target=self.target,
            input_channel=self.channels[0],
            output_channel=self.channels[1],
            pde=self.pde,
            input_prior=physics.input_prior,
            grid=self.grid,
        )


@dataclass(frozen=True)
class ImagingTask(Task):
    """An imaging task on the final Navier-Stokes vorticity (see the module docstring).

    Parameters
    ----------
    name, pde, direction, resolution, n_points
        As in :class:`Task`; ``pde`` is ``"navier-stokes"``, ``n_points`` the number of measured values.
    degradation : str
        One of ``IMAGING``.
    noise_level : float
        Standard deviation of the Gaussian measurement noise (vorticity units).
    """

    degradation: str = "deblur"
    noise_level: float = IMAGING_NOISE

    @property
    def observed(self) -> str:
        """``"output"``: the degraded field is the final vorticity."""
        return "output"

    @property
    def target(self) -> str:
        """``"output"``: the final vorticity is recovered."""
        return "output"

    def sensor(self):
        """The task's imaging operator (deepinv ``Physics``; its own noise model is off, see :meth:`measure`)."""
        s = self.resolution
        if self.degradation == "deblur":
            return GaussianBlur(s, sigma_px=3.0 * s / FULL_RESOLUTION)
        if self.degradation == "inpaint-box":
            return BoxInpainting(s, box=0.5)
        if self.degradation == "inpaint-random":
            return RandomInpainting(s, fraction_kept=0.2, seed=0)
        if self.degradation == "sr4":
            return Downsampling(s, factor=4)
        return FourierPhaseRetrieval(s, oversampling=2.0)

    def measure(self, sensor, field: torch.Tensor) -> torch.Tensor:
        """Noisy measurements ``A(x) + sigma * eps`` of fields ``(n, 1, S, S)``; sample ``i`` has its own noise."""
        clean = sensor.A(field)
        noise = torch.stack(
            [torch.randn(clean.shape[1:], generator=sample_generator(IMAGING_NOISE_SEED, i), dtype=clean.dtype)
             for i in range(clean.shape[0])]
        )
        if isinstance(sensor, MaskedInpainting):
            noise = noise * sensor.mask.to(noise)
        return clean + self.noise_level * noise

    def problem(self, inputs: torch.Tensor, outputs: torch.Tensor, settings: dict | None = None) -> InverseProblem:
        """The :class:`InverseProblem` of noisy imaging measurements of the final vorticity."""
        sensor = self.sensor()
        physics = pde_physics(self.pde, self.resolution, settings)
        return InverseProblem(
            operator=physics.operator,
            sensor=sensor,
            measurements=self.measure(sensor, outputs),
            observed=self.observed,
            target=self.target,
            input_channel=self.channels[0],
            output_channel=self.channels[1],
            pde=self.pde,
            input_prior=physics.input_prior,
            noise_std=self.noise_level,
            grid=self.grid,
        )


def _measured_values(degradation: str, resolution: int) -> int:
    if degradation == "sr4":
        return (resolution // 4) ** 2
    if degradation == "phase-retrieval":
        return (2 * resolution) ** 2
    if degradation == "inpaint-random":
        return round(0.2 * resolution**2)
    if degradation == "inpaint-box":
        return resolution**2 - (resolution // 2) ** 2
    return resolution**2


def error_rate(estimate: torch.Tensor, truth: torch.Tensor, threshold: float = DARCY_THRESHOLD) -> torch.Tensor:
    """Per-sample fraction of nodes classified differently by ``x > threshold``, ``(n, ...) -> (n,)`` float64.

    The binary-permeability metric: with the values 3 and 12 and ``threshold = 7.5``, it counts
    the nodes where the estimate falls on the other side of the midpoint than the truth.
    """
    wrong = (estimate.double() > threshold) != (truth.double() > threshold)
    return wrong.flatten(1).double().mean(dim=1)


def _build_tasks() -> dict[str, Task]:
    tasks = {}
    for short, pde in PDES.items():
        for direction in ("forward", "inverse"):
            name = f"{short}-{direction}"
            tasks[name] = Task(name, pde, direction, FULL_RESOLUTION, FULL_POINTS)
            small = round(SMALL_FRACTION * SMALL_RESOLUTION**2)
            tasks[f"{name}-64"] = Task(f"{name}-64", pde, direction, SMALL_RESOLUTION, small)
    for degradation in IMAGING:
        for suffix, s in (("", FULL_RESOLUTION), ("-64", SMALL_RESOLUTION)):
            name = f"ns-{degradation}{suffix}"
            values = _measured_values(degradation, s)
            tasks[name] = ImagingTask(name, "navier-stokes", "inverse", s, values, degradation)
    return tasks


TASKS = _build_tasks()


def get_task(name: str) -> Task:
    """The task called ``name``, with an error listing the valid names."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]
