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

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
import torch.nn.functional as F

from pdeinv.sampling.schedule import GuidanceSchedule

EQUIREG_WEIGHT = 0.01  # EquiReg's published equi_alpha

REDUCTIONS = ("norm", "sqnorm", "mse", "huber")
OBSERVATION_LOSSES = REDUCTIONS + ("gaussian", "tweedie")
# Added to the Tweedie covariance, relative to its mean diagonal, when its float64 Cholesky
# factorisation fails (smooth fields' nearly collinear sensor covariances at large sigma).
TWEEDIE_RELATIVE_JITTER = 1e-10


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
      :math:`K` is formed by one backward pass batched over the ``M`` unit vectors
      (``is_grads_batched``: the denoiser must support ``vmap``) and factorised by Cholesky,
      so this loss is meant for small ``M``.

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
        self.forward = _forward_map(operator)
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
        covariance = self._tweedie_covariance(state, r.shape[1]).double()
        factor, info = torch.linalg.cholesky_ex(covariance)
        if bool((info != 0).any()):
            scale = covariance.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None]
            eye = torch.eye(r.shape[1], dtype=covariance.dtype, device=covariance.device)
            factor, info = torch.linalg.cholesky_ex(covariance + TWEEDIE_RELATIVE_JITTER * scale * eye)
        if bool((info != 0).any()):
            raise ValueError(
                f"term {self.name!r}: the predicted measurement covariance is singular at sigma = {state.sigma:.4g} "
                "(sensors where the prior has no variance, or duplicates); give the term a noise_std > 0"
            )
        solved = torch.cholesky_solve(r.detach().double()[..., None], factor)[..., 0].to(r.dtype)
        value = 0.5 * (solved * r.detach()).sum(1)
        return (solved * r).sum(1) - value

    def _tweedie_covariance(self, state: GuidanceState, n_measurements: int) -> torch.Tensor:
        r""":math:`K_b = \sigma_y^2 I + \sigma^2 G J G^\top` per sample, ``(B, M, M)``.

        With a prior that has a closed-form Gaussian part (``prior.gaussian_jvp``) in field space,
        :math:`J` is that part's Jacobian, which does not depend on :math:`x_t`: :math:`K` is
        formed once for the batch without differentiating the network. Otherwise :math:`J` is the
        network's own Jacobian, by one backward pass batched over the ``M`` unit vectors.
        """
        spread = self._gaussian_spread(state, n_measurements) if state.field_space else None
        if spread is None:
            spread = self._network_spread(state, n_measurements)
        spread = 0.5 * (spread + spread.transpose(1, 2))
        eye = torch.eye(n_measurements, dtype=spread.dtype, device=spread.device)
        return self.noise_std**2 * eye + state.sigma**2 * spread

    def _gaussian_spread(self, state: GuidanceState, n_measurements: int) -> torch.Tensor | None:
        r""":math:`G J_G G^\top` from the prior's Gaussian part, ``(B, M, M)``, or ``None`` without one.

        :math:`G` (the linear part of the residual in the normalised field) and :math:`J_G` are the
        same for every sample, so the ``M x M`` matrix is formed once for the batch.
        """
        prior = state.prior
        index = [channel_index(prior.channels, c) for c in self.channels]
        std = prior.std.to(state.denoised.device, torch.float64)[index].reshape(1, -1, 1, 1)

        def linear(v: torch.Tensor) -> torch.Tensor:
            return (self.scale * self.forward(v[:, index] * std)).flatten(1)

        direction = torch.zeros_like(state.denoised[:1], dtype=torch.float64).requires_grad_(True)
        units = torch.eye(n_measurements, dtype=direction.dtype, device=direction.device)[:, None, :]
        adjoint = torch.autograd.grad(linear(direction), direction, units, is_grads_batched=True)[0][:, 0]
        moved = prior.gaussian_jvp(adjoint, state.sigma)
        if moved is None:
            return None
        spread = linear(moved.to(adjoint.dtype)).detach().transpose(0, 1)
        return spread[None].expand(state.x.shape[0], -1, -1)

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
