r"""The particle engine shared by RLSD and DWGF: particles, Adam, a descending noise schedule.

``G`` groups of ``N`` particles (one group per measurement, ``B = G N``) live in the state space
of a prior (the normalised field, or a latent of an autoencoder through ``space.encode/decode``),
optionally each with an auxiliary data-space variable (a normalised field ``(C, S, S)``). Every
iteration ``t`` takes one noise level from the EDM schedule
:math:`\sigma_0 > \dots > \sigma_{T-1}` (``edm_sigmas`` without its final 0) and

1. draws :math:`\varepsilon \sim N(0, I)` per particle and forms :math:`z_t = z + \sigma_t \varepsilon`
   (:math:`z` is the variable the prior acts on: the particle itself, or its decoded field when the
   space only parametrises fields, ``space.parametrises_field``);
2. takes one Adam step on the particles :math:`z` with the summed gradient of the *particle terms*;
3. takes one Adam step on the auxiliary variables with the *auxiliary terms*, which see the freshly
   updated particles.

With ``steps_per_level = K > 1`` (not in the publications; default 1) steps 2-3 are repeated
``K`` times at the level, each repeat re-evaluating every term at the updated particles except the
noisy state :math:`z_t` and the denoiser's output :math:`D_\theta(z_t, \sigma_t)`, which are kept
from the first: ``K`` optimiser steps per network evaluation. A data term that costs a PDE solve
(a solved state) then gets ``K`` solver steps per network evaluation.

A method is its two lists of terms (:mod:`pdeinv.sampling.particles.terms`). The prior's
denoiser :math:`D_\theta(z_t, \sigma_t)` is evaluated at most once per iteration, without
gradient, and shared by every term (one network evaluation per iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from pdeinv.sampling.sampler import FieldSpace
from pdeinv.sampling.schedule import edm_sigmas


@dataclass(frozen=True)
class ParticleConfig:
    """Optimiser and schedule of the particle engine.

    Parameters
    ----------
    steps : int
        Iterations ``T``, one noise level and one Adam step each.
    lr, lr_aux : float
        Adam learning rates of the particles and of the auxiliary variables (state units).
    betas : tuple of float
        Adam's moment decay rates.
    sigma_max, sigma_min, rho : float
        The descending EDM schedule of the noise levels (normalised units).
    levels : tuple of float, optional
        Explicit noise levels, one per iteration (``steps`` of them, decreasing, > 0), replacing the
        EDM schedule (a publication's DDPM levels, :func:`~pdeinv.sampling.methods.units.particle_units`).
    init_std, aux_init_std : float, optional
        Standard deviation of the initial particles and auxiliary variables; ``None``: the prior's
        ``sigma_data``.
    steps_per_level : int
        Optimiser steps per noise level, all sharing the level's one network evaluation (module
        docstring); 1 in the publications.
    """

    steps: int = 100
    lr: float = 0.2
    lr_aux: float = 0.2
    betas: tuple[float, float] = (0.9, 0.99)
    sigma_max: float = 10.0
    sigma_min: float = 0.02
    rho: float = 7.0
    levels: tuple[float, ...] | None = None
    init_std: float | None = None
    aux_init_std: float | None = None
    steps_per_level: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "steps_per_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and self.lr_aux > 0):
            raise ValueError(f"learning rates must be > 0, got lr={self.lr}, lr_aux={self.lr_aux}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two decay rates in [0, 1), got {self.betas!r}")
        if self.levels is not None:
            levels = torch.tensor(self.levels, dtype=torch.float64)
            if len(levels) != self.steps or not (levels > 0).all() or not (levels[1:] < levels[:-1]).all():
                raise ValueError(
                    f"levels must be {self.steps} (= steps) strictly decreasing positive noise levels, "
                    f"got {len(levels)}"
                )

    def sigmas(self) -> torch.Tensor:
        """The noise levels ``(steps,)`` float64, strictly decreasing, all > 0."""
        if self.levels is not None:
            return torch.tensor(self.levels, dtype=torch.float64)
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)[:-1]


class ParticleStep:
    """What a term sees at one iteration (lazily computed, shared by the terms).

    Attributes
    ----------
    particles : torch.Tensor
        :math:`z`, ``(B, *state_shape)``, the leaf the particle terms differentiate.
    aux : torch.Tensor or None
        Auxiliary data-space variables ``(B, C, S, S)`` (normalised field units).
    sigma : float
        :math:`\\sigma_t`.
    step, n_steps : int
        Iteration index and count.
    per_group : int
        Particles per measurement ``N``.
    prior, space, generator
        The prior (``denoise`` in the state space), the state space and the random generator.
    """

    def __init__(self, particles, aux, sigma, step, n_steps, per_group, prior, space, generator, counter):
        self.particles, self.aux, self.sigma = particles, aux, float(sigma)
        self.step, self.n_steps, self.per_group = step, n_steps, per_group
        self.prior, self.space, self.generator = prior, space, generator
        self._counter = counter

    @cached_property
    def prior_state(self) -> torch.Tensor:
        """The variable the prior acts on, differentiable in the particles.

        The particles themselves (field or latent space), or their decoded field when the space
        only parametrises the prior's fields (``space.parametrises_field``, e.g.
        :class:`~pdeinv.sampling.particles.solved_space.SolvedSpace`).
        """
        return self.field if getattr(self.space, "parametrises_field", False) else self.particles

    @cached_property
    def noise(self) -> torch.Tensor:
        """:math:`\\varepsilon \\sim N(0, I)`, shaped like :attr:`prior_state`."""
        z = self.prior_state
        return torch.randn(z.shape, generator=self.generator, dtype=z.dtype, device=self.generator.device).to(z)

    @cached_property
    def noisy(self) -> torch.Tensor:
        """:math:`z_t = z + \\sigma_t \\varepsilon` for :math:`z` = :attr:`prior_state` (detached)."""
        return self.prior_state.detach() + self.sigma * self.noise

    @cached_property
    def denoised(self) -> torch.Tensor:
        """:math:`D_\\theta(z_t, \\sigma_t)`, shaped like :attr:`prior_state`, without gradient.

        One network evaluation per iteration, shared by every term.
        """
        self._counter[0] += 1
        with torch.no_grad():
            out = self.prior.denoise(self.noisy, self.sigma)
        if not torch.isfinite(out).all():
            raise FloatingPointError(f"the prior's denoised estimate is not finite at sigma = {self.sigma:.4g}")
        return out

    @cached_property
    def field(self) -> torch.Tensor:
        """The particles as normalised fields ``decode(z)``, ``(B, C, S, S)``, differentiable in :math:`z`."""
        return self.space.decode(self.particles)

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ...)`` -> ``(G, N, ...)``."""
        return x.reshape(x.shape[0] // self.per_group, self.per_group, *x.shape[1:])

    def repeat(self) -> ParticleStep:
        """The same level again at the current particles, keeping :attr:`noise`, :attr:`noisy` and
        :attr:`denoised` (no new network evaluation); everything else is recomputed."""
        again = ParticleStep(
            self.particles, self.aux, self.sigma, self.step, self.n_steps, self.per_group,
            self.prior, self.space, self.generator, self._counter,
        )
        for name in ("noise", "noisy", "denoised"):
            again.__dict__[name] = getattr(self, name)
        return again


@dataclass
class ParticleResult:
    """Final particles of :meth:`ParticleSolver.run`.

    Attributes
    ----------
    fields : torch.Tensor
        ``decode(z)``, normalised fields ``(B, C, S, S)``.
    aux : torch.Tensor or None
        The auxiliary data-space variables ``(B, C, S, S)``, when the method has them.
    nfe : int
        Network evaluations (each on the whole batch of particles).
    """

    fields: torch.Tensor
    aux: torch.Tensor | None
    nfe: int


class ParticleSolver:
    """Evolve particles under a list of loss terms with Adam over a descending noise schedule.

    Parameters
    ----------
    prior : FieldPrior-like
        ``denoise(z, sigma)`` in the state space, ``channels``, ``sigma_data``, ``mean`` (dtype/device).
    config : ParticleConfig
        Schedule and optimiser.
    particle_terms : sequence of ParticleTerm
        Losses of the particles :math:`z`.
    aux_terms : sequence of ParticleTerm
        Losses of the auxiliary variables; empty means the method has none.
    space : object, optional
        ``encode/decode/state_shape``; default :class:`~pdeinv.sampling.sampler.FieldSpace`.
    """

    def __init__(self, prior, config: ParticleConfig, particle_terms, aux_terms=(), space=None):
        if not particle_terms:
            raise ValueError("a particle method needs at least one particle term")
        self.prior, self.config = prior, config
        self.particle_terms, self.aux_terms = tuple(particle_terms), tuple(aux_terms)
        self.space = FieldSpace() if space is None else space

    def run(self, groups: int, per_group: int, generator: torch.Generator, resolution: int) -> ParticleResult:
        """Run ``groups`` x ``per_group`` particles on ``S = resolution`` fields; see the module docstring."""
        for term in self.particle_terms + self.aux_terms:
            term.check(per_group)
        particles, aux = self._initial(groups * per_group, generator, resolution)
        betas = self.config.betas
        optimiser = torch.optim.Adam([particles], lr=self.config.lr, betas=betas)
        aux_optimiser = torch.optim.Adam([aux], lr=self.config.lr_aux, betas=betas) if self.aux_terms else None
        counter = [0]
        sigmas = self.config.sigmas().tolist()
        for i, sigma in enumerate(sigmas):
            shared = (per_group, self.prior, self.space, generator, counter)
            step = ParticleStep(particles, aux, sigma, i, len(sigmas), *shared)
            for repeat in range(self.config.steps_per_level):
                step = step.repeat() if repeat else step
                self._descend(optimiser, self.particle_terms, step, particles)
                if aux_optimiser is not None:
                    self._descend(aux_optimiser, self.aux_terms, step.repeat(), aux)
        with torch.no_grad():
            fields = self.space.decode(particles)
        return ParticleResult(fields.detach(), None if aux is None else aux.detach(), counter[0])

    def _initial(self, batch: int, generator: torch.Generator, resolution: int):
        """Particles ``init_std * N(0, I)`` in the state space and, for methods with them, auxiliary fields
        ``aux_init_std * N(0, I)`` (both ``sigma_data`` by default)."""
        reference = self.prior.mean
        channels = len(self.prior.channels)
        sigma_data = float(self.prior.sigma_data)

        def draw(shape, scale) -> torch.Tensor:
            scale = sigma_data if scale is None else scale
            noise = torch.randn((batch, *shape), generator=generator, dtype=reference.dtype, device=generator.device)
            return (scale * noise.to(reference.device)).requires_grad_(True)

        particles = draw(tuple(self.space.state_shape(channels, resolution)), self.config.init_std)
        aux = draw((channels, resolution, resolution), self.config.aux_init_std) if self.aux_terms else None
        return particles, aux

    @staticmethod
    def _descend(optimiser, terms, step: ParticleStep, leaf: torch.Tensor) -> None:
        optimiser.zero_grad(set_to_none=True)
        total = sum(term.loss(step).sum() for term in terms)
        total.backward()
        if leaf.grad is None or not torch.isfinite(leaf.grad).all():
            names = ", ".join(t.name for t in terms)
            raise FloatingPointError(
                f"the gradient of the terms ({names}) is not finite at step {step.step} (sigma = {step.sigma:.4g}); "
                "lower the learning rates or the term weights"
            )
        optimiser.step()
