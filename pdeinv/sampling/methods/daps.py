r"""DAPS (Zhang et al. 2025): decoupled annealing, Langevin on :math:`x_0` at each noise level.

For each annealing level :math:`\sigma_k`: :math:`\hat x_0` from ``ode_steps`` Euler steps of the
unconditional flow, Langevin on :math:`\exp(-\|r(x_0)\|^2/(2\tau^2) - \|x_0 - \hat x_0\|^2/(2\sigma_k^2))`
(step decaying linearly to ``lr_min_ratio`` of ``lr``), then :math:`x_{k+1} = x_0 + \sigma_{k+1} n`.
Noise levels and the step are in units of the prior's :math:`\sigma_\text{data}` (and its square);
:math:`\tau` is in the observed channel's normalised units. These are this package's settings for
the PDE tasks (DAPS publishes 200 levels from 100 to 0.1 and :math:`\tau = 0.01` for images).
"""

from __future__ import annotations

from dataclasses import dataclass

from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, channel_std, run_guided
from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import DAPSConfig, SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import ObservationTerm


@dataclass(frozen=True)
class DAPSMethodConfig(GuidedConfig):
    r"""DAPS's parameters (module docstring for the units).

    Parameters
    ----------
    steps : int
        Annealing levels.
    sigma_max, sigma_min : float
        Range of the levels.
    ode_steps, langevin_steps : int
        Inner flow steps and Langevin iterations per level.
    lr, lr_min_ratio : float
        Langevin step at the first level and its final fraction.
    tau : float
        Likelihood std :math:`\tau`.
    """

    steps: int = 100
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    ode_steps: int = 5
    langevin_steps: int = 50
    lr: float = 1e-3
    lr_min_ratio: float = 0.1
    tau: float = 0.05


def daps_sampler_units(problem: InverseProblem, config: DAPSMethodConfig, prior) -> GuidedPreset:
    """DAPS in the sampler's units."""
    scale = 1.0 / channel_std(prior, problem, problem.observed)
    channel = problem.channel(problem.observed)
    u = float(prior.sigma_data)
    inner = DAPSConfig(
        ode_steps=config.ode_steps, langevin_steps=config.langevin_steps, lr=config.lr * u**2,
        lr_min_ratio=config.lr_min_ratio, ode_sigma_min=config.sigma_min * u,
    )
    sampler = SamplerConfig(
        steps=config.steps, sigma_max=config.sigma_max * u, sigma_min=config.sigma_min * u, integrator="daps",
        daps=inner,
    )

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="gaussian", noise_std=config.tau, scale=scale)]

    return GuidedPreset(sampler, terms, GuidanceSchedule())


@register("daps", DAPSMethodConfig)
def daps(problem: InverseProblem, config: DAPSMethodConfig, options: MethodOptions) -> Reconstruction:
    """Decoupled annealing posterior sampling (module docstring)."""
    return run_guided(daps_sampler_units(problem, config, options.prior), problem, options, config.modifiers)
