r"""RLSD and DWGF as lists of particle terms, run on an :class:`~pdeinv.sampling.problem.InverseProblem`.

Both work in the prior's state space: the latent of an autoencoder when the prior carries one as
``prior.space`` (``encode/decode/state_shape``; ``pdeinv.latent``); for a field-space joint prior
of a linear PDE (or of any PDE with ``particle_state="solved"``) the normalised input field,
decoded to ``(a, A a)`` (:class:`~pdeinv.sampling.particles.solved_space.SolvedSpace`); otherwise
the normalised field.
Measurements enter as residuals :math:`r` of the observed channel in its normalised units
(:class:`~pdeinv.sampling.particles.terms.Measurement`). ``samples`` of
:class:`~pdeinv.sampling.problem.MethodOptions` is the number of particles per measurement.

RLSD (augmented form, Zilberstein et al. 2025), particles :math:`(z^i, x^i)`, per iteration

.. math::
    L_z &= \tfrac12 \overline{(x - \mathcal D(z))^2}
          + \frac{\lambda}{\rho}\,\langle \mathrm{sg}[z - D_\theta(z_t)], z\rangle/d
          + \gamma \sigma_t^2 \log \textstyle\sum_{j \ne i} k(f_i, f_j), \\
    L_x &= \tfrac12 \overline{r(x)^2} + \tfrac\rho2 \overline{(x - \mathrm{sg}[\mathcal D(z)])^2},

the estimate is the data-space variable :math:`x` (as in the reference code).

DWGF (Wang & Akyildiz 2025), particles :math:`z^i`, per iteration

.. math:: L = \tfrac12 \overline{r(\mathcal D(z) + s n)^2}
          + \gamma \langle \mathrm{sg}[D_\mu(z_t) - D_\theta(z_t)], z\rangle/d
          + c\,\langle \mathrm{sg}[-(\mathcal D(\mathcal E(\tilde x)) - x_0)], x_0\rangle/n,

the last (autoencoder) term only in a latent space; the estimate is :math:`\mathcal D(z)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pdeinv.sampling.particles.engine import ParticleConfig, ParticleSolver
from pdeinv.sampling.particles.solved_space import SolvedSpace
from pdeinv.sampling.particles.terms import (
    AutoencoderScore,
    Coupling,
    DataFit,
    DecoderLikelihood,
    Measurement,
    MixtureRegulariser,
    Repulsion,
    ScoreDistillation,
)
from pdeinv.sampling.problem import PARTICLE_STATES, InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import FieldSpace
from pdeinv.sampling.terms import channel_index


@dataclass(frozen=True)
class RLSDConfig:
    """RLSD's weights (module docstring) and its engine settings.

    Parameters
    ----------
    rho : float
        :math:`\\rho`, coupling of the data-space variable to the decoded particle.
    lam : float
        :math:`\\lambda`, weight of the score distillation (divided by :math:`\\rho` in :math:`L_z`).
    repulsion : float
        :math:`\\gamma`, repulsion weight (0: the non-repulsive ablation).
    features : str
        Features of the kernel, ``"field"`` or ``"latent"``.
    engine : ParticleConfig
        Steps, learning rates, schedule.
    """

    rho: float = 0.1
    lam: float = 0.1
    repulsion: float = 0.01
    features: str = "field"
    engine: ParticleConfig = field(default_factory=ParticleConfig)


@dataclass(frozen=True)
class DWGFConfig:
    """DWGF's weights (module docstring) and its engine settings.

    Parameters
    ----------
    gamma : float
        :math:`\\gamma`, weight of the diffusion regulariser.
    autoencoder_weight : float
        :math:`c`, weight of the encoder-decoder prior score (latent space only).
    decoder_std : float
        :math:`s`, noise added to the decoded field in the likelihood and the autoencoder term.
    engine : ParticleConfig
        Steps, learning rate, schedule.
    """

    gamma: float = 0.15
    autoencoder_weight: float = 0.1
    decoder_std: float = 0.01
    engine: ParticleConfig = field(default_factory=ParticleConfig)


def state_space(prior, problem: InverseProblem | None = None, state: str = "auto"):
    """The particles' state space.

    ``prior.space`` when the prior has one (a latent prior). Otherwise, with ``state="auto"``,
    a :class:`~pdeinv.sampling.particles.solved_space.SolvedSpace` when ``problem``'s operator is
    linear (a solve per iteration is cheap, and the output channel is then exactly the solve of the
    input), else the joint field itself; ``"joint"`` and ``"solved"`` force one or the other.
    """
    if state not in PARTICLE_STATES:
        raise ValueError(f"unknown particle state {state!r}; choose one of {PARTICLE_STATES}")
    own = getattr(prior, "space", None)
    if own is not None:
        return own
    if state == "solved" or (state == "auto" and problem is not None and problem.linear):
        if problem is None:
            raise ValueError("a solved particle state needs the problem's operator")
        return SolvedSpace(problem.operator, prior, problem.input_channel, problem.output_channel)
    return FieldSpace()


def _measurement(problem: InverseProblem, prior, y: torch.Tensor) -> Measurement:
    channel = problem.channel(problem.observed)
    std = float(prior.std[channel_index(prior.channels, channel)])
    return Measurement(problem.sensor, y, channel, prior, 1.0 / std)


def rlsd_solver(problem: InverseProblem, prior, y: torch.Tensor, config: RLSDConfig, space=None) -> ParticleSolver:
    """The RLSD :class:`ParticleSolver` for measurements ``y`` (one row per particle) in ``space``.

    ``space`` defaults to ``state_space(prior, problem)``.
    """
    particle_terms = [
        Coupling(1.0, acts_on="particles"),
        ScoreDistillation(config.lam / config.rho),
        Repulsion(config.repulsion, config.features),
    ]
    aux_terms = [DataFit(_measurement(problem, prior, y)), Coupling(config.rho, acts_on="aux")]
    space = state_space(prior, problem) if space is None else space
    return ParticleSolver(prior, config.engine, particle_terms, aux_terms, space)


def dwgf_solver(problem: InverseProblem, prior, y: torch.Tensor, config: DWGFConfig, space=None) -> ParticleSolver:
    """The DWGF :class:`ParticleSolver` for measurements ``y`` (one row per particle) in ``space``.

    ``space`` defaults to ``state_space(prior, problem)``.
    """
    space = state_space(prior, problem) if space is None else space
    terms = [
        DecoderLikelihood(_measurement(problem, prior, y), decoder_std=config.decoder_std),
        MixtureRegulariser(config.gamma),
    ]
    if not getattr(space, "field_space", False):
        terms.append(AutoencoderScore(config.autoencoder_weight, config.decoder_std))
    return ParticleSolver(prior, config.engine, terms, (), space)


def run_particles(build, config, problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    """Run a particle method on every measurement; ``options.samples`` particles each.

    Parameters
    ----------
    build : callable
        ``build(problem, prior, y, config, space) -> ParticleSolver`` (:func:`rlsd_solver`,
        :func:`dwgf_solver`); ``space`` is ``state_space(prior, problem, options.particle_state)``.
    config : RLSDConfig or DWGFConfig
        The method's settings; ``options.steps`` overrides ``config.engine.steps``.

    Returns
    -------
    Reconstruction
        ``samples`` ``(n, N, 1, S, S)`` (the particles' target field, physical units), their mean and std.
    """
    prior = options.prior
    if options.steps is not None:
        config = _with_steps(config, options.steps)
    target = channel_index(prior.channels, problem.channel(problem.target))
    generator = torch.Generator(device=prior.mean.device).manual_seed(options.seed)
    k, s = options.samples, problem.resolution
    space = state_space(prior, problem, options.particle_state)
    collected, nfe = [], 0
    for rows in torch.arange(problem.n, device="cpu").split(options.batch_size):
        y = problem.measurements[rows].to(prior.mean).repeat_interleave(k, 0)
        result = build(problem, prior, y, config, space).run(len(rows), k, generator, s)
        estimate = result.aux if result.aux is not None else result.fields
        physical = prior.to_physical(estimate)[:, [target]]
        collected.append(physical.reshape(len(rows), k, 1, s, s))
        nfe = result.nfe
    samples = torch.cat(collected)
    return Reconstruction(samples.mean(1), samples.std(1) if k > 1 else None, samples, nfe)


def _with_steps(config, steps: int):
    engine = ParticleConfig(**{**config.engine.__dict__, "steps": steps})
    return type(config)(**{**config.__dict__, "engine": engine})
