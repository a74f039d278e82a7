r"""DPS (Chung et al. 2023): a step :math:`\zeta \nabla_{x_t} \|y - A \hat x_0(x_t)\|` after each DDPM step.

DPS runs 1000 ancestral DDPM steps (linear :math:`\beta` from :math:`10^{-4}` to 0.02) on data in
:math:`[-1, 1]` and, after each, :math:`x^{VP}_{t-1} \leftarrow x^{VP}_{t-1} - \zeta \nabla_{x^{VP}_t}
\|y - A(\hat x_0)\|` (non-squared norm, ``scale`` :math:`\zeta` = 1 for phase retrieval, 0.3-0.5
for the linear tasks). Here the same step runs on the EDM grid (:func:`dps_sampler_units`):

- noise levels: the DDPM levels :math:`c\,\sigma_t`, :math:`\sigma_t^2 = (1-\bar\alpha_t)/\bar\alpha_t`,
  span the sampler's range (:math:`c` = the prior's :math:`\sigma_\text{data}` over DPS's 0.5);
- weight of EDM step :math:`i`: :math:`k \sum_t \zeta (1 + \sigma_t^2)` over the DDPM steps
  whose level lies in :math:`(\sigma_{i+1}, \sigma_i]` (VP to VE, :mod:`~pdeinv.sampling.methods.units`),
  :math:`k = c` for a state and a residual that both carry the factor :math:`c`;
- the residual is the observed channel's, in the prior's normalised units.

DPS's :math:`\zeta` is a step on the residual's *norm*, which is normalised by the residual
itself; it is not tied to a grid or a number of measurements, so it is used as published.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, channel_std, run_guided
from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.methods.units import (
    DDPM_BETAS,
    DDPM_STEPS,
    check_positive,
    ddpm_sigmas,
    step_scale,
    vp_step_weights,
)
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule, edm_sigmas
from pdeinv.sampling.terms import ObservationTerm


@dataclass(frozen=True)
class DPSConfig(GuidedConfig):
    r"""DPS's parameters in its own units.

    Parameters
    ----------
    zeta : float
        :math:`\zeta` (the code's ``scale``) per DDPM step, data in :math:`[-1, 1]`; 1 is the
        published value of the non-linear task and the value the linear tasks' 0.3-0.5 round to.
    steps : int
        Sampler steps (DPS: its 1000 DDPM steps).
    ddpm_steps : int
        Steps of the DDPM schedule :math:`\zeta` is defined on.
    ddpm_betas : tuple of float
        Its linear :math:`\beta` range.
    data_std : float
        Standard deviation of DPS's data in its units (images in :math:`[-1, 1]`: 0.5, EDM's
        :math:`\sigma_\text{data}`).
    """

    zeta: float = 1.0
    steps: int = 1000
    ddpm_steps: int = DDPM_STEPS
    ddpm_betas: tuple[float, float] = DDPM_BETAS
    data_std: float = 0.5

    def __post_init__(self) -> None:
        check_positive(zeta=self.zeta, data_std=self.data_std)


def vp_guidance(
    zeta: float, steps: int, state_unit: float, residual_unit: float, ddpm_steps: int = DDPM_STEPS,
    ddpm_betas: tuple[float, float] = DDPM_BETAS, stride: int = 1, alpha_bar_power: float = 0.0,
) -> tuple[SamplerConfig, GuidanceSchedule]:
    r"""The EDM sampler over a DDPM schedule's noise range and the per-step weights of its VP guidance step.

    Parameters
    ----------
    zeta : float
        The publication's VP step.
    steps : int
        EDM steps :math:`N`.
    state_unit, residual_unit : float
        :math:`c_x`, :math:`c_r`: the sampler's units over the publication's for the state and the residual.
    ddpm_steps, ddpm_betas, stride, alpha_bar_power
        The publication's schedule (:func:`~pdeinv.sampling.methods.units.vp_step_weights`).

    Returns
    -------
    SamplerConfig, GuidanceSchedule
        Heun steps from :math:`c_x \sigma_T` to :math:`c_x \sigma_1`; weight 1 times the per-step sums.
    """
    levels = ddpm_sigmas(ddpm_steps, ddpm_betas, stride) * state_unit
    config = SamplerConfig(steps=steps, sigma_min=float(levels[0]), sigma_max=float(levels[-1]))
    edm = edm_sigmas(steps, config.sigma_min, config.sigma_max, config.rho)
    weights = vp_step_weights(zeta, edm, state_unit, ddpm_steps, stride, alpha_bar_power, ddpm_betas)
    k = step_scale(state_unit, residual_unit)
    return config, GuidanceSchedule(weight=1.0, step_weights=tuple(k * w for w in weights))


def dps_sampler_units(problem: InverseProblem, config: DPSConfig, prior) -> GuidedPreset:
    """DPS in the sampler's units (module docstring)."""
    c = float(prior.sigma_data) / config.data_std
    sampler, step = vp_guidance(config.zeta, config.steps, c, c, config.ddpm_steps, config.ddpm_betas)
    channel, scale = problem.channel(problem.observed), 1.0 / channel_std(prior, problem, problem.observed)

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="norm", scale=scale, schedule=step)]

    return GuidedPreset(sampler, terms, step)


@register("dps", DPSConfig)
def dps(problem: InverseProblem, config: DPSConfig, options: MethodOptions) -> Reconstruction:
    """DPS on the EDM grid (module docstring)."""
    return run_guided(dps_sampler_units(problem, config, options.prior), problem, options, config.modifiers)
