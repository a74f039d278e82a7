r"""RLSD and DWGF as lists of particle terms, run on an :class:`~pdeinv.sampling.problem.InverseProblem`.

Both work in the prior's state space: the latent of an autoencoder when the prior carries one as
``prior.space`` (``encode/decode/state_shape``; ``pdeinv.latent``); for a field-space joint prior
of a linear PDE (or of any PDE with ``particle_state="solved"``) the normalised input field,
decoded to ``(a, A a)`` (:class:`~pdeinv.sampling.particles.solved_space.SolvedSpace`); otherwise
the normalised field. ``samples`` of :class:`~pdeinv.sampling.problem.MethodOptions` is the
number of particles per measurement. Each configuration holds the publication's parameters in its
units with its published defaults; :func:`~pdeinv.sampling.methods.units.particle_units` converts
them (derivation there). Notation of the publications' code, VE form: :math:`z` the state,
:math:`x` a data-space field, :math:`\mathcal D` the decoder, :math:`z_t = z + \sigma_t\varepsilon`,
:math:`D_\theta` the prior's denoiser, :math:`r(x)` the measurement residual in the observed
channel's normalised units, bars means over a tensor's entries (as the code's ``.mean()``).

RLSD (Zilberstein, Mardani, Segarra 2025; ``rsd.py``), particles :math:`(z^i, x^i)`, per level
:math:`t` one Adam step on :math:`z`, then one on :math:`x`:

.. math::
    L_z &= \tfrac{\omega}2 \overline{(x - \mathcal D(z))^2}
          + \frac{\lambda}{\rho}\,\overline{\mathrm{sg}\big[z - D_\theta(z_t)
          + \gamma \sigma_t^2 \nabla_{z_t} \log \textstyle\sum_{j \ne i}
          k(\mathcal D(z_t^i), \mathcal D(z_t^j))\big] \cdot z}, \\
    L_x &= \tfrac12 \overline{r(x)^2} + \tfrac\rho2 \overline{(x - \mathrm{sg}[\mathcal D(z)])^2},

:math:`\omega = (s_x/s_z)^2` (image terms against latent terms); the estimate is :math:`x`.

DWGF (Wang & Akyildiz 2025; ``dwgf.py``), particles :math:`z^i`, one Adam step per level:

.. math:: L = \tfrac{\omega}2 \overline{r(\mathcal D(z) + s n)^2}
          + \gamma\,\overline{\mathrm{sg}[D_\mu(z_t) - D_\theta(z_t)] \cdot z}
          + \omega c\,\overline{\mathrm{sg}[-(\mathcal D(\mathcal E(\tilde x)) - x_0)] \cdot x_0},

:math:`D_\mu` the denoiser of the particle mixture, the last (autoencoder) term only in a latent
space; the estimate is :math:`\mathcal D(z)`.

**The data term** is, as in both codes, half the mean square residual over the measured values
(``((y - H(x))**2).mean() / 2``: their degradation operators return the observed values only,
e.g. the kept pixels of an inpainting mask), with no noise level in it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.methods.units import PARTICLE_SCHEDULES, SD_BETAS, ParticleUnits, particle_units
from pdeinv.sampling.particles.engine import ParticleConfig, ParticleSolver
from pdeinv.sampling.particles.kernel import BANDWIDTHS
from pdeinv.sampling.particles.solved_space import SolvedSpace
from pdeinv.sampling.particles.terms import (
    AutoencoderScore,
    Coupling,
    DataFit,
    DecoderLikelihood,
    Measurement,
    MixtureRegulariser,
    ScoreDistillation,
)
from pdeinv.sampling.problem import PARTICLE_STATES, InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.progress import measurement_batches
from pdeinv.sampling.sampler import FieldSpace
from pdeinv.sampling.terms import channel_index


@dataclass(frozen=True)
class ParticleSchedule:
    r"""Optimiser, schedule and units shared by RLSD and DWGF (publication units).

    Parameters
    ----------
    betas : tuple of float
        Adam's moment decay rates.
    steps : int
        Iterations, one noise level and one Adam step each (the publications' ``num_steps = 999``
        scheduler gives 998).
    schedule : {"ddpm", "edm"}
        ``"ddpm"``: the publications' levels, Stable Diffusion's "scaled linear" DDPM schedule at the
        DDIM timesteps (:func:`~pdeinv.sampling.methods.units.ddim_particle_levels`); ``"edm"``: the EDM
        grid below.
    ddpm_betas : tuple of float
        The scaled-linear beta range (0.00085, 0.012).
    sigma_max, sigma_min, edm_rho : float
        The EDM grid of ``schedule="edm"`` (levels in units of the latent's std).
    latent_std, data_std : float
        Standard deviations :math:`s_z` of the publications' latents (1) and :math:`s_x` of their
        images (0.5, pixels in [-1, 1]).
    steps_per_level : int
        Adam steps per level sharing its one network evaluation: this package's addition, 1 (the
        publications' scheme) by default; more buys data-fit iterations without network evaluations
        (:class:`~pdeinv.sampling.particles.engine.ParticleConfig`).
    """

    betas: tuple[float, float] = (0.9, 0.99)
    steps: int = 998
    schedule: str = "ddpm"
    ddpm_betas: tuple[float, float] = SD_BETAS
    sigma_max: float = 10.0
    sigma_min: float = 0.02
    edm_rho: float = 7.0
    latent_std: float = 1.0
    data_std: float = 0.5
    steps_per_level: int = 1

    presets: ClassVar[dict[str, dict]] = {}

    def __post_init__(self) -> None:
        if self.schedule not in PARTICLE_SCHEDULES:
            raise ValueError(f"schedule must be one of {PARTICLE_SCHEDULES}, got {self.schedule!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps < 1000:
            raise ValueError(f"steps must be an integer in [1, 999], got {self.steps!r}")

    @classmethod
    def preset(cls, name: str, **changes):
        """The configuration of preset ``name`` (``cls.presets``; ``"paper"``: the defaults), with ``changes``."""
        if name != "paper" and name not in cls.presets:
            raise ValueError(f"{cls.__name__} has no preset {name!r}; choose one of paper, {', '.join(cls.presets)}")
        return cls(**{**cls.presets.get(name, {}), **changes})

    def engine(self, sigma_data: float, lr: float, lr_aux: float) -> tuple[ParticleConfig, ParticleUnits]:
        """The engine settings in the sampler's units and the :class:`~pdeinv.sampling.methods.units.ParticleUnits`."""
        units = particle_units(
            sigma_data, self.latent_std, self.data_std, lr, lr_aux, self.steps, self.schedule, self.ddpm_betas
        )
        c = units.state_unit
        engine = ParticleConfig(
            steps=self.steps, lr=units.lr, lr_aux=units.lr_aux, betas=tuple(self.betas),
            sigma_max=c * self.sigma_max, sigma_min=c * self.sigma_min, rho=self.edm_rho, levels=units.levels,
            init_std=c * self.latent_std, aux_init_std=units.field_unit, steps_per_level=self.steps_per_level,
        )
        return engine, units


@dataclass(frozen=True)
class RLSDConfig(ParticleSchedule):
    r"""RLSD's parameters (module docstring) in its units, with its published defaults.

    Parameters
    ----------
    gamma : float
        :math:`\gamma`, repulsion strength (``algo.gamma``; 50 in the repository's repulsion runs
        on box inpainting with N = 4; 0: the "NonRepuls-RLSD" ablation).
    lam : float
        :math:`\lambda` (``w_t``), weight of the score distillation.
    rho : float
        :math:`\tilde\rho` (``rho_reg``), coupling of the data-space variable to the decoded latent.
    lr_z, lr_x : float
        Adam learning rates of the latent and of the data-space variable (publication units).
    bandwidth : {"per-particle", "pooled"}
        Kernel bandwidth: the code's per-particle median over :math:`\log(N - 1)`, or the pooled
        median over :math:`\log(N + 1)`.
    betas, steps, schedule, ... : see :class:`ParticleSchedule`.

    Defaults: ``_configs/algo/rsd_stable.yaml`` (N = 4, :math:`\tilde\rho` = 0.2, :math:`\lambda` = 0.1,
    lr 0.2), Adam betas (0.9, 0.99), 998 levels. The code decodes the noisy latents and takes DINO
    ViT-S/16 features for the kernel; here the kernel acts on the decoded noisy field itself.
    ``RLSDConfig.presets["calibrated"]`` holds this package's earlier settings (100 EDM levels,
    :math:`\tilde\rho` = 0.1, the pooled bandwidth, fields in the prior's units).
    """

    gamma: float = 50.0
    lam: float = 0.1
    rho: float = 0.2
    lr_z: float = 0.2
    lr_x: float = 0.2
    bandwidth: str = "per-particle"

    presets: ClassVar[dict[str, dict]] = {
        "calibrated": {"rho": 0.1, "steps": 100, "schedule": "edm", "bandwidth": "pooled", "data_std": 1.0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bandwidth not in BANDWIDTHS:
            raise ValueError(f"bandwidth must be one of {BANDWIDTHS}, got {self.bandwidth!r}")
        if not (self.gamma >= 0 and self.lam >= 0 and self.rho > 0):
            raise ValueError(f"need gamma >= 0, lam >= 0 and rho > 0, got {self.gamma}, {self.lam}, {self.rho}")


@dataclass(frozen=True)
class RLSDNoRepulsionConfig(RLSDConfig):
    r"""RLSD without repulsion (the paper's "NonRepuls-RLSD" ablation): :math:`\gamma = 0`."""

    gamma: float = 0.0


@dataclass(frozen=True)
class DWGFConfig(ParticleSchedule):
    r"""DWGF's parameters (module docstring) in its units, with its published defaults.

    Parameters
    ----------
    gamma : float
        :math:`\gamma` (``w_t``), weight of the diffusion regulariser.
    lr : float
        Adam learning rate of the latents (publication units).
    vjp_coeff : float
        :math:`c` (``vjp_coeff``, the paper's :math:`1/\rho^2`), weight of the encoder-decoder prior
        score (latent space only).
    decoder_std : float
        :math:`s`, noise added to the decoded image in the likelihood and the autoencoder term (image units).
    betas, steps, schedule, ... : see :class:`ParticleSchedule`.

    Defaults: ``configs/algo/dwgf.yaml`` and ``dwgf.py``: :math:`\gamma` = 0.15, lr 1.0, Adam betas
    (0.9, 0.999), :math:`c` = 0.1, :math:`s` = 0.01, N = 4, 998 levels.
    ``DWGFConfig.presets["calibrated"]`` holds this package's earlier settings (lr 0.2, betas
    (0.9, 0.99), 100 EDM levels, fields in the prior's units), with which the benchmark rows on
    ``ns-inverse`` were measured.
    """

    gamma: float = 0.15
    lr: float = 1.0
    vjp_coeff: float = 0.1
    decoder_std: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)

    presets: ClassVar[dict[str, dict]] = {
        "calibrated": {"lr": 0.2, "betas": (0.9, 0.99), "steps": 100, "schedule": "edm", "data_std": 1.0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.gamma >= 0 and self.lr > 0 and self.vjp_coeff >= 0 and self.decoder_std >= 0):
            raise ValueError(
                f"need gamma >= 0, lr > 0, vjp_coeff >= 0, decoder_std >= 0, got {self.gamma}, {self.lr}, "
                f"{self.vjp_coeff}, {self.decoder_std}"
            )


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
    engine, units = config.engine(float(prior.sigma_data), config.lr_z, config.lr_x)
    particle_terms = [
        Coupling(units.image_weight, acts_on="particles"),
        ScoreDistillation(config.lam / config.rho, repulsion=config.gamma, bandwidth=config.bandwidth),
    ]
    aux_terms = [DataFit(_measurement(problem, prior, y)), Coupling(config.rho, acts_on="aux")]
    space = state_space(prior, problem) if space is None else space
    return ParticleSolver(prior, engine, particle_terms, aux_terms, space)


def dwgf_solver(problem: InverseProblem, prior, y: torch.Tensor, config: DWGFConfig, space=None) -> ParticleSolver:
    """The DWGF :class:`ParticleSolver` for measurements ``y`` (one row per particle) in ``space``.

    ``space`` defaults to ``state_space(prior, problem)``.
    """
    engine, units = config.engine(float(prior.sigma_data), config.lr, config.lr)
    space = state_space(prior, problem) if space is None else space
    noise = units.field_unit * config.decoder_std
    terms = [
        DecoderLikelihood(_measurement(problem, prior, y), weight=units.image_weight, decoder_std=noise),
        MixtureRegulariser(config.gamma),
    ]
    if not getattr(space, "field_space", False):
        terms.append(AutoencoderScore(units.image_weight * config.vjp_coeff, noise))
    return ParticleSolver(prior, engine, terms, (), space)


def run_particles(build, config, problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    """Run a particle method on every measurement; ``options.samples`` particles each.

    Parameters
    ----------
    build : callable
        ``build(problem, prior, y, config, space) -> ParticleSolver`` (:func:`rlsd_solver`,
        :func:`dwgf_solver`); ``space`` is ``state_space(prior, problem, options.particle_state)``.
    config : RLSDConfig or DWGFConfig
        The method's settings; ``options.steps`` overrides ``config.steps``.

    Returns
    -------
    Reconstruction
        ``samples`` ``(n, N, 1, S, S)`` (the particles' target field, physical units), their mean and std.
    """
    prior = options.prior
    if options.steps is not None:
        config = dataclasses.replace(config, steps=options.steps)
    target = channel_index(prior.channels, problem.channel(problem.target))
    generator = torch.Generator(device=prior.mean.device).manual_seed(options.seed)
    k, s = options.samples, problem.resolution
    space = state_space(prior, problem, options.particle_state)
    collected, nfe = [], 0
    for rows in measurement_batches(problem.n, options.batch_size):
        y = problem.measurements[rows].to(prior.mean).repeat_interleave(k, 0)
        result = build(problem, prior, y, config, space).run(len(rows), k, generator, s)
        estimate = result.aux if result.aux is not None else result.fields
        physical = prior.to_physical(estimate)[:, [target]]
        collected.append(physical.reshape(len(rows), k, 1, s, s))
        nfe = result.nfe
    samples = torch.cat(collected)
    return Reconstruction(samples.mean(1), samples.std(1) if k > 1 else None, samples, nfe)


@register("rlsd", RLSDConfig, kind="particle")
def rlsd(problem: InverseProblem, config: RLSDConfig, options: MethodOptions) -> Reconstruction:
    """RLSD (module docstring); ``options.samples`` particles per measurement."""
    return run_particles(rlsd_solver, config, problem, options)


@register("rlsd-norep", RLSDNoRepulsionConfig, kind="particle")
def rlsd_norep(problem: InverseProblem, config: RLSDConfig, options: MethodOptions) -> Reconstruction:
    """RLSD without repulsion."""
    return run_particles(rlsd_solver, config, problem, options)


@register("dwgf", DWGFConfig, kind="particle")
def dwgf(problem: InverseProblem, config: DWGFConfig, options: MethodOptions) -> Reconstruction:
    """DWGF (module docstring); ``options.samples`` particles per measurement."""
    return run_particles(dwgf_solver, config, problem, options)
