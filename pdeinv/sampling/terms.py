r"""Guidance terms of the posterior sampler.

A term maps the sampler's :class:`GuidanceState` at one step to a per-sample loss
:math:`L_k` of shape ``(B,)``; the sampler differentiates :math:`\sum_k w_k L_k` with respect
to the state :math:`x_t` *through the denoised estimate* :math:`\hat x_0 = D(x_t, \sigma)`
(DPS family), with the weights :math:`w_k` given by each term's
:class:`~pdeinv.sampling.schedule.GuidanceSchedule`.

- :class:`ObservationTerm`: :math:`\rho(s\,(A(\hat x_0^{c}) - y))`, the measurement misfit of an
  operator applied to channel(s) ``c`` of the estimate in physical units.
- :class:`PhysicsTerm`: consistency between the channels of a joint prior, the PDE residual
  or :math:`A(\text{input}) - \text{output}`.

EquiReg's term is :class:`pdeinv.sampling.equireg.EquiRegTerm`.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
import torch.nn.functional as F

from pdeinv.operators.following import follow_state
from pdeinv.sampling.schedule import GuidanceSchedule

EQUIREG_WEIGHT = 0.01  # EquiReg's published equi_alpha

REDUCTIONS = ("norm", "sqnorm", "mse", "huber")
OBSERVATION_LOSSES = REDUCTIONS + ("gaussian", "tweedie")
# Added to the Tweedie covariance, relative to its mean diagonal, when its float64 Cholesky
# factorisation fails (smooth fields' nearly collinear sensor covariances at large sigma).
TWEEDIE_RELATIVE_JITTER = 1e-10
# Spectral modes of the Gaussian part are dropped from the Tweedie covariance while the sum of their
# largest possible contributions to it, sum_n lambda_n |c_n|^2, stays below this fraction of sigma_y^2;
# the dropped part is then below 1e-9 of the covariance's smallest eigenvalue in norm.
TWEEDIE_DROP_TOLERANCE = 1e-9
TWEEDIE_CACHED_LEVELS = 256  # factorised covariances kept per (prior, operator), one per noise level


@dataclass
class GuidanceState:
    r"""What a term sees at one evaluation of the guidance.

    Attributes
    ----------
    x : torch.Tensor
        The state the gradient is taken with respect to, ``(B, *state_shape)``: :math:`x_t` (or,
        inside DAPS's Langevin loop, the clean iterate :math:`x_0` itself).
    denoised : torch.Tensor
        :math:`\hat x_0 = D(x_t, \sigma)` in the state space (``x`` itself when
        ``through_denoiser`` is False).
    sigma : float
        Noise level of ``x`` (normalised units).
    step, n_steps : int
        Index of the sampling step and their number.
    prior : pdeinv.priors.base.FieldPrior
        The prior (channel names, normalisation).
    decode : callable
        State space to normalised field ``(B, C, S, S)`` (identity in field space).
    denoise : callable
        ``denoise(x, sigma)`` in the state space; every call counts as one network evaluation.
    generator : torch.Generator
        The sampler's generator (terms draw random group elements from it).
    through_denoiser : bool
        Whether ``denoised`` depends on ``x`` through the denoiser.
    field_space : bool
        Whether the state is the normalised field itself (no autoencoder).
    """

    x: torch.Tensor
    denoised: torch.Tensor
    sigma: float
    step: int
    n_steps: int
    prior: object
    decode: Callable[[torch.Tensor], torch.Tensor]
    denoise: Callable[[torch.Tensor, float], torch.Tensor]
    generator: torch.Generator | None = None
    through_denoiser: bool = True
    field_space: bool = True

    @cached_property
    def field(self) -> torch.Tensor:
        """The normalised field estimate ``decode(denoised)``, ``(B, C, S, S)``."""
        return self.decode(self.denoised)

    @cached_property
    def physical(self) -> torch.Tensor:
        """The field estimate in physical units, ``prior.to_physical(field)``."""
        return self.prior.to_physical(self.field)

    def channels(self, names: Sequence[str]) -> torch.Tensor:
        """Channels ``names`` of the physical estimate, ``(B, len(names), S, S)``."""
        return select_channels(self.physical, self.prior.channels, names)


def select_channels(x: torch.Tensor, available: Sequence[str], names: Sequence[str]) -> torch.Tensor:
    """Channels ``names`` of a field ``x`` whose channels are named ``available``."""
    index = [channel_index(available, n) for n in names]
    return x[:, index]


def channel_index(available: Sequence[str], name: str) -> int:
    """Position of channel ``name`` in ``available``, with an error naming the alternatives."""
    if name not in available:
        raise ValueError(
            f"the prior has no channel {name!r}; its channels are {tuple(available)}. Use a prior trained on "
            f"the fields this task observes and recovers"
        )
    return list(available).index(name)


def reduce(residual: torch.Tensor, kind: str) -> torch.Tensor:
    r"""Per-sample size of a residual ``(B, ...)``: ``(B,)``.

    ``"norm"``: :math:`\|r\|_2`; ``"sqnorm"``: :math:`\|r\|_2^2`; ``"mse"``: :math:`\|r\|_2^2 / n`;
    ``"huber"``: the mean Huber loss with :math:`\delta = 1`.
    """
    flat = residual.flatten(1)
    if kind == "norm":
        return torch.linalg.vector_norm(flat, dim=1)
    if kind == "sqnorm":
        return (flat * flat).sum(1)
    if kind == "mse":
        return (flat * flat).mean(1)
    if kind == "huber":
        return F.huber_loss(flat, torch.zeros_like(flat), reduction="none", delta=1.0).mean(1)
    raise ValueError(f"unknown reduction {kind!r}; choose one of {REDUCTIONS}")


def _forward_map(operator) -> Callable[[torch.Tensor], torch.Tensor]:
    """``operator.A`` for a deepinv Physics, else the callable itself."""
    forward = getattr(operator, "A", operator)
    if not callable(forward):
        raise ValueError(f"operator must be a deepinv Physics or a callable, got {type(operator).__name__}")
    return forward


class Term:
    """Base class: a name, a :class:`GuidanceSchedule` and a per-sample loss."""

    name: str = "term"

    def __init__(self, schedule: GuidanceSchedule | None, name: str | None):
        self.schedule = GuidanceSchedule() if schedule is None else schedule
        if name is not None:
            self.name = name

    def weight(self, sigma: float, step: int, n_steps: int) -> float:
        """The term's weight at this step (0 when inactive)."""
        return self.schedule(sigma, step, n_steps)

    def loss(self, state: GuidanceState) -> torch.Tensor:
        """Per-sample loss ``(B,)`` whose gradient guides the sampler."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss(state)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, schedule={self.schedule})"


class ObservationTerm(Term):
    r"""Measurement misfit through the denoised estimate, in physical units.

    With :math:`\hat x^{c}` the physical channels ``channels`` of the estimate and
    :math:`r = s\,(A(\hat x^{c}) - y)` the scaled residual (``scale`` :math:`s` converts it to
    the units the weight is meant for), the loss is

    - ``"norm"`` :math:`\|r\|` (DPS, DiffusionPDE), ``"sqnorm"`` :math:`\|r\|^2`, ``"mse"``
      :math:`\|r\|^2/M` (FunDPS), ``"huber"``;
    - ``"gaussian"`` :math:`\|r\|^2 / (2\sigma_y^2)`, the negative log-likelihood of
      :math:`y = A(x) + \sigma_y n` (DAPS);
    - ``"tweedie"`` :math:`\tfrac12 r^\top (\sigma_y^2 I + \sigma^2 G J G^\top)^{-1} r` with
      :math:`G = \partial r / \partial \hat x_0`, :math:`J = \partial \hat x_0 / \partial x_t`:
      the Gaussian likelihood :math:`p(y \mid x_t)` with the exact Tweedie covariance
      :math:`\operatorname{Cov}[x_0 \mid x_t] = \sigma^2 J` (Pi-GDM family). The covariance is
      held fixed under differentiation, so :math:`-\nabla_{x_t} L = J^\top G^\top K^{-1} r`; for
      a Gaussian prior and a linear operator this is exactly :math:`\nabla \log p(y \mid x_t)`.
      With a prior that has a Gaussian part (``gaussian_jvp``), :math:`J` is that part's Jacobian
      and :math:`K` depends on :math:`\sigma` alone: it is built once per prior and operator and
      factorised once per noise level (:class:`GaussianMeasurementCovariance`); for an
      operator-consistent prior of a nonlinear PDE, with the solve linearised at each sample's
      estimate (:func:`linearised_measurement_covariance`). Otherwise :math:`K` is formed per
      sample by one backward pass batched over the ``M`` unit vectors (``is_grads_batched``: the
      denoiser must support ``vmap``), meant for small ``M``.

    Parameters
    ----------
    operator : deepinv.physics.Physics or callable
        Maps the selected physical channels ``(B, len(channels), S, S)`` to measurements.
    y : torch.Tensor
        Measurements, batch 1 (shared by every sample) or ``B``; must be finite.
    channels : str or sequence of str
        Channel name(s) of the prior that the operator acts on.
    schedule : GuidanceSchedule, optional
        Weight and schedule (default: weight 1 at every step).
    loss : str
        One of ``"norm", "sqnorm", "mse", "huber", "gaussian", "tweedie"``.
    noise_std : float
        :math:`\sigma_y`, the measurement noise std in the units of ``r`` (``"gaussian"``, ``"tweedie"``).
    scale : float
        :math:`s` (> 0).
    name : str
        Name used in reports and error messages.
    """

    name = "observation"

    def __init__(
        self,
        operator,
        y: torch.Tensor,
        channels: str | Sequence[str],
        *,
        schedule: GuidanceSchedule | None = None,
        loss: str = "norm",
        noise_std: float = 0.0,
        scale: float = 1.0,
        name: str | None = None,
    ):
        super().__init__(schedule, name)
        if loss not in OBSERVATION_LOSSES:
            raise ValueError(f"loss must be one of {OBSERVATION_LOSSES}, got {loss!r}")
        if loss == "gaussian" and not noise_std > 0:
            raise ValueError("loss='gaussian' needs noise_std > 0 (the measurement noise standard deviation)")
        if not (noise_std >= 0 and scale > 0):
            raise ValueError(f"need noise_std >= 0 and scale > 0, got noise_std={noise_std}, scale={scale}")
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise ValueError(f"y must be a floating-point torch.Tensor of measurements, got {type(y).__name__}")
        if not torch.isfinite(y).all():
            raise ValueError(
                "the measurements y contain NaN or infinite values; drop those sensors from the operator "
                "(and from y) instead of passing non-finite values"
            )
        self.operator = follow_state(operator)
        self.forward = _forward_map(self.operator)
        self.y = y
        self.channels = (channels,) if isinstance(channels, str) else tuple(channels)
        self.loss_kind = loss
        self.noise_std = float(noise_std)
        self.scale = float(scale)

    def residual(self, physical_channels: torch.Tensor) -> torch.Tensor:
        """Scaled residual :math:`s\\,(A(x^c) - y)`, flattened to ``(B, M)``."""
        predicted = self.forward(physical_channels)
        y = self.y.to(device=predicted.device, dtype=predicted.dtype)
        if y.shape[1:] != predicted.shape[1:] or y.shape[0] not in (1, predicted.shape[0]):
            raise ValueError(
                f"term {self.name!r}: the operator maps the estimate to measurements of shape "
                f"{tuple(predicted.shape)}, but y has shape {tuple(y.shape)}; give y one row per sample "
                f"(or a single row) with the operator's output shape {tuple(predicted.shape[1:])}"
            )
        return (self.scale * (predicted - y)).flatten(1)

    def loss(self, state: GuidanceState) -> torch.Tensor:
        r = self.residual(state.channels(self.channels))
        if self.loss_kind == "gaussian":
            return reduce(r, "sqnorm") / (2.0 * self.noise_std**2)
        if self.loss_kind == "tweedie":
            return self._tweedie_loss(state, r)
        return reduce(r, self.loss_kind)

    def _tweedie_loss(self, state: GuidanceState, r: torch.Tensor) -> torch.Tensor:
        if not state.through_denoiser:
            raise ValueError(
                f"term {self.name!r}: loss='tweedie' needs the denoiser's Jacobian at x_t; it cannot be used "
                "inside DAPS's Langevin loop (use loss='gaussian' there)"
            )
        factor = self._tweedie_factor(state, r.shape[1])
        rhs = r.detach().double()[..., None]
        solved = torch.cholesky_solve(rhs, factor.expand(r.shape[0], -1, -1))[..., 0].to(r.dtype)
        value = 0.5 * (solved * r.detach()).sum(1)
        return (solved * r).sum(1) - value

    def _tweedie_factor(self, state: GuidanceState, n_measurements: int) -> torch.Tensor:
        r"""Cholesky factor of :math:`K`, float64 ``(1, M, M)`` (shared by the batch) or ``(B, M, M)``.

        With a prior that has a closed-form Gaussian part (``prior.gaussian_jvp``) in field space,
        :math:`J` is that part's Jacobian, which depends on :math:`\sigma` alone: :math:`K` is the
        same for every sample, every step at that level and every batch of measurements, and is
        taken from :class:`GaussianMeasurementCovariance` (built once per prior and operator).
        An operator-consistent prior of a nonlinear PDE uses the same Gaussian part with the solve
        linearised at each sample's estimate (:func:`linearised_measurement_covariance`).
        Otherwise :math:`J` is the network's own Jacobian at :math:`x_t`, by one backward pass
        batched over the ``M`` unit vectors, and :math:`K` is factorised per sample.
        """
        if state.field_space:
            covariance = gaussian_measurement_covariance(
                state.prior, self.operator, self.channels, self.scale, self.noise_std, state.denoised
            )
            if covariance is not None:
                return covariance.factor(state.sigma, self.name)
            linearised = linearised_measurement_covariance(
                state.prior, self.operator, self.channels, self.scale, self.noise_std, state.denoised, state.sigma
            )
            if linearised is not None:
                return cholesky_with_jitter(linearised, state.sigma, self.name)
        return cholesky_with_jitter(self._tweedie_covariance(state, n_measurements), state.sigma, self.name)

    def _tweedie_covariance(self, state: GuidanceState, n_measurements: int) -> torch.Tensor:
        r""":math:`K_b = \sigma_y^2 I + \sigma^2 G J G^\top` per sample with the network's Jacobian, ``(B, M, M)``."""
        spread = self._network_spread(state, n_measurements)
        spread = 0.5 * (spread + spread.transpose(1, 2))
        eye = torch.eye(n_measurements, dtype=spread.dtype, device=spread.device)
        return self.noise_std**2 * eye + state.sigma**2 * spread

    def _network_spread(self, state: GuidanceState, n_measurements: int) -> torch.Tensor:
        r""":math:`G J G^\top` with the network's Jacobian at :math:`x_t`, ``(B, M, M)``, by backward passes batched over the ``M`` unit vectors."""
        clean = state.denoised.detach().requires_grad_(True)
        residual = self.residual(
            select_channels(state.prior.to_physical(state.decode(clean)), state.prior.channels, self.channels)
        )
        probe = torch.zeros_like(residual, requires_grad=True)
        adjoint_probe = torch.autograd.grad(residual, clean, probe, create_graph=True)[0]
        units = torch.eye(n_measurements, dtype=clean.dtype, device=clean.device)[:, None, :]
        units = units.expand(n_measurements, *residual.shape)
        adjoint = torch.autograd.grad(residual, clean, units, retain_graph=True, is_grads_batched=True)[0]
        jacobian_adjoint = torch.autograd.grad(
            state.denoised, state.x, adjoint, retain_graph=True, is_grads_batched=True
        )[0]
        columns = torch.autograd.grad(adjoint_probe, probe, jacobian_adjoint, is_grads_batched=True)[0]
        return columns.permute(1, 2, 0).detach()


def cholesky_with_jitter(covariance: torch.Tensor, sigma: float, name: str) -> torch.Tensor:
    """float64 Cholesky factor of ``(B, M, M)`` covariances, with a relative jitter if the plain one fails."""
    covariance = covariance.double()
    factor, info = torch.linalg.cholesky_ex(covariance)
    if bool((info != 0).any()):
        scale = covariance.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
        eye = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
        factor, info = torch.linalg.cholesky_ex(covariance + TWEEDIE_RELATIVE_JITTER * scale * eye)
    if bool((info != 0).any()):
        raise ValueError(
            f"term {name!r}: the predicted measurement covariance is singular at sigma = {sigma:.4g} "
            "(sensors where the prior has no variance, or duplicates); give the term a noise_std > 0"
        )
    return factor


def measurement_adjoint(linear: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    r"""The adjoint columns :math:`G^\top e_m`, float64 ``(M, C, S, S)``, of a linear map ``linear``.

    ``linear`` maps float64 fields shaped like ``like[:1]``, ``(1, C, S, S)``, to ``(1, M)``.
    """
    direction = torch.zeros_like(like[:1], dtype=torch.float64).requires_grad_(True)
    with torch.enable_grad():
        measured = linear(direction)
        units = torch.eye(measured.shape[1], dtype=direction.dtype, device=direction.device)[:, None, :]
        return torch.autograd.grad(measured, direction, units, is_grads_batched=True)[0][:, 0].detach()


class GaussianMeasurementCovariance:
    r"""The Tweedie covariance :math:`K_\sigma = \sigma_y^2 I + \sigma^2 G J_\sigma G^\top` of a Gaussian part, per level.

    :math:`G` is the linear map from a normalised field to the ``M`` scaled measurements
    (:math:`G v = s\,A(\mathrm{std}_c\, v_c)` on the observed channels ``c``) and
    :math:`J_\sigma` the Jacobian of the prior's Gaussian part, so :math:`K_\sigma` depends on
    :math:`\sigma` alone. It is built from the ``M`` adjoint columns :math:`G^\top e_m`, computed
    once (one backward pass batched over the unit vectors):

    - when the Gaussian part is diagonal in a spectral basis,
      :math:`J_\sigma = W \operatorname{diag}(\lambda / (\lambda + \sigma^2)) W^\top`
      (:func:`~pdeinv.priors.spectral_gaussian.prior_spectrum`), from :math:`C = G W` (``M x N``,
      formed once as :math:`W^\top G^\top`):
      :math:`G J_\sigma G^\top = C \operatorname{diag}(\lambda / (\lambda + \sigma^2)) C^\top`,
      one matrix product per level. Modes are dropped while the summed bound
      :math:`\sum_n \lambda_n \|C_n\|^2` of what they can add stays below
      ``TWEEDIE_DROP_TOLERANCE`` :math:`\sigma_y^2` (``sigma_y > 0`` only);
    - otherwise by pushing the columns through ``prior.gaussian_jvp`` and :math:`G` at each level.

    The Cholesky factor of each level is cached (``TWEEDIE_CACHED_LEVELS`` of them), so a
    sampler meets each level's factorisation once for all its steps, samples and batches.

    Parameters
    ----------
    prior : FieldPrior
        Has ``channels``, ``std`` and ``gaussian_jvp`` (not ``None``).
    linear : callable
        :math:`G`, normalised fields ``(B, C, S, S)`` float64 to ``(B, M)``.
    noise_std : float
        :math:`\sigma_y` in the units of :math:`G`'s output.
    like : torch.Tensor
        A field ``(B, C, S, S)`` giving the grid size and device.
    """

    def __init__(self, prior, linear: Callable[[torch.Tensor], torch.Tensor], noise_std: float, like: torch.Tensor):
        from pdeinv.priors.spectral_gaussian import prior_spectrum

        self.prior, self.linear, self.noise_std = prior, linear, float(noise_std)
        self.adjoint = measurement_adjoint(linear, like)
        self.size = self.adjoint.shape[0]
        spectrum = prior_spectrum(prior, self.adjoint)
        self.columns, self.variances = (None, None) if spectrum is None else self._kept(*spectrum)
        if self.columns is not None:
            self.adjoint = None
        self._factors: OrderedDict[float, torch.Tensor] = OrderedDict()

    def _kept(self, columns: torch.Tensor, variances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The modes whose contribution bound exceeds the drop tolerance: ``(M, N_kept)``, ``(N_kept,)``."""
        bound = variances * (columns * columns).sum(0)
        if self.noise_std > 0:
            ordered, order = bound.sort()
            dropped = order[ordered.cumsum(0) <= TWEEDIE_DROP_TOLERANCE * self.noise_std**2]
            keep = torch.ones_like(bound, dtype=torch.bool)
            keep[dropped] = False
        else:
            keep = bound > 0
        return columns[:, keep].contiguous(), variances[keep]

    def spread(self, sigma: float) -> torch.Tensor:
        r""":math:`G J_\sigma G^\top`, float64 ``(M, M)``, symmetrised."""
        if self.columns is not None:
            gains = self.variances / (self.variances + sigma**2)
            spread = (self.columns * gains) @ self.columns.T
        else:
            moved = self.prior.gaussian_jvp(self.adjoint, sigma).to(self.adjoint.dtype)
            spread = self.linear(moved).detach().T
        return 0.5 * (spread + spread.T)

    def covariance(self, sigma: float) -> torch.Tensor:
        r""":math:`K_\sigma = \sigma_y^2 I + \sigma^2 G J_\sigma G^\top`, float64 ``(M, M)``."""
        eye = torch.eye(self.size, dtype=torch.float64, device=self._device())
        return self.noise_std**2 * eye + sigma**2 * self.spread(sigma)

    def factor(self, sigma: float, name: str = "observation") -> torch.Tensor:
        """Cholesky factor of :meth:`covariance`, ``(1, M, M)``, cached per level."""
        key = float(sigma)
        if key not in self._factors:
            self._factors[key] = cholesky_with_jitter(self.covariance(key)[None], key, name)
            if len(self._factors) > TWEEDIE_CACHED_LEVELS:
                self._factors.popitem(last=False)
        return self._factors[key]

    def _device(self) -> torch.device:
        return (self.columns if self.columns is not None else self.adjoint).device


_COVARIANCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _normalised_measurement(prior, operator, channels: Sequence[str], scale: float) -> Callable:
    r""":math:`G v = s\,A(\mathrm{std}_c\, v_c)`: normalised fields ``(B, C, S, S)`` to measurements ``(B, M)``."""
    index = [channel_index(prior.channels, c) for c in channels]
    forward = _forward_map(operator)

    def linear(v: torch.Tensor) -> torch.Tensor:
        std = prior.std.to(v.device, torch.float64)[index].reshape(1, -1, 1, 1)
        return (scale * forward(v[:, index] * std)).flatten(1)

    return linear


def linearised_measurement_covariance(
    prior, operator, channels: Sequence[str], scale: float, noise_std: float, estimate: torch.Tensor, sigma: float
) -> torch.Tensor | None:
    r"""The Tweedie covariance through a nonlinear solve linearised at each estimate, float64 ``(B, M, M)``.

    For an operator-consistent prior of a nonlinear PDE (:class:`~pdeinv.priors.consistent.OperatorConsistentPrior`
    with ``linear`` False) read by a linear sensor :math:`G` on ``channels``, sample :math:`b`'s
    covariance is

    .. math:: K_b = \sigma_y^2 I + \sigma^2 (G L_b)\, J_{aa}\, (G L_b)^\top,

    :math:`L_b` the map from the normalised input to the joint field linearised at the sample's
    estimate (:meth:`~pdeinv.priors.consistent.OperatorConsistentPrior.linearised_probe`) and
    :math:`J_{aa}` the input block of the inner prior's Gaussian-part Jacobian: the Gauss-Newton
    form of :class:`GaussianMeasurementCovariance`, rebuilt at every evaluation since :math:`L_b`
    moves with the estimate. Costs ``M`` adjoint solves per sample (one factorisation for all of
    them when the operator has ``jacobian_adjoint``) and ``M`` Gaussian-part products.

    Returns
    -------
    torch.Tensor or None
        ``None`` when it does not apply: another prior, a linear PDE (then
        :class:`GaussianMeasurementCovariance` is exact), a nonlinear sensor, or an inner prior
        without a Gaussian part.
    """
    from deepinv.physics import LinearPhysics

    from pdeinv.priors.consistent import OperatorConsistentPrior

    applies = isinstance(prior, OperatorConsistentPrior) and not prior.linear and isinstance(operator, LinearPhysics)
    if not applies:
        return None
    adjoint = _sensor_adjoint(prior, operator, channels, scale, estimate)
    batch = estimate.shape[0]
    probes = prior.linearised_probe(adjoint[:, None].expand(-1, batch, -1, -1, -1), estimate.detach())
    eye = torch.eye(adjoint.shape[0], dtype=torch.float64, device=adjoint.device)
    covariances = []
    for probe in probes.unbind(1):
        spread = _gaussian_spread(prior.prior, probe, sigma, prior.input_index)
        if spread is None:
            return None
        covariances.append(noise_std**2 * eye + sigma**2 * 0.5 * (spread + spread.T))
    return torch.stack(covariances)


_ADJOINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sensor_adjoint(prior, operator, channels: Sequence[str], scale: float, like: torch.Tensor) -> torch.Tensor:
    """:func:`measurement_adjoint` of the linear sensor ``operator`` on the normalised ``channels``, ``(M, C, S, S)``.

    It does not move with the estimate, so it is computed once per operator (weakly cached) and per
    channels, scale, normalisation, grid size and device, not at every evaluation of the guidance.
    """
    key = (tuple(prior.channels), tuple(channels), float(scale), tuple(prior.std.tolist()), tuple(like.shape[1:]),
           str(like.device))
    per_operator = _ADJOINTS.setdefault(operator, {})
    if key not in per_operator:
        per_operator.clear()
        per_operator[key] = measurement_adjoint(_normalised_measurement(prior, operator, channels, scale), like)
    return per_operator[key]


def _gaussian_spread(prior, probes: torch.Tensor, sigma: float, channel: int) -> torch.Tensor | None:
    r""":math:`v_m^\top J_\sigma v_{m'}` of a prior's Gaussian part for probes ``(M, C, S, S)`` that vanish
    off ``channel``, float64 ``(M, M)``: from the spectral coordinates when the part has them
    (:func:`~pdeinv.priors.spectral_gaussian.prior_spectrum`), else through ``gaussian_jvp``;
    ``None`` without a Gaussian part."""
    from pdeinv.priors.spectral_gaussian import prior_spectrum

    spectrum = prior_spectrum(prior, probes)
    if spectrum is not None:
        coordinates, variances = spectrum
        return (coordinates * (variances / (variances + sigma**2))) @ coordinates.T
    moved = prior.gaussian_jvp(probes, sigma)
    if moved is None:
        return None
    return probes[:, channel].flatten(1) @ moved[:, channel].to(probes).flatten(1).T


def gaussian_measurement_covariance(
    prior, operator, channels: Sequence[str], scale: float, noise_std: float, like: torch.Tensor
) -> GaussianMeasurementCovariance | None:
    r"""The :class:`GaussianMeasurementCovariance` of ``prior`` and ``operator`` on ``channels``, built once.

    ``None`` when the prior has no Gaussian part (``gaussian_jvp`` returns ``None``).

    Cached per prior and operator (weakly: dropped with them) and per channels, scale, noise std,
    grid size, device and the prior's buffers (a refit or a loaded state rebuilds it).
    ``operator`` must not change in place between calls.
    """
    linear = _normalised_measurement(prior, operator, channels, scale)
    buffers = tuple((b.data_ptr(), b._version) for b in prior.buffers()) if hasattr(prior, "buffers") else ()
    key = (tuple(channels), float(scale), float(noise_std), tuple(like.shape[1:]), str(like.device), buffers)
    per_prior = _COVARIANCES.setdefault(prior, weakref.WeakKeyDictionary())
    per_operator = per_prior.setdefault(operator, {})
    if key not in per_operator:
        per_operator.clear()
        probe = torch.zeros_like(like[:1].detach(), dtype=torch.float64)
        has_part = prior.gaussian_jvp(probe, 1.0) is not None
        per_operator[key] = GaussianMeasurementCovariance(prior, linear, noise_std, like) if has_part else None
    return per_operator[key]


class PhysicsTerm(Term):
    r"""Consistency between the input and output channels of a joint prior.

    ``form="residual"``: :math:`r = s\,R(a, u)` with the operator's ``residual`` (e.g.
    :math:`\Delta_h u + k^2 u - a` for Helmholtz); ``form="forward"``: :math:`r = s\,(A(a) - u)`.
    The loss is ``reduce(r, reduction)`` (``"norm"``: DiffusionPDE with :math:`s = 1/(S-1)^2`;
    ``"huber"``: FunDPS).

    Parameters
    ----------
    operator : deepinv.physics.Physics
        Has ``residual(a, u)`` (``form="residual"``) or ``A`` (``form="forward"``).
    input_channel, output_channel : str
        Channel names of :math:`a` and :math:`u` in the prior.
    schedule : GuidanceSchedule, optional
        Weight and schedule.
    form : {"residual", "forward"}
        Which consistency to measure.
    reduction : str
        One of ``"norm", "sqnorm", "mse", "huber"``.
    scale : float
        :math:`s` (> 0).
    name : str
        Name used in reports and error messages.
    """

    name = "physics"

    def __init__(
        self,
        operator,
        input_channel: str,
        output_channel: str,
        *,
        schedule: GuidanceSchedule | None = None,
        form: str = "residual",
        reduction: str = "norm",
        scale: float = 1.0,
        name: str | None = None,
    ):
        super().__init__(schedule, name)
        if form not in ("residual", "forward"):
            raise ValueError(f"form must be 'residual' or 'forward', got {form!r}")
        if form == "residual" and not callable(getattr(operator, "residual", None)):
            raise ValueError(f"{type(operator).__name__} has no residual(a, u); use form='forward'")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.operator = operator
        self.input_channel, self.output_channel = input_channel, output_channel
        self.form, self.reduction, self.scale = form, reduction, float(scale)

    def loss(self, state: GuidanceState) -> torch.Tensor:
        a = state.channels((self.input_channel,))
        u = state.channels((self.output_channel,))
        if self.form == "residual":
            r = self.operator.residual(a, u)
        else:
            r = _forward_map(self.operator)(a) - u
        return reduce(self.scale * r, self.reduction)
