r"""Exact Gaussian conditioning (kriging) for linear-Gaussian tasks: the Bayes limit.

Model: the input field :math:`a \sim N(\mu, C)` on the grid (e.g. the Helmholtz source GRF),
the output :math:`u = A a` (a linear solution operator), and linear observations of either,
:math:`y_j = P_j T_j a + \sigma_j n_j` with :math:`T_j \in \{I, A\}` and :math:`P_j` any linear
sensor with an adjoint: point values, a mask (deepinv's ``Inpainting``), a blur, a decimation
(``Downsampling``), pdeinv's own imaging operators. Stacking the observations as
:math:`y = L a + \varepsilon`, :math:`\varepsilon \sim N(0, \Sigma_\varepsilon)`, and a target
:math:`t = T a`, the posterior is Gaussian with

.. math::
    E[t \mid y] = T\mu + W^\top K^{-1} (y - L\mu), \qquad
    \operatorname{Var}[t_i \mid y] = (T C T^\top)_{ii} - (W^\top K^{-1} W)_{ii},

where :math:`K = L C L^\top + \Sigma_\varepsilon` (``M x M``, ``M`` the number of measured values,
e.g. ``S^2`` for a full-grid blur) and :math:`W = L C T^\top` (``M x N``, ``N = S^2``). The rows of
:math:`L` are assembled exactly: the ``M`` columns :math:`C L^\top e_m` are formed with one batched
adjoint, covariance and forward application each (in chunks of ``CHUNK`` fields); :math:`K` is
factorised by a dense Cholesky decomposition. All computations are in float64. Cost: memory
:math:`O(M N)`, time :math:`O(M^3 + M^2 N)` plus ``M`` applications of :math:`L^\top`, :math:`C` and
:math:`L`; at 64 x 64 with a full-grid sensor (``M = N = 4096``, e.g. a blur) about 2 GB and 30 s on one CPU core, a 30 % mask (whose unobserved
pixels are dropped, see :class:`Kriging`) 4 s; exact to rounding, and the dense factorisation also
gives the exact pointwise variance, which a matrix-free (CG) solve of the mean alone would not.
Noise-free observations through a strong blur make :math:`K` numerically singular; give them
their noise level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch

from pdeinv.operators.following import follow_state

CHANNELS = ("input", "output")
CHUNK = 256


@dataclass
class LinearGaussianModel:
    r"""A Gaussian input field and a linear input-to-output operator.

    Parameters
    ----------
    covariance : callable
        Applies :math:`C` to ``(B, 1, S, S)`` fields (physical units squared).
    covariance_sqrt : callable
        Applies a factor :math:`R` with :math:`R R^\top = C` (for pointwise variances).
    resolution : int
        Grid size ``S``.
    operator : deepinv.physics.LinearPhysics, optional
        :math:`A` with ``A`` and ``A_adjoint``; needed for the ``"output"`` channel.
    mean : float or torch.Tensor
        Prior mean :math:`\mu` of the input (scalar or ``(1, 1, S, S)``).
    variance : callable, optional
        ``variance() -> (S, S)``, the exact :math:`C_{ii}` (faster than summing columns of :math:`R`).
    device : torch.device or str
        Where the kriging matrices live (the callables must accept fields on it).
    """

    covariance: Callable[[torch.Tensor], torch.Tensor]
    covariance_sqrt: Callable[[torch.Tensor], torch.Tensor]
    resolution: int
    operator: object | None = None
    mean: float | torch.Tensor = 0.0
    variance: Callable[[], torch.Tensor] | None = None
    device: torch.device | str = "cpu"

    @classmethod
    def from_grf(cls, grf, operator=None) -> LinearGaussianModel:
        """The model of a zero-mean :class:`pdeinv.datasets.grf.GaussianRandomField` input."""
        return cls(grf.covariance, grf.covariance_sqrt, grf.resolution, operator, 0.0, grf.variance)

    def apply(self, x: torch.Tensor, channel: str) -> torch.Tensor:
        """:math:`T x` with :math:`T = I` (``"input"``) or :math:`A` (``"output"``)."""
        return x if channel == "input" else self._linear_operator().A(x)

    def adjoint(self, x: torch.Tensor, channel: str) -> torch.Tensor:
        """:math:`T^\\top x`."""
        return x if channel == "input" else self._linear_operator().A_adjoint(x)

    def _linear_operator(self):
        if self.operator is None or not callable(getattr(self.operator, "A_adjoint", None)):
            raise ValueError(
                "kriging of the 'output' channel needs a linear operator with A and A_adjoint (a deepinv "
                "LinearPhysics such as Helmholtz); this model has none, so only 'input' can be observed or recovered"
            )
        return self.operator


@dataclass
class KrigingObservation:
    r"""Observations :math:`y = P\,T a + \sigma n` of one channel.

    Parameters
    ----------
    sensor : deepinv.physics.LinearPhysics
        :math:`P`: ``(B, 1, S, S) -> (B, *shape)`` with ``A_adjoint``: ``PointObservation``
        (``(B, 1, M)``), deepinv's ``Inpainting``, ``Blur``, ``Downsampling``, ... A deepinv
        operator is used through a float64 copy (:func:`pdeinv.operators.following.follow_state`).
    channel : {"input", "output"}
        Which field the sensor reads.
    noise_std : float
        :math:`\sigma` in physical units (0 for exact observations).
    """

    sensor: object
    channel: str = "input"
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {self.channel!r}")
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        self.sensor = follow_state(self.sensor)


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(part) for part in x.split(CHUNK)])


class Kriging:
    r"""Exact posterior of a target channel given linear observations (module docstring equations).

    Parameters
    ----------
    model : LinearGaussianModel
        Prior and operator.
    observations : sequence of KrigingObservation
        Sensors; their measurements are passed to :meth:`mean` in the same order.
    target : {"input", "output"}
        The field to recover.

    Notes
    -----
    Observations with zero prior variance (e.g. the boundary of a boundary-zeroed field) or a zero
    row of :math:`L` (the unobserved pixels of a mask, which hold noise alone) carry no information
    and are dropped before the factorisation; this is exact (their cross-covariance with the field
    is zero) and spares the work of a mask's unobserved pixels.
    """

    def __init__(self, model: LinearGaussianModel, observations: Sequence[KrigingObservation], target: str = "input"):
        if target not in CHANNELS:
            raise ValueError(f"target must be one of {CHANNELS}, got {target!r}")
        if not observations:
            raise ValueError("kriging needs at least one KrigingObservation")
        self.model, self.observations, self.target = model, tuple(observations), target
        probes = torch.cat([self._probes(o) for o in self.observations])
        self.keep = probes.flatten(1).ne(0).any(1)  # a zero row of L: that y_m is noise alone, independent of a
        cov_probes = _chunked(model.covariance, probes[self.keep])
        k = torch.cat([self._observe(cov_probes, o) for o in self.observations], dim=1)[:, self.keep]
        k = 0.5 * (k + k.T) + torch.diag(self._noise_variances()[self.keep])
        informative = torch.diagonal(k) > 1e-12 * torch.diagonal(k).max() if k.numel() else k.new_zeros(0, dtype=bool)
        if not informative.any():
            raise ValueError("the sensors measure nothing the prior varies (every measured value is 0 or noise alone)")
        self.keep[self.keep.clone()] = informative
        k, cov_probes = k[informative][:, informative], cov_probes[informative]
        self.cholesky, info = torch.linalg.cholesky_ex(k)
        if int(info) != 0:
            raise ValueError(
                "the observation covariance is singular (repeated or linearly dependent noise-free observations, "
                "or a blur's vanishing singular values); remove duplicate sensors or give the observations their "
                "noise_std > 0"
            )
        cross = _chunked(lambda f: model.apply(f, target), cov_probes)
        self.whitened = torch.linalg.solve_triangular(self.cholesky, cross.flatten(1), upper=False)

    def _measurement_shape(self, observation: KrigingObservation) -> tuple[int, ...]:
        """Shape of one measurement of ``observation``'s sensor (``(1, M)`` for points, ``(1, S, S)`` for a mask)."""
        s = self.model.resolution
        zero = torch.zeros(1, 1, s, s, dtype=torch.float64, device=self.model.device)
        return tuple(observation.sensor.A(zero).shape[1:])

    def _probes(self, observation: KrigingObservation) -> torch.Tensor:
        """Fields :math:`T^\\top P^\\top e_m`, ``(M, 1, S, S)`` float64, one per measured value."""
        shape = self._measurement_shape(observation)
        n_values = math.prod(shape)
        unit = torch.eye(n_values, dtype=torch.float64, device=self.model.device).reshape(n_values, *shape)
        return _chunked(lambda e: self.model.adjoint(observation.sensor.A_adjoint(e), observation.channel), unit)

    def _observe(self, fields: torch.Tensor, observation: KrigingObservation) -> torch.Tensor:
        """:math:`P T f` for each field, ``(B, M_j)``."""
        return _chunked(lambda f: observation.sensor.A(self.model.apply(f, observation.channel)), fields).flatten(1)

    def _noise_variances(self) -> torch.Tensor:
        device = self.model.device
        parts = []
        for o in self.observations:
            n_values = math.prod(self._measurement_shape(o))
            parts.append(torch.full((n_values,), float(o.noise_std) ** 2, dtype=torch.float64, device=device))
        return torch.cat(parts)

    def _prior_mean_field(self) -> torch.Tensor:
        s = self.model.resolution
        return torch.as_tensor(self.model.mean, dtype=torch.float64, device=self.model.device).expand(1, 1, s, s)

    def mean(self, measurements: Sequence[torch.Tensor]) -> torch.Tensor:
        r"""Posterior mean of the target, :math:`T\mu + W^\top K^{-1}(y - L\mu)`.

        Parameters
        ----------
        measurements : sequence of torch.Tensor
            One ``(B, *shape_j)`` tensor per observation (the sensor's output shape, ``(B, 1, M_j)``
            for points), in physical units, finite.

        Returns
        -------
        torch.Tensor
            ``(B, 1, S, S)`` float64.
        """
        if len(measurements) != len(self.observations):
            raise ValueError(f"expected {len(self.observations)} measurement tensors, got {len(measurements)}")
        prior_mean = self._prior_mean_field()
        centred = []
        for y, o in zip(measurements, self.observations):
            y = torch.as_tensor(y, dtype=torch.float64, device=self.model.device)
            if not torch.isfinite(y).all():
                raise ValueError("the measurements contain NaN or infinite values; drop those sensors instead")
            centred.append((y - o.sensor.A(self.model.apply(prior_mean, o.channel))).flatten(1))
        residual = torch.cat(centred, dim=1)
        if residual.shape[1] != self.keep.numel():
            raise ValueError(
                f"the measurements hold {residual.shape[1]} values, but the sensors define {self.keep.numel()}"
            )
        s = self.model.resolution
        gain = torch.linalg.solve_triangular(self.cholesky, residual[:, self.keep].T, upper=False)
        correction = (self.whitened.T @ gain).T.reshape(-1, 1, s, s)
        return self.model.apply(prior_mean, self.target) + correction

    def variance(self) -> torch.Tensor:
        r"""Posterior pointwise variance :math:`(TCT^\top)_{ii} - (W^\top K^{-1} W)_{ii}`, ``(1, 1, S, S)`` float64."""
        s = self.model.resolution
        reduction = (self.whitened**2).sum(0).reshape(1, 1, s, s)
        return (self._prior_variance() - reduction).clamp_min(0.0)

    def _prior_variance(self) -> torch.Tensor:
        model, s = self.model, self.model.resolution
        if self.target == "input" and model.variance is not None:
            return torch.as_tensor(model.variance(), dtype=torch.float64, device=model.device).reshape(1, 1, s, s)
        total = torch.zeros(1, 1, s, s, dtype=torch.float64, device=model.device)
        for start in range(0, s * s, CHUNK):
            index = torch.arange(start, min(start + CHUNK, s * s), device=model.device)
            unit = torch.zeros(index.numel(), s * s, dtype=torch.float64, device=model.device)
            unit[torch.arange(index.numel(), device=model.device), index] = 1.0
            columns = model.apply(model.covariance_sqrt(unit.reshape(-1, 1, s, s)), self.target)
            total = total + (columns**2).sum(0, keepdim=True)
        return total
