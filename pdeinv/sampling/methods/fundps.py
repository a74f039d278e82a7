r"""FunDPS (Yao, Mammadov et al. 2025, ``generation/dps.py``): DPS steps at the Heun point of the EDM sampler.

FunDPS runs EDM's Heun sampler (:math:`\sigma` 80 to 0.002, :math:`\rho = 7`, 500 steps) on data
standardised to 0.5 and, on every step but the last, takes

.. math:: x_{i+1} = x'_{i+1} - \nabla_{x_i}\Big( c_i\, w_\text{obs}\, L_\text{obs}(\hat x)
          + c^\text{pde}_i\, w_\text{pde}\, L_\text{pde}(\hat x) \Big), \qquad
          \hat x = D(x'_\text{Euler}, \sigma_{i+1}),

with the losses on the denoised estimate *at the Heun point* (differentiated through the Euler
step), :math:`c_i = 1` for :math:`\sigma_i > 1` and :math:`\sigma_i` below, :math:`c^\text{pde}_i =
0` above 1 and :math:`\sigma_i` below. :math:`L_\text{obs}` is the MSE or the RMS (``"l2"``) of the
normalised residual over the :math:`M_p = 500` observed points of a :math:`128 \times 128` grid,
:math:`L_\text{pde}` the mean Huber loss of the PDE residual.

Conversion (:func:`fundps_sampler_units`, :mod:`~pdeinv.sampling.methods.units`): with :math:`u` =
the prior's :math:`\sigma_\text{data}` over 0.5, noise levels and the :math:`\sigma` thresholds are
multiplied by :math:`u`, the residual by 0.5 over the channel's std, the weights by :math:`u^2`
(state units) and by :math:`(S/128)^2` (grid: both losses are means over the points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdeinv.errors import UsageError
from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, channel_std, direction, run_guided
from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.methods.units import check_positive, grid_factor, published_weights_missing
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import ObservationTerm, PhysicsTerm

# FunDPS configs/generation/<pde>_<direction>.yaml: (observation weight, observation loss, PDE weight).
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
FUNDPS_SIGMAS = {("poisson", "inverse"): (10.0, 0.01)}  # (sigma_max, sigma_min); (80, 0.002) otherwise
OBSERVATION_LOSSES = ("mse", "l2")


@dataclass(frozen=True)
class FunDPSConfig(GuidedConfig):
    r"""FunDPS's parameters in its own units (data standardised to 0.5, 128 x 128, 500 points).

    Parameters
    ----------
    obs_weight : float
        :math:`w_\text{obs}` (``guidance.weights`` of the observed channel).
    obs_loss : {"mse", "l2"}
        Mean square or root mean square of the residual over the observed points.
    pde_weight : float
        :math:`w_\text{pde}` (0: no PDE term; the Navier-Stokes presets carry none, see below).
    steps : int
        Heun steps (500; the paper also reports 200).
    sigma_max, sigma_min, rho : float
        EDM schedule in FunDPS's units.
    data_std : float
        Standard deviation FunDPS's data is standardised to.
    paper_resolution, paper_points : int
        Grid and number of observed points the weights were tuned for.

    The Navier-Stokes residual needs a full solve per evaluation; FunDPS's NS "residual"
    :math:`\partial_x w + \partial_y w` is not the vorticity equation, so those presets carry no PDE term.
    """

    obs_weight: float = 5000.0
    obs_loss: str = "l2"
    pde_weight: float = 1.0
    steps: int = 500
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    rho: float = 7.0
    data_std: float = 0.5
    paper_resolution: int = 128
    paper_points: int = 500

    def __post_init__(self) -> None:
        if self.obs_loss not in OBSERVATION_LOSSES:
            raise ValueError(f"obs_loss must be one of {OBSERVATION_LOSSES}, got {self.obs_loss!r}")
        check_positive(obs_weight=self.obs_weight, data_std=self.data_std, sigma_min=self.sigma_min)
        if self.pde_weight < 0:
            raise ValueError(f"pde_weight must be >= 0, got {self.pde_weight}")

    @classmethod
    def for_problem(cls, problem: InverseProblem) -> FunDPSConfig:
        """FunDPS's configuration of the task (its ``configs/generation`` file).

        Raises
        ------
        UsageError
            For a task FunDPS publishes no weights for (another PDE, or none): pass a
            :class:`FunDPSConfig` with chosen weights to :func:`~pdeinv.sampling.methods.solve`.
        """
        key = (problem.pde, direction(problem))
        if key not in FUNDPS_WEIGHTS:
            raise UsageError(published_weights_missing("FunDPS", key, FUNDPS_WEIGHTS, cls.__name__))
        weight, loss, pde_weight = FUNDPS_WEIGHTS[key]
        sigma_max, sigma_min = FUNDPS_SIGMAS.get(key, (80.0, 0.002))
        return cls(obs_weight=weight, obs_loss=loss, pde_weight=pde_weight, sigma_max=sigma_max, sigma_min=sigma_min)


def fundps_sampler_units(problem: InverseProblem, config: FunDPSConfig, prior) -> GuidedPreset:
    """FunDPS in the sampler's units (module docstring)."""
    u = float(prior.sigma_data) / config.data_std
    m = problem.measurement_size
    grid = grid_factor(problem.resolution, m, config.paper_resolution, config.paper_points, "mean")
    scale = config.data_std / channel_std(prior, problem, problem.observed)
    if config.obs_loss == "l2":
        scale /= math.sqrt(problem.measurement_size)
    sampler = SamplerConfig(
        steps=config.steps, sigma_max=config.sigma_max * u, sigma_min=config.sigma_min * u, rho=config.rho,
        guidance_point="heun",
    )
    observation = GuidanceSchedule(
        weight=config.obs_weight * u**2 * grid, sigma_scale="min1", sigma_reference=u, cutoff_steps=1
    )
    physics = GuidanceSchedule(
        weight=config.pde_weight * u**2 * grid, sigma_scale="sigma", sigma_reference=u, sigma_below=u, cutoff_steps=1
    )
    channel, kind = problem.channel(problem.observed), "norm" if config.obs_loss == "l2" else "mse"

    def terms(y):
        listed = [ObservationTerm(problem.sensor, y, channel, loss=kind, scale=scale, schedule=observation)]
        if config.pde_weight > 0:
            listed.append(
                PhysicsTerm(
                    problem.operator, problem.input_channel, problem.output_channel, schedule=physics,
                    reduction="huber",
                )
            )
        return listed

    return GuidedPreset(sampler, terms, observation)


@register("fundps", FunDPSConfig)
def fundps(problem: InverseProblem, config: FunDPSConfig, options: MethodOptions) -> Reconstruction:
    """FunDPS (module docstring)."""
    return run_guided(fundps_sampler_units(problem, config, options.prior), problem, options, config.modifiers)
