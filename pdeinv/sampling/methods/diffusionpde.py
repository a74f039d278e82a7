r"""DiffusionPDE (Huang et al. 2024): Heun EDM sampling with observation and PDE-residual steps.

DiffusionPDE trains on fields scaled per channel, :math:`x^{p}_c = f_c / s_c` (Helmholtz
:math:`s = (2.15, 0.028)`, Poisson :math:`(2.15, 1/36.5)`, Darcy :math:`(5, 1/115)`, Navier-Stokes
:math:`(1.6, 1.6)`),
runs EDM's Heun sampler (:math:`\sigma` 80 to 0.002, 2000 steps) and after every step takes

.. math:: x_{i+1} = x'_{i+1} - \zeta_\text{obs} f_i \nabla_{x_i} \|P \hat f - y\|
          - \zeta_\text{pde} \mathbb 1[i > 0.8 N] \nabla_{x_i} \frac{\|R(\hat a, \hat u)\|}{(S-1)^2},

:math:`f_i = 1` for :math:`i \le 0.8N` and 0.1 after, the residuals in physical units on the
denoised estimate at the Heun point, :math:`\hat x = D(x'_\text{Euler}, \sigma_{i+1})`, 500 points on
a :math:`128 \times 128` grid.

Conversion (:func:`diffusionpde_sampler_units`): channel :math:`c` of the prior's normalised field
is :math:`x_c = u_c x^p_c` (plus a constant), :math:`u_c = s_c / \text{std}_c`, so a step
:math:`-\zeta \nabla_{x^p}` is :math:`-\zeta\, u_c^2 \nabla_{x_c}` on channel :math:`c`
(``guidance_channel_scale``). The sampler has one noise level for all channels; DiffusionPDE's
range becomes :math:`(80 \max_c u_c,\ 0.002 \min_c u_c)`, so every channel starts at least as noisy
and ends at least as clean as in DiffusionPDE. The weights carry the grid factor
(:mod:`~pdeinv.sampling.methods.units`): :math:`(S/128)^2\sqrt{500/M}` for the observation norm and
:math:`S/128` for the residual norm over the :math:`S^2` grid values.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdeinv.errors import UsageError
from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, direction, run_guided
from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.methods.units import check_positive, grid_factor, published_weights_missing
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import ObservationTerm, PhysicsTerm, channel_index

# DiffusionPDE configs/<pde>-<direction>.yaml: (zeta of the observed channel, zeta_pde).
DIFFUSIONPDE_WEIGHTS = {
    ("helmholtz", "forward"): (0.8, 1.0),
    ("helmholtz", "inverse"): (60.0, 1.0),
    ("poisson", "forward"): (0.8, 1.0),
    ("poisson", "inverse"): (40.0, 1.0),
    ("darcy", "forward"): (5.0, 100.0),
    ("darcy", "inverse"): (5000.0, 100.0),
    ("navier-stokes", "forward"): (1.0, 1.0),
    ("navier-stokes", "inverse"): (1.0, 1.0),
}
# DiffusionPDE scripts/generate_<pde>.py: physical field = scale * network field, (input, output).
DIFFUSIONPDE_SCALES = {
    "helmholtz": (2.15, 0.028),
    "poisson": (2.15, 1 / 36.5),
    "darcy": (5.0, 1 / 115),
    "navier-stokes": (1.6, 1.6),
}


@dataclass(frozen=True)
class DiffusionPDEConfig(GuidedConfig):
    r"""DiffusionPDE's parameters in its own units.

    Parameters
    ----------
    zeta_obs : float
        :math:`\zeta` of the observed channel's observation loss.
    zeta_pde : float
        :math:`\zeta_\text{pde}`; not used for Navier-Stokes, whose residual needs a solve per
        evaluation (DiffusionPDE's NS "residual" :math:`\partial_x w + \partial_y w` is not the
        vorticity equation).
    steps : int
        Heun steps (2000).
    sigma_max, sigma_min, rho : float
        EDM schedule in DiffusionPDE's units.
    switch_fraction, late_factor : float
        After ``switch_fraction`` of the steps the observation step is multiplied by ``late_factor``
        and the PDE step starts.
    input_scale, output_scale : float
        :math:`s_c` of the input and output channels (physical = scale x network field).
    paper_resolution, paper_points : int
        Grid and observed points the weights were tuned for.
    """

    zeta_obs: float = 60.0
    zeta_pde: float = 1.0
    steps: int = 2000
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    rho: float = 7.0
    switch_fraction: float = 0.8
    late_factor: float = 0.1
    input_scale: float = 2.15
    output_scale: float = 0.028
    paper_resolution: int = 128
    paper_points: int = 500

    def __post_init__(self) -> None:
        check_positive(zeta_obs=self.zeta_obs, input_scale=self.input_scale, output_scale=self.output_scale)

    @classmethod
    def for_problem(cls, problem: InverseProblem) -> DiffusionPDEConfig:
        """DiffusionPDE's configuration of the task (its ``configs`` file and data scales).

        Raises
        ------
        UsageError
            For a task DiffusionPDE publishes no weights for: pass a :class:`DiffusionPDEConfig`.
        """
        key = (problem.pde, direction(problem))
        if key not in DIFFUSIONPDE_WEIGHTS:
            raise UsageError(published_weights_missing("DiffusionPDE", key, DIFFUSIONPDE_WEIGHTS, cls.__name__))
        zeta_obs, zeta_pde = DIFFUSIONPDE_WEIGHTS[key]
        scales = DIFFUSIONPDE_SCALES[problem.pde]
        return cls(zeta_obs=zeta_obs, zeta_pde=zeta_pde, input_scale=scales[0], output_scale=scales[1])


def channel_units(problem: InverseProblem, config: DiffusionPDEConfig, prior) -> tuple[float, ...]:
    r""":math:`u_c = s_c / \text{std}_c` for every channel of the prior, in its channel order."""
    scales = {problem.input_channel: config.input_scale, problem.output_channel: config.output_scale}
    missing = [c for c in prior.channels if c not in scales]
    if missing:
        raise ValueError(
            f"DiffusionPDE scales the input and output channels; the prior also has {missing}. "
            "Use a joint field prior over the task's two fields"
        )
    return tuple(scales[c] / float(prior.std[channel_index(prior.channels, c)]) for c in prior.channels)


def diffusionpde_sampler_units(problem: InverseProblem, config: DiffusionPDEConfig, prior) -> GuidedPreset:
    """DiffusionPDE in the sampler's units (module docstring)."""
    if getattr(getattr(prior, "space", None), "field_space", True) is False:
        raise ValueError("diffusionpde runs on fields; use a joint field prior, not a latent one")
    units = channel_units(problem, config, prior)
    s, m = problem.resolution, problem.measurement_size
    sampler = SamplerConfig(
        steps=config.steps, sigma_max=config.sigma_max * max(units), sigma_min=config.sigma_min * min(units),
        rho=config.rho, guidance_point="heun", guidance_channel_scale=tuple(u**2 for u in units),
    )
    obs_grid = grid_factor(s, m, config.paper_resolution, config.paper_points, "norm")
    pde_grid = grid_factor(s, s * s, config.paper_resolution, config.paper_resolution**2, "norm")
    observation = GuidanceSchedule(
        weight=config.zeta_obs * obs_grid, switch_fraction=config.switch_fraction, late_factor=config.late_factor
    )
    physics = GuidanceSchedule(weight=config.zeta_pde * pde_grid, start_fraction=config.switch_fraction)
    channel = problem.channel(problem.observed)
    with_pde = config.zeta_pde > 0 and problem.linear

    def terms(y):
        listed = [ObservationTerm(problem.sensor, y, channel, loss="norm", schedule=observation)]
        if with_pde:
            listed.append(
                PhysicsTerm(
                    problem.operator, problem.input_channel, problem.output_channel, schedule=physics,
                    reduction="norm", scale=1.0 / (s - 1) ** 2,
                )
            )
        return listed

    return GuidedPreset(sampler, terms, observation)


@register("diffusionpde", DiffusionPDEConfig)
def diffusionpde(problem: InverseProblem, config: DiffusionPDEConfig, options: MethodOptions) -> Reconstruction:
    """DiffusionPDE (module docstring)."""
    return run_guided(diffusionpde_sampler_units(problem, config, options.prior), problem, options, config.modifiers)
