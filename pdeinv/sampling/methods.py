r"""The method registry: one name per reconstruction method, all on :class:`InverseProblem`.

Diffusion methods are presets of the one :class:`~pdeinv.sampling.sampler.PosteriorSampler`:
a :class:`~pdeinv.sampling.sampler.SamplerConfig` plus a list of terms. Guidance weights are
stated in the units of the method's publication and converted to the prior's normalisation:

- ``dps``: Heun, step guidance :math:`\zeta \nabla\|r\|` with the residual in the observed
  channel's normalised units (:math:`r = (P f - y)/s_c`), :math:`\zeta = 1000/N` (DPS's
  :math:`\zeta = 1` over its 1000 steps, so the accumulated guidance does not depend on :math:`N`).
- ``fundps`` (FunDPS, ``generation/dps.py``): MSE or L2 loss on residuals in FunDPS units
  (data standardised to 0.5, :math:`r = 0.5 (P f - y)/s_c`), coefficient 1 while
  :math:`\sigma > 1`, else :math:`\sigma` (in FunDPS units); a Huber PDE-residual term only for
  :math:`\sigma \le 1`; no update on the last step; 500 steps. Weights from FunDPS's configs,
  times :math:`u^2` with :math:`u = \sigma_\text{data}/0.5` (state-unit conversion, exact).
- ``diffusionpde`` (DiffusionPDE): :math:`\zeta\,\|P f - y\|` in physical units, weight times 0.1
  after 80 % of the steps, PDE residual :math:`\|R\|/(S-1)^2` after 80 %; 2000 steps. Weights from
  DiffusionPDE's configs times :math:`u_c^2`, :math:`u_c` = (DiffusionPDE's scale of the
  observed field)/(the prior's std of that channel).
- ``tmpd``: Tweedie moment projection (:func:`tmpd_preset`), drift guidance with the Gaussian
  likelihood :math:`N(y; P D(x_t), \sigma_y^2 + \sigma^2 P J P^\top)`.
- ``tmpd-solve``: ``tmpd``, then each sample's output field is the solve of its input field.
- ``daps``: decoupled annealing (``integrator="daps"``), Gaussian likelihood with
  :math:`\tau = 0.05` on normalised residuals.
- ``kriging``, ``interp-solve``, ``adjoint``, ``deepinv-dps``, ``pinv``: :mod:`pdeinv.sampling.baselines`.
- ``rlsd``, ``rlsd-norep`` (repulsion 0), ``dwgf``: particle methods
  (:mod:`pdeinv.sampling.particles`); ``samples`` is the number of particles per measurement.

Latent space (:mod:`pdeinv.latent`): every diffusion method runs in the latent space of a latent
prior (``--prior ns-latent``), its terms seeing the decoded field. Methods defined there:

- ``latent-dps``: DPS through the decoder (PSLD with :math:`\gamma = 0`), same weights as ``dps``;
- ``psld``: Latent DPS plus PSLD's gluing term (:class:`~pdeinv.latent.psld.GluingTerm`),
  :math:`\gamma = 0.1` relative to :math:`\omega = 1`, both scaled by DPS's :math:`1000/N`;
- ``resample``: Latent DPS plus ReSample's hard data consistency and stochastic resampling in the
  late steps (:class:`~pdeinv.latent.resample.ReSampleProjection`).

A ``+repa`` suffix adds the alignment term of Align & Invert
(:class:`~pdeinv.latent.repa.RepaTerm`) to a diffusion method whose prior was trained with REPA.

A ``+equireg`` suffix adds :class:`~pdeinv.sampling.terms.EquiRegTerm` (form ``equi``, weight
0.01, the operator's ``symmetries``) to a diffusion method; ``+equireg-d4`` uses the plain
rotations and flips of the square instead, the ablation row for an operator whose true group is
another one (forced Navier-Stokes).

The Navier-Stokes residual needs a full solve per evaluation, so the NS presets carry no PDE
term (FunDPS's and DiffusionPDE's NS "residual" :math:`\partial_x w + \partial_y w` is not the
vorticity equation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pdeinv.operators.symmetry import SymmetryGroup, dihedral_group
from pdeinv.sampling.baselines import (
    adjoint_inversion,
    deepinv_dps,
    interpolate_then_solve,
    kriging_baseline,
    pseudo_inverse,
)
from pdeinv.sampling.particles.methods import DWGFConfig, RLSDConfig, dwgf_solver, rlsd_solver, run_particles
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.progress import measurement_batches
from pdeinv.sampling.sampler import DAPSConfig, PosteriorSampler, SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import EquiRegTerm, ObservationTerm, PhysicsTerm, Term, channel_index

EQUIREG_GROUPS: dict[str, Callable[[InverseProblem], SymmetryGroup]] = {
    "+equireg": lambda problem: problem.operator.symmetries,
    "+equireg-d4": lambda problem: dihedral_group(),
}
REPA_SUFFIX = "+repa"
PSLD_GAMMA = 0.1
DPS_TOTAL_GUIDANCE = 1000.0
TMPD_MODEL_ERROR = {True: 1e-3, False: 1e-2}  # keyed by "the prior is Gaussian or models a linear PDE"
FUNDPS_DATA_STD = 0.5
# FunDPS configs/generation: (observation weight, loss, PDE weight); sigma range for poisson inverse.
FUNDPS_WEIGHTS = {
    ("helmholtz", "forward"): (10000.0, "mse", 1.0),
    ("helmholtz", "inverse"): (5000.0, "l2", 1.0),
    ("poisson", "forward"): (10000.0, "mse", 0.0),
    ("poisson", "inverse"): (20000.0, "mse", 0.0),
    ("darcy", "forward"): (10000.0, "mse", 0.0),
    ("darcy", "inverse"): (50000.0, "mse", 0.0),
    ("navier-stokes", "forward"): (5000.0, "mse", 0.0),
    ("navier-stokes", "inverse"): (7500.0, "l2", 0.0),
}
# DiffusionPDE configs: (observation weight, PDE weight); data scales of (input, output).
DIFFUSIONPDE_WEIGHTS = {
    ("helmholtz", "forward"): (0.8, 1.0),
    ("helmholtz", "inverse"): (60.0, 1.0),
    ("poisson", "forward"): (0.8, 1.0),
    ("poisson", "inverse"): (40.0, 1.0),
    ("darcy", "forward"): (5.0, 100.0),
    ("darcy", "inverse"): (5000.0, 100.0),
    ("navier-stokes", "forward"): (1.0, 0.0),
    ("navier-stokes", "inverse"): (1.0, 0.0),
}
DIFFUSIONPDE_SCALES = {
    "helmholtz": (2.15, 0.028),
    "poisson": (2.15, 1 / 36.5),
    "darcy": (5.0, 1 / 115),
    "navier-stokes": (1.6, 1.6),
}


@dataclass(frozen=True)
class GuidedPreset:
    """A diffusion method: its sampler configuration and a factory of its terms for measurements ``y``.

    With ``solve_output`` the output field of each sample is the forward solve of its input
    field, :math:`u = A(a)`, instead of the prior's output channel (forward tasks).
    """

    config: SamplerConfig
    terms: Callable[[torch.Tensor], list[Term]]
    projection: Callable[[torch.Tensor], Callable] | None = None
    solve_output: bool = False


def _direction(problem: InverseProblem) -> str:
    return "forward" if problem.observed == "input" else "inverse"


def _std(prior, problem: InverseProblem, role: str) -> float:
    return float(prior.std[channel_index(prior.channels, problem.channel(role))])


def _pde_term(problem: InverseProblem, schedule: GuidanceSchedule, reduction: str, scale: float) -> PhysicsTerm:
    return PhysicsTerm(
        problem.operator,
        problem.input_channel,
        problem.output_channel,
        schedule=schedule,
        reduction=reduction,
        scale=scale,
    )


def dps_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """DPS in the EDM loop: step guidance :math:`\\zeta\\nabla_{x_t}\\|r\\|`, :math:`\\zeta = 1000/N`."""
    scale = 1.0 / _std(prior, problem, problem.observed)
    channel = problem.channel(problem.observed)
    config = SamplerConfig(steps=options.steps or 200)
    schedule = GuidanceSchedule(weight=DPS_TOTAL_GUIDANCE / config.steps)

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="norm", scale=scale, schedule=schedule)]

    return GuidedPreset(config, terms)


def fundps_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """FunDPS (module docstring), weights converted exactly to the prior's units."""
    weight, loss, pde_weight = FUNDPS_WEIGHTS[(problem.pde, _direction(problem))]
    u = float(prior.sigma_data) / FUNDPS_DATA_STD
    m = problem.measurement_size
    scale = FUNDPS_DATA_STD / _std(prior, problem, problem.observed)
    if loss == "l2":
        scale /= math.sqrt(m)
    channel = problem.channel(problem.observed)
    sigma_range = (10.0, 0.01) if (problem.pde, _direction(problem)) == ("poisson", "inverse") else (80.0, 0.002)
    config = SamplerConfig(steps=options.steps or 500, sigma_max=sigma_range[0] * u, sigma_min=sigma_range[1] * u)
    observation = GuidanceSchedule(weight=weight * u**2, sigma_scale="min1", sigma_reference=u, cutoff_steps=1)
    physics = GuidanceSchedule(
        weight=pde_weight * u**2, sigma_scale="sigma", sigma_reference=u, sigma_below=u, cutoff_steps=1
    )

    def terms(y):
        kind = "norm" if loss == "l2" else "mse"
        listed = [ObservationTerm(problem.sensor, y, channel, loss=kind, scale=scale, schedule=observation)]
        if pde_weight > 0:
            listed.append(_pde_term(problem, physics, "huber", 1.0))
        return listed

    return GuidedPreset(config, terms)


def diffusionpde_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """DiffusionPDE (module docstring)."""
    weight, pde_weight = DIFFUSIONPDE_WEIGHTS[(problem.pde, _direction(problem))]
    scales = dict(zip(("input", "output"), DIFFUSIONPDE_SCALES[problem.pde]))
    u_obs = scales[problem.observed] / _std(prior, problem, problem.observed)
    u_out = scales["output"] / _std(prior, problem, "output")
    channel = problem.channel(problem.observed)
    observation = GuidanceSchedule(weight=weight * u_obs**2, switch_fraction=0.8, late_factor=0.1)
    physics = GuidanceSchedule(weight=pde_weight * u_out**2, start_fraction=0.8)
    pde_scale = 1.0 / (problem.resolution - 1) ** 2

    def terms(y):
        listed = [ObservationTerm(problem.sensor, y, channel, loss="norm", schedule=observation)]
        if pde_weight > 0:
            listed.append(_pde_term(problem, physics, "norm", pde_scale))
        return listed

    return GuidedPreset(SamplerConfig(steps=options.steps or 2000), terms)


def tmpd_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    r"""Tweedie moment projection: the Gaussian likelihood of :math:`y` given :math:`x_t` in the drift.

    :math:`p(y \mid x_t) \approx N(P D(x_t), \sigma_y^2 I + \sigma^2 P J P^\top)` (module docstring),
    with :math:`J` the Jacobian of the prior's Gaussian part when it has one (no network
    differentiation beyond one gradient per evaluation), Heun steps, :math:`\sigma_\text{max} = 500`
    (above the largest prior standard deviation of a normalised 128 x 128 field's modes).
    :math:`\sigma_y` adds a model-error std (normalised units, ``TMPD_MODEL_ERROR``) to the
    measurement noise, for the network's departure from the Gaussian part whose Jacobian stands in
    for the denoiser's: 1e-3 for a Gaussian prior (``prior.is_gaussian``, where :math:`J` is exact)
    and for the joint prior of a linear PDE (Gaussian data); 1e-2 otherwise (Navier-Stokes), where
    1e-3 makes the guided flow too stiff for 50 Heun steps. Measured with the shipped priors on 8
    validation fields (seed 1) per task, 50 steps: Navier-Stokes inverse 28.0 / 19.9 / 19.8 /
    1380 % at 0.1 / 0.01 / 0.003 / 0.001, forward 15.2 / 13.5 / 13.5 / 13.5 %; Helmholtz inverse
    33.0 / 18.9 / 16.3 / 15.4 %, forward 12.7 / 10.6 / 10.8 / 10.4 %.
    """
    scale = 1.0 / _std(prior, problem, problem.observed)
    channel = problem.channel(problem.observed)
    u = float(prior.sigma_data)
    model_error = TMPD_MODEL_ERROR[problem.linear or prior.is_gaussian]
    noise = math.hypot(problem.noise_std * scale, model_error)
    config = SamplerConfig(steps=options.steps or 100, sigma_max=500.0 * u, guidance="drift")

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="tweedie", noise_std=noise, scale=scale)]

    return GuidedPreset(config, terms)


def tmpd_solve_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """:func:`tmpd_preset` whose output field is the forward solve of each sample's input field."""
    preset = tmpd_preset(problem, prior, options)
    return GuidedPreset(preset.config, preset.terms, solve_output=True)


def daps_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """Decoupled annealing posterior sampling with a Gaussian likelihood (:math:`\\tau = 0.05`, normalised)."""
    scale = 1.0 / _std(prior, problem, problem.observed)
    channel = problem.channel(problem.observed)
    u = float(prior.sigma_data)
    config = SamplerConfig(
        steps=options.steps or 100,
        sigma_max=10.0 * u,
        sigma_min=0.01 * u,
        integrator="daps",
        daps=DAPSConfig(ode_steps=5, langevin_steps=50, lr=1e-3 * u**2, lr_min_ratio=0.1, ode_sigma_min=0.01 * u),
    )

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="gaussian", noise_std=0.05, scale=scale)]

    return GuidedPreset(config, terms)


def _latent_space(prior, method: str):
    """The prior's latent space, or a clear error for a field-space prior."""
    space = getattr(prior, "space", None)
    if space is None or getattr(space, "field_space", True):
        raise ValueError(
            f"{method} runs in latent space and needs a latent prior (e.g. --prior ns-latent, trained with "
            f"`pdeinv train prior --autoencoder DIR`); {type(prior).__name__} is a field-space prior"
        )
    return space


def latent_dps_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """Latent DPS: DPS's step guidance through the autoencoder's decoder (PSLD with gamma = 0)."""
    _latent_space(prior, "latent-dps")
    return dps_preset(problem, prior, options)


def psld_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """PSLD: Latent DPS plus the gluing term, gamma / omega = 0.1."""
    from pdeinv.latent.psld import GluingTerm

    space = _latent_space(prior, "psld")
    base = dps_preset(problem, prior, options)
    schedule = GuidanceSchedule(weight=PSLD_GAMMA * DPS_TOTAL_GUIDANCE / base.config.steps)
    channel = problem.channel(problem.observed)

    def terms(y):
        return base.terms(y) + [GluingTerm(problem.sensor, y, channel, space, schedule=schedule)]

    return GuidedPreset(base.config, terms)


def resample_preset(problem: InverseProblem, prior, options: MethodOptions) -> GuidedPreset:
    """ReSample: Latent DPS plus hard data consistency and stochastic resampling in the late steps."""
    from pdeinv.latent.resample import ReSampleProjection

    _latent_space(prior, "resample")
    base = dps_preset(problem, prior, options)
    return GuidedPreset(base.config, base.terms, lambda y: ReSampleProjection(base.terms(y)))


GUIDED = {
    "tmpd": tmpd_preset,
    "tmpd-solve": tmpd_solve_preset,
    "dps": dps_preset,
    "fundps": fundps_preset,
    "diffusionpde": diffusionpde_preset,
    "daps": daps_preset,
}
GUIDED.update({"latent-dps": latent_dps_preset, "psld": psld_preset, "resample": resample_preset})
BASELINES = {
    "kriging": kriging_baseline,
    "interp-solve": interpolate_then_solve,
    "adjoint": adjoint_inversion,
    "deepinv-dps": deepinv_dps,
    "pinv": pseudo_inverse,
}

PARTICLES = {
    "rlsd": (rlsd_solver, RLSDConfig()),
    "rlsd-norep": (rlsd_solver, RLSDConfig(repulsion=0.0)),
    "dwgf": (dwgf_solver, DWGFConfig()),
}


def method_names() -> list[str]:
    """Every registered name, ``+equireg`` variants of the diffusion methods included."""
    guided = sorted(GUIDED) + sorted(f"{name}{suffix}" for name in GUIDED for suffix in EQUIREG_GROUPS)
    guided += sorted(f"{name}{REPA_SUFFIX}" for name in GUIDED)
    return sorted(BASELINES) + guided + sorted(PARTICLES)


def parse_method(name: str) -> tuple[str, str | None]:
    """Split ``"fundps+equireg"`` into ``("fundps", "+equireg")`` (``None``: no EquiReg), checking the names.

    ``+repa`` may appear as well; the EquiReg suffix is one of ``EQUIREG_GROUPS``.
    """
    name, repa = split_repa(name)
    suffixes = [suffix for suffix in EQUIREG_GROUPS if name.endswith(suffix)]
    equireg = suffixes[0] if suffixes else None
    base = name[: -len(equireg)] if equireg else name
    if repa and base not in GUIDED:
        raise ValueError(f"{REPA_SUFFIX} applies to diffusion methods ({', '.join(sorted(GUIDED))}), not {base!r}")
    if base not in GUIDED and base not in BASELINES and base not in PARTICLES:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(method_names())}")
    if equireg and base not in GUIDED:
        raise ValueError(f"{equireg} applies to diffusion methods ({', '.join(sorted(GUIDED))}), not {base!r}")
    return base, equireg


def _equireg_term(problem: InverseProblem, options: MethodOptions) -> EquiRegTerm:
    schedule = GuidanceSchedule(weight=options.equireg_weight)
    group = EQUIREG_GROUPS[options.equireg](problem)
    return EquiRegTerm(group, schedule=schedule, output_channels=(problem.output_channel,))


def split_repa(name: str) -> tuple[str, bool]:
    """Split ``"psld+repa"`` (the suffix may precede ``+equireg``) into ``("psld", True)``."""
    return name.replace(REPA_SUFFIX, ""), REPA_SUFFIX in name


def _target_field(preset: GuidedPreset, problem: InverseProblem, prior, physical: torch.Tensor) -> torch.Tensor:
    """The recovered field ``(B, 1, S, S)`` of physical samples: their target channel, or the solve of their input."""
    if not (preset.solve_output and problem.target == "output"):
        return physical[:, [channel_index(prior.channels, problem.channel(problem.target))]]
    source = channel_index(prior.channels, problem.input_channel)
    with torch.no_grad():
        return problem.operator.A(physical[:, [source]])


def run_guided(
    preset: GuidedPreset, problem: InverseProblem, options: MethodOptions, repa: bool = False
) -> Reconstruction:
    """Sample ``options.samples`` chains per measurement with a preset; return target samples and moments.

    The sampler runs in the prior's ``space`` (latent priors) or on fields; ``repa`` adds the
    Align & Invert alignment term of a REPA-trained prior.
    """
    prior = options.prior
    generator = torch.Generator(device=prior.mean.device).manual_seed(options.seed)
    k, s = options.samples, problem.resolution
    collected, nfe = [], 0
    for rows in measurement_batches(problem.n, options.batch_size):
        y = problem.measurements[rows].to(prior.mean).repeat_interleave(k, 0)
        terms = preset.terms(y) + ([_equireg_term(problem, options)] if options.equireg else [])
        if repa:
            from pdeinv.latent.repa import repa_term

            terms.append(repa_term(problem, prior, y, preset.config.steps, options.repa_weight, options.repa_cutoff))
        projection = preset.projection(y) if preset.projection is not None else None
        space = getattr(prior, "space", None)
        sampler = PosteriorSampler(prior, preset.config, terms, space=space, projection=projection)
        result = sampler.sample(y.shape[0], generator, resolution=s)
        collected.append(_target_field(preset, problem, prior, result.physical).reshape(len(rows), k, 1, s, s))
        nfe = result.nfe
    samples = torch.cat(collected)
    return Reconstruction(samples.mean(1), samples.std(1) if k > 1 else None, samples, nfe)


def solve(method: str, problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    """Run registered method ``method`` (EquiReg suffixes allowed on diffusion methods) on ``problem``.

    With ``options.solver_dt`` the method sees ``problem.with_solver_dt(options.solver_dt)``.
    """
    base, equireg = parse_method(method)
    repa = split_repa(method)[1]
    if options.solver_dt is not None:
        problem = problem.with_solver_dt(options.solver_dt)
    if base in BASELINES:
        return BASELINES[base](problem, options)
    problem.check_prior(options.prior)
    if base in PARTICLES:
        build, config = PARTICLES[base]
        return run_particles(build, config, problem, options)
    preset = GUIDED[base](problem, options.prior, options)
    return run_guided(preset, problem, MethodOptions(**{**options.__dict__, "equireg": equireg}), repa=repa)
