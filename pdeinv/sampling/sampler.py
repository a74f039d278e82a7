r"""The one posterior sampler of pdeinv: EDM noise levels, Euler/Heun/DAPS steps, guidance terms.

The state :math:`x` lives in a *space* (the normalised field itself, or later an autoencoder's
latent space) and starts as :math:`x_0 = \sigma_0 n`. With :math:`D = D(x, \sigma)` the prior's
denoiser and :math:`L = \sum_k w_k L_k` the weighted guidance terms (:mod:`pdeinv.sampling.terms`),
one step from :math:`\sigma_i` to :math:`\sigma_{i+1}` is, for ``integrator="euler"``/``"heun"``:

1. churn (EDM Alg. 2): :math:`\hat\sigma = \sigma_i (1 + \gamma)`,
   :math:`\gamma = \min(S_\text{churn}/N, \sqrt2 - 1)` for :math:`S_\text{tmin} \le \sigma_i \le S_\text{tmax}`,
   :math:`\hat x = x + \sqrt{\hat\sigma^2 - \sigma_i^2}\, S_\text{noise}\, n`;
2. the probability-flow drift :math:`d(x, \sigma) = (x - D(x, \sigma))/\sigma`, plus
   :math:`\sigma \nabla_x L` with ``guidance="drift"`` (the guidance gradient is a likelihood
   score, :math:`-\nabla_x L \approx \nabla_x \log p(y \mid x_\sigma)`; exact for a Gaussian prior
   with ``ObservationTerm(loss="tweedie")``);
3. Euler :math:`x' = \hat x + (\sigma_{i+1} - \hat\sigma)\, d(\hat x, \hat\sigma)`, or Heun (when
   :math:`\sigma_{i+1} > 0`) :math:`x' = \hat x + (\sigma_{i+1} - \hat\sigma)(d(\hat x) + d(x'))/2`;
4. with ``guidance="step"`` (DPS, DiffusionPDE, FunDPS):
   :math:`x_{i+1} = x' - P\,\nabla_{\hat x} L`, the weights :math:`w_k` being step sizes and
   :math:`P` a per-channel factor (``guidance_channel_scale``, 1 by default). The terms see
   :math:`D(\hat x, \hat\sigma)` (``guidance_point="current"``, DPS) or the Heun point
   :math:`D(x'_\text{Euler}, \sigma_{i+1})`, differentiated through the Euler step back to
   :math:`\hat x` (``guidance_point="heun"``, FunDPS and DiffusionPDE; on the last step, where
   Heun has no second evaluation, the current point).

``integrator="daps"`` replaces 2-4 by a decoupled-annealing step (Zhang et al. 2025):
:math:`\hat x_0` from a few Euler steps of the unconditional flow down to ``ode_sigma_min``,
Langevin iterations on :math:`x_0` targeting
:math:`\exp(-L(x_0) - \|x_0 - \hat x_0\|^2 / (2 r^2))` with :math:`r = \sigma_i`, then
:math:`x_{i+1} = x_0 + \sigma_{i+1} n`. The terms are then evaluated on :math:`x_0` directly.

An optional ``projection`` hook runs after every step, ``x_{i+1} <- P(x_{i+1}, sigma_i, sigma_{i+1})``
(ReSample's hard data consistency and stochastic resampling, :mod:`pdeinv.latent.resample`).

Gradients are taken with respect to the state through the denoised estimate (autograd through
the network). Every call of the denoiser counts as one network evaluation (``nfe``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from pdeinv.sampling.schedule import edm_sigmas
from pdeinv.sampling.terms import GuidanceState, Term

INTEGRATORS = ("euler", "heun", "daps")
GUIDANCE_MODES = ("step", "drift")
GUIDANCE_POINTS = ("current", "heun")


class SamplingDivergedError(RuntimeError):
    """A non-finite value appeared during sampling; names the step, the noise level and the culprit."""

    def __init__(self, step: int, n_steps: int, sigma: float, culprit: str, hint: str):
        self.step, self.sigma, self.culprit = step, sigma, culprit
        super().__init__(
            f"sampling diverged at step {step} of {n_steps} (sigma = {sigma:.4g}): {culprit} is not finite; {hint}"
        )


@dataclass(frozen=True)
class DAPSConfig:
    r"""Settings of the decoupled annealing step (``integrator="daps"``).

    Parameters
    ----------
    ode_steps : int
        Euler steps of the unconditional flow from :math:`\sigma_i` to ``ode_sigma_min`` and 0.
    langevin_steps : int
        Langevin iterations per annealing level.
    lr : float
        Langevin step size :math:`\eta` at the first level (normalised units squared); it decays
        linearly to ``lr * lr_min_ratio`` at the last level, and is capped at :math:`r^2/2` so the
        Gaussian part :math:`\|x_0 - \hat x_0\|^2 / (2r^2)` stays stable.
    lr_min_ratio : float
        Final fraction of ``lr``.
    ode_sigma_min : float
        Last positive noise level of the inner flow.
    """

    ode_steps: int = 5
    langevin_steps: int = 20
    lr: float = 1e-4
    lr_min_ratio: float = 0.01
    ode_sigma_min: float = 0.01

    def __post_init__(self) -> None:
        for name in ("ode_steps", "langevin_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DAPSConfig.{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and 0 < self.lr_min_ratio <= 1 and self.ode_sigma_min > 0):
            raise ValueError(
                f"DAPSConfig needs lr > 0, 0 < lr_min_ratio <= 1 and ode_sigma_min > 0, got lr={self.lr}, "
                f"lr_min_ratio={self.lr_min_ratio}, ode_sigma_min={self.ode_sigma_min}"
            )

    def step_size(self, step: int, n_steps: int, r: float) -> float:
        """Langevin step size at annealing level ``step`` of ``n_steps`` with prior radius ``r``."""
        progress = step / max(n_steps - 1, 1)
        lr = self.lr * (1.0 - (1.0 - self.lr_min_ratio) * progress)
        return min(lr, 0.5 * r**2)


@dataclass(frozen=True)
class SamplerConfig:
    r"""Configuration of :class:`PosteriorSampler` (see the module docstring for the equations).

    Parameters
    ----------
    steps : int
        Number of steps :math:`N` (noise levels :math:`\sigma_0 .. \sigma_{N-1}`, then 0).
    sigma_min, sigma_max, rho : float
        EDM schedule (:func:`~pdeinv.sampling.schedule.edm_sigmas`), normalised units.
    integrator : {"euler", "heun", "daps"}
        Step rule. Heun costs :math:`2N - 1` network evaluations, Euler :math:`N`, DAPS
        :math:`N \cdot` ``daps.ode_steps`` (plus what the terms evaluate).
    guidance : {"step", "drift"}
        Apply the guidance gradient after the step (DPS family) or inside the drift (score form).
    s_churn, s_tmin, s_tmax, s_noise : float
        EDM stochastic churn; ``s_churn = 0`` is the deterministic sampler.
    daps : DAPSConfig
        Settings of ``integrator="daps"``.
    guidance_point : {"current", "heun"}
        Where the step-mode terms evaluate the denoised estimate (module docstring, step 4).
    guidance_channel_scale : tuple of float, optional
        Per-channel factor on the step-mode gradient (field space): a method whose step is
        defined on fields scaled differently per channel (DiffusionPDE).
    """

    steps: int = 50
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    integrator: str = "heun"
    guidance: str = "step"
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0
    daps: DAPSConfig = field(default_factory=DAPSConfig)
    guidance_point: str = "current"
    guidance_channel_scale: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.guidance_point not in GUIDANCE_POINTS:
            raise ValueError(f"guidance_point must be one of {GUIDANCE_POINTS}, got {self.guidance_point!r}")
        if self.guidance_point == "heun" and (self.guidance, self.integrator) != ("step", "heun"):
            raise ValueError("guidance_point='heun' needs guidance='step' and integrator='heun'")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {self.integrator!r}")
        if self.guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {GUIDANCE_MODES}, got {self.guidance!r}")
        if not (self.s_churn >= 0 and self.s_noise >= 0 and self.s_tmin <= self.s_tmax):
            raise ValueError("need s_churn >= 0, s_noise >= 0 and s_tmin <= s_tmax")
        edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)

    def sigmas(self) -> torch.Tensor:
        """The noise levels ``(steps + 1,)`` float64, last entry 0."""
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)


class FieldSpace:
    """The identity space: the sampler's state is the prior's normalised field ``(B, C, S, S)``.

    A latent space provides the same three members: ``encode(field) -> state``,
    ``decode(state) -> field`` (differentiable) and ``state_shape(channels, resolution)``.
    """

    field_space = True

    def encode(self, field: torch.Tensor) -> torch.Tensor:
        """Normalised field to state (identity)."""
        return field

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """State to normalised field (identity)."""
        return state

    def state_shape(self, channels: int, resolution: int) -> tuple[int, ...]:
        """Shape of one state, ``(C, S, S)``."""
        return (channels, resolution, resolution)


@dataclass
class SamplingResult:
    """Output of :meth:`PosteriorSampler.sample`.

    Attributes
    ----------
    normalized : torch.Tensor
        Samples as normalised fields ``(B, C, S, S)``.
    physical : torch.Tensor
        The same in physical units.
    nfe : int
        Network (denoiser) evaluations made, each on the whole batch.
    steps : int
        Sampling steps.
    """

    normalized: torch.Tensor
    physical: torch.Tensor
    nfe: int
    steps: int


@dataclass
class _Run:
    """Mutable bookkeeping of one call of :meth:`PosteriorSampler.sample`."""

    generator: torch.Generator
    n_steps: int
    step: int = 0
    sigma: float = 0.0
    nfe: int = 0

    def diverged(self, culprit: str, hint: str) -> SamplingDivergedError:
        return SamplingDivergedError(self.step, self.n_steps, self.sigma, culprit, hint)


class PosteriorSampler:
    r"""Draw posterior samples :math:`x \sim p(x \mid y)` with a diffusion prior and guidance terms.

    Parameters
    ----------
    prior : pdeinv.priors.base.FieldPrior
        ``denoise(x, sigma)`` on normalised ``(B, C, S, S)`` fields, ``channels``, ``to_physical``.
    config : SamplerConfig, optional
        Schedule, integrator, guidance mode and churn.
    terms : sequence of Term
        Guidance terms; an empty list samples the prior.
    space : object, optional
        ``encode/decode/state_shape`` of the state space; ``None`` is :class:`FieldSpace`.
    projection : callable, optional
        Post-step hook ``projection(x, sigma, sigma_next, context) -> x`` with ``context`` a
        :class:`GuidanceState` at ``sigma_next`` (its ``denoise`` is counted in ``nfe``).
    """

    def __init__(
        self, prior, config: SamplerConfig | None = None, terms: Sequence[Term] = (), space=None, projection=None
    ):
        for attribute in ("denoise", "channels", "to_physical"):
            if not hasattr(prior, attribute):
                raise ValueError(f"prior must follow the FieldPrior contract; it has no {attribute!r}")
        self.prior = prior
        self.config = SamplerConfig() if config is None else config
        self.terms = tuple(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be unique (they name the culprit of a divergence), got {names}")
        self.space = FieldSpace() if space is None else space
        self.projection = projection

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        resolution: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> SamplingResult:
        """Run the sampler on ``batch_size`` independent chains.

        Parameters
        ----------
        batch_size : int
            Number of samples ``B``; measurements of the terms are broadcast (batch 1) or matched (batch ``B``).
        generator : torch.Generator
            Source of all randomness (initial noise, churn, Langevin noise, group elements).
        resolution : int, optional
            Grid size ``S``; default the prior's ``resolution``.
        dtype : torch.dtype, optional
            Default: the dtype of the prior's ``mean`` buffer.

        Returns
        -------
        SamplingResult
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(generator, torch.Generator):
            raise ValueError("generator must be a torch.Generator (pdeinv never uses the global RNG)")
        resolution = self.prior.resolution if resolution is None else resolution
        reference = self.prior.mean
        dtype = reference.dtype if dtype is None else dtype
        shape = (batch_size,) + tuple(self.space.state_shape(len(self.prior.channels), resolution))
        sigmas = self.config.sigmas().tolist()
        run = _Run(generator=generator, n_steps=self.config.steps)
        x = sigmas[0] * self._noise(shape, dtype, reference.device, generator)
        for i in range(self.config.steps):
            run.step, run.sigma = i, sigmas[i]
            step = self._daps_step if self.config.integrator == "daps" else self._ode_step
            x = step(x, sigmas[i], sigmas[i + 1], run).detach()
            if self.projection is not None:
                context = self._state(x, x, sigmas[i + 1], run, False)
                x = self.projection(x, sigmas[i], sigmas[i + 1], context).detach()
            if not torch.isfinite(x).all():
                raise run.diverged(
                    "the sampler state",
                    "no single term's gradient was non-finite; lower the guidance weights or use more steps",
                )
        normalized = self.space.decode(x).detach()
        return SamplingResult(normalized, self.prior.to_physical(normalized), run.nfe, self.config.steps)

    @staticmethod
    def _noise(shape, dtype, device, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device).to(device)

    def _denoise(self, run: _Run) -> Callable[[torch.Tensor, float], torch.Tensor]:
        def counted(x: torch.Tensor, sigma: float) -> torch.Tensor:
            run.nfe += 1
            out = self.prior.denoise(x, sigma)
            if not torch.isfinite(out).all():
                raise run.diverged("the prior's denoised estimate", "check the prior on inputs at this noise level")
            return out

        return counted

    def _state(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float, run: _Run, through: bool):
        return GuidanceState(
            x=x,
            denoised=denoised,
            sigma=sigma,
            step=run.step,
            n_steps=run.n_steps,
            prior=self.prior,
            decode=self.space.decode,
            denoise=self._denoise(run),
            generator=run.generator,
            through_denoiser=through,
            field_space=getattr(self.space, "field_space", False),
        )

    def _active(self, sigma: float, run: _Run) -> list[tuple[Term, float]]:
        weighted = [(t, t.weight(sigma, run.step, run.n_steps)) for t in self.terms]
        return [(t, w) for t, w in weighted if w > 0]

    def _guidance_gradient(self, state: GuidanceState, active: list[tuple[Term, float]], run: _Run) -> torch.Tensor:
        r""":math:`\nabla_x \sum_k w_k L_k`, naming the term if a loss or gradient is not finite."""
        weighted = []
        for term, weight in active:
            loss = term.loss(state)
            if not torch.isfinite(loss).all():
                raise run.diverged(f"the loss of term {term.name!r}", f"lower its weight ({weight:.3g})")
            weighted.append((term, weight * loss.sum()))
        total = sum(value for _, value in weighted)
        gradient = torch.autograd.grad(total, state.x, retain_graph=True)[0]
        if not torch.isfinite(gradient).all():
            for term, value in weighted:
                part = torch.autograd.grad(value, state.x, retain_graph=True, allow_unused=True)[0]
                if part is not None and not torch.isfinite(part).all():
                    raise run.diverged(f"the gradient of term {term.name!r}", "lower its weight or its scale")
            raise run.diverged("the summed gradient of the terms", "lower the guidance weights")
        return gradient

    def _drift(self, x: torch.Tensor, sigma: float, run: _Run, guided: bool):
        """Drift ``(x - D)/sigma`` (+ ``sigma * grad`` in drift mode) and the step-mode gradient (or None)."""
        active = self._active(sigma, run) if guided else []
        denoise = self._denoise(run)
        if not active:
            with torch.no_grad():
                return (x - denoise(x, sigma)) / sigma, None
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            denoised = denoise(x, sigma)
            gradient = self._guidance_gradient(self._state(x, denoised, sigma, run, True), active, run)
        drift = (x.detach() - denoised.detach()) / sigma
        if self.config.guidance == "drift":
            return drift + sigma * gradient, None
        return drift, gradient

    def _ode_step(self, x: torch.Tensor, sigma: float, sigma_next: float, run: _Run) -> torch.Tensor:
        cfg = self.config
        gamma = min(cfg.s_churn / cfg.steps, math.sqrt(2.0) - 1.0) if cfg.s_tmin <= sigma <= cfg.s_tmax else 0.0
        sigma_hat = sigma * (1.0 + gamma)
        if gamma > 0:
            noise = self._noise(x.shape, x.dtype, x.device, run.generator)
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * cfg.s_noise * noise
        if cfg.guidance_point == "heun" and self._active(sigma_hat, run):
            x_next, step_gradient = self._heun_point_step(x, sigma_hat, sigma_next, run)
        else:
            drift, step_gradient = self._drift(x, sigma_hat, run, guided=True)
            x_next = x + (sigma_next - sigma_hat) * drift
            if cfg.integrator == "heun" and sigma_next > 0:
                drift_next, _ = self._drift(x_next, sigma_next, run, guided=cfg.guidance == "drift")
                x_next = x + (sigma_next - sigma_hat) * 0.5 * (drift + drift_next)
        if step_gradient is None:
            return x_next
        if cfg.guidance_channel_scale is not None:
            scale = torch.as_tensor(cfg.guidance_channel_scale, dtype=x.dtype, device=x.device)
            if scale.numel() != x.shape[1]:
                raise ValueError(
                    f"guidance_channel_scale has {scale.numel()} entries but the state has {x.shape[1]} channels"
                )
            step_gradient = step_gradient * scale.reshape(1, -1, *([1] * (x.ndim - 2)))
        return x_next - step_gradient

    def _heun_point_step(self, x: torch.Tensor, sigma: float, sigma_next: float, run: _Run):
        r"""Heun step and the terms' gradient at :math:`D(x'_\text{Euler}, \sigma_{i+1})` with respect to ``x``."""
        denoise = self._denoise(run)
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            denoised = denoise(leaf, sigma)
            drift = (leaf - denoised) / sigma
            euler = leaf + (sigma_next - sigma) * drift
            point, level, x_next = denoised, sigma, euler
            if sigma_next > 0:
                point, level = denoise(euler, sigma_next), sigma_next
                x_next = leaf + (sigma_next - sigma) * 0.5 * (drift + (euler - point) / sigma_next)
            state = self._state(leaf, point, level, run, True)
            gradient = self._guidance_gradient(state, self._active(sigma, run), run)
        return x_next.detach(), gradient

    def _daps_step(self, x: torch.Tensor, sigma: float, sigma_next: float, run: _Run) -> torch.Tensor:
        anchor = self._flow_to_clean(x, sigma, run)
        clean = self._langevin(anchor, sigma, run)
        if sigma_next > 0:
            clean = clean + sigma_next * self._noise(x.shape, x.dtype, x.device, run.generator)
        return clean

    def _flow_to_clean(self, x: torch.Tensor, sigma: float, run: _Run) -> torch.Tensor:
        """Euler steps of the unconditional probability flow from ``sigma`` to 0 (``daps.ode_steps`` NFE)."""
        daps = self.config.daps
        levels = edm_sigmas(daps.ode_steps, min(daps.ode_sigma_min, sigma), sigma, self.config.rho).tolist()
        denoise = self._denoise(run)
        with torch.no_grad():
            for level, level_next in zip(levels[:-1], levels[1:]):
                x = x + (level_next - level) * (x - denoise(x, level)) / level
        return x

    def _langevin(self, anchor: torch.Tensor, sigma: float, run: _Run) -> torch.Tensor:
        r"""Langevin on :math:`\exp(-L(x_0) - \|x_0 - \hat x_0\|^2/(2\sigma^2))` started at the anchor."""
        daps = self.config.daps
        eta = daps.step_size(run.step, run.n_steps, sigma)
        active = self._active(sigma, run)
        x = anchor
        for _ in range(daps.langevin_steps):
            gradient = torch.zeros_like(x)
            if active:
                with torch.enable_grad():
                    leaf = x.detach().requires_grad_(True)
                    gradient = self._guidance_gradient(self._state(leaf, leaf, sigma, run, False), active, run)
            noise = self._noise(x.shape, x.dtype, x.device, run.generator)
            x = x - eta * gradient + eta * (anchor - x) / sigma**2 + math.sqrt(2.0 * eta) * noise
        return x.detach()
