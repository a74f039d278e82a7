"""Each method's conversion from its publication's units to the sampler's, checked against an
independent computation: a DDPM/flow step taken in the publication's coordinates, loops over the
publication's schedule written here, and the published tables."""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.datasets import helmholtz_source_grf
from pdeinv.operators import Helmholtz, PointObservation, random_points
from pdeinv.priors.base import FieldPrior
from pdeinv.sampling import InverseProblem, MethodOptions
from pdeinv.sampling.baselines import DDPMStepFidelity
from pdeinv.sampling.methods import configure
from pdeinv.sampling.methods.diffusionpde import DiffusionPDEConfig, diffusionpde_sampler_units
from pdeinv.sampling.methods.dps import DPSConfig, dps_sampler_units
from pdeinv.sampling.methods.fundps import FunDPSConfig, fundps_sampler_units
from pdeinv.sampling.methods.units import flow_step_weights, grid_factor, onto_edm_grid
from pdeinv.sampling.schedule import edm_sigmas


class UnitPrior(FieldPrior):
    """Channels and normalisation only (the conversions never call the denoiser)."""

    def __init__(self, sigma_data=1.0, std=(0.2763, 0.0042), resolution=64):
        super().__init__(("source", "solution"), mean=[0.0, 0.0], std=list(std), sigma_data=sigma_data,
                         resolution=resolution)

    def denoise(self, x, sigma):
        return x


def point_problem(resolution: int, points: int, observed: str = "output") -> InverseProblem:
    sensor = PointObservation(resolution, indices=random_points(points, resolution, seed=0))
    target = "input" if observed == "output" else "output"
    return InverseProblem(
        Helmholtz(resolution), sensor, torch.zeros(1, 1, points), observed, target, "source", "solution", "helmholtz",
        helmholtz_source_grf(resolution),
    )


def ddpm_levels_by_loop(steps=1000, beta_start=1e-4, beta_end=0.02) -> list[float]:
    """sigma_t = sqrt((1 - abar_t) / abar_t) of the linear-beta DDPM schedule, by an explicit product."""
    levels, alpha_bar = [], 1.0
    for t in range(steps):
        beta = beta_start + (beta_end - beta_start) * t / (steps - 1)
        alpha_bar *= 1.0 - beta
        levels.append(math.sqrt((1.0 - alpha_bar) / alpha_bar))
    return levels


def test_dps_zeta_maps_onto_the_edm_grid_as_summed_ddpm_steps():
    """EDM step i weighs c * sum of zeta (1 + sigma_t^2) over DDPM steps with c sigma_t in (sigma_{i+1}, sigma_i]."""
    zeta, steps = 0.7, 9
    prior = UnitPrior(sigma_data=1.0)  # c = 1 / 0.5 = 2
    preset = dps_sampler_units(point_problem(16, 5), DPSConfig(zeta=zeta, steps=steps), prior)
    levels = ddpm_levels_by_loop()
    c = 2.0
    assert preset.config.sigma_max == pytest.approx(c * levels[-1])
    assert preset.config.sigma_min == pytest.approx(c * levels[0])
    edm = preset.config.sigmas().tolist()
    expected = [0.0] * steps
    for level in levels:
        i = max(j for j in range(steps) if c * level <= edm[j] * (1 + 1e-12))
        expected[i] += c * zeta * (1.0 + level**2)
    weights = [preset.step(edm[i], i, steps) for i in range(steps)]
    assert weights == pytest.approx(expected, rel=1e-9)
    assert sum(weights) == pytest.approx(c * zeta * sum(1.0 + s**2 for s in levels), rel=1e-9)


def toy_denoiser(x, sigma):
    """Posterior mean of a N(0, I) prior: x / (1 + sigma^2)."""
    return x / (1.0 + sigma**2)


def test_a_ddpm_guidance_step_is_a_one_plus_sigma_squared_step_in_edm_coordinates():
    """x_VP -= zeta grad_VP ||y - A x0|| is x_VE -= zeta (1 + sigma^2) grad_VE ||y - A x0||, x_VP = sqrt(abar) x_VE."""
    generator = torch.Generator().manual_seed(0)
    a, y = torch.randn(5, 12, generator=generator, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    x_ve = torch.randn(12, generator=generator, dtype=torch.float64)
    zeta, alpha_bar = 0.3, 0.04
    sigma = math.sqrt((1 - alpha_bar) / alpha_bar)

    def loss(x):
        return torch.linalg.vector_norm(y - a @ toy_denoiser(x, sigma))

    x_vp = (math.sqrt(alpha_bar) * x_ve).requires_grad_(True)
    vp_step = x_vp - zeta * torch.autograd.grad(loss(x_vp / math.sqrt(alpha_bar)), x_vp)[0]
    x = x_ve.clone().requires_grad_(True)
    ve_step = x - zeta * (1 + sigma**2) * torch.autograd.grad(loss(x), x)[0]
    assert torch.allclose(vp_step.detach() / math.sqrt(alpha_bar), ve_step.detach(), rtol=1e-12)


def test_deepinv_adapter_takes_dps_step_on_each_ancestral_step():
    """The fidelity weight times deepinv's score factor s0 s1 (sigma0^2 - sigma1^2) is zeta on every step."""
    import deepinv as dinv

    sde = dinv.sampling.VariancePreservingDiffusion(dtype=torch.float64)
    t = torch.linspace(1, 0, 50, dtype=torch.float64)
    fidelity = DDPMStepFidelity(None, 0.4, sde, t)
    scale, level = sde.scale_t(t), sde.sigma_t(t)
    factor = scale[:-1] * scale[1:] * (level[:-1] ** 2 - level[1:] ** 2)
    assert torch.allclose(fidelity.weights * factor, torch.full_like(factor, 0.4), rtol=1e-10)


def test_fundps_weights_are_fundps_units_times_state_and_grid_factors():
    paper = FunDPSConfig.for_problem(point_problem(128, 500))
    assert (paper.obs_weight, paper.obs_loss, paper.pde_weight, paper.steps) == (5000.0, "l2", 1.0, 500)
    native = fundps_sampler_units(point_problem(128, 500), paper, UnitPrior(sigma_data=0.5, resolution=128))
    assert native.step.weight == pytest.approx(5000.0)  # FunDPS's own grid and units: its own weight
    assert native.config.sigma_max == 80.0 and native.config.guidance_point == "heun"
    tier = fundps_sampler_units(point_problem(64, 123), paper, UnitPrior(sigma_data=1.0))
    assert tier.step.weight == pytest.approx(5000.0 * 2.0**2 * (64 / 128) ** 2)
    assert tier.config.sigma_max == pytest.approx(160.0) and tier.step.sigma_reference == 2.0
    forward = FunDPSConfig.for_problem(point_problem(64, 123, observed="input"))
    assert (forward.obs_weight, forward.obs_loss) == (10000.0, "mse")


def test_diffusionpde_converts_noise_and_steps_per_channel():
    """Channel c of the prior is u_c times DiffusionPDE's (u_c = s_c / std_c): a step -zeta grad_{x_p} is
    -zeta u_c^2 grad_{x_c}, checked here by autograd in both coordinates."""
    prior = UnitPrior()
    problem = point_problem(64, 123)
    config = DiffusionPDEConfig.for_problem(problem)
    assert (config.zeta_obs, config.zeta_pde, config.steps) == (60.0, 1.0, 2000)
    preset = diffusionpde_sampler_units(problem, config, prior)
    units = (2.15 / 0.2763, 0.028 / 0.0042)
    assert preset.config.guidance_channel_scale == pytest.approx(tuple(u**2 for u in units))
    assert preset.config.sigma_max == pytest.approx(80 * max(units)) and preset.config.sigma_min == pytest.approx(
        0.002 * min(units)
    )
    assert preset.step.weight == pytest.approx(60.0 * (64 / 128) ** 2 * math.sqrt(500 / 123))

    generator = torch.Generator().manual_seed(1)
    weights = torch.randn(2, 9, generator=generator, dtype=torch.float64)
    u = torch.tensor(units, dtype=torch.float64)[:, None]

    def paper_loss(x_paper):  # a loss of the physical fields s_c x_c
        return torch.linalg.vector_norm((weights * torch.tensor([[2.15], [0.028]]) * x_paper).sum(1) - 1.0)

    x_paper = torch.randn(2, 9, generator=generator, dtype=torch.float64).requires_grad_(True)
    paper_step = -0.5 * torch.autograd.grad(paper_loss(x_paper), x_paper)[0]
    x = (u * x_paper).detach().requires_grad_(True)
    ours = -0.5 * u**2 * torch.autograd.grad(paper_loss(x / u), x)[0]
    assert torch.allclose(u * paper_step, ours, rtol=1e-12)


def test_grid_factor_and_flow_step_weights():
    assert grid_factor(64, 123, 128, 500, "mean") == pytest.approx(0.25)
    assert grid_factor(64, 125, 128, 500, "norm") == pytest.approx(0.25 * 2.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        grid_factor(64, 1, 128, 1, "sum")
    edm = edm_sigmas(6, 0.01, 50.0)
    weights = flow_step_weights(0.5, 100, edm, level_unit=1.0)
    expected = [0.0] * 6
    for k in range(1, 100):  # t = 1 - k / 100, sigma = t / (1 - t); the t = 1 step starts at infinite noise
        t = 1 - k / 100
        level = t / (1 - t)
        inside = [i for i in range(6) if edm[i + 1] < level <= edm[i]]
        if inside:
            expected[inside[0]] += 0.5 * (1 + level) ** 2 / max(level, 1.0)
    assert weights == pytest.approx(expected, rel=1e-9)
    assert onto_edm_grid(torch.tensor([100.0]), torch.tensor([1.0]), edm) == (0.0,) * 6


def test_equireg_rides_on_the_solvers_step():
    problem = point_problem(16, 5)
    prior = UnitPrior(sigma_data=1.0, resolution=16)
    config = configure("dps+equireg", problem, MethodOptions(steps=7, equireg_weight=0.01))
    preset = dps_sampler_units(problem, config, prior)
    (equireg,) = config.modifiers[0].terms(preset, problem, MethodOptions(prior=prior), torch.zeros(1, 1, 5))
    edm = preset.config.sigmas().tolist()
    for i in range(7):
        assert equireg.weight(edm[i], i, 7) == pytest.approx(0.01 * preset.step(edm[i], i, 7))
    assert {g.name for g in equireg.elements} == {"flip_y", "rot90", "rot270"}


class ShrinkPrior(UnitPrior):
    """N(0, I) on normalised fields: D(x, sigma) = x / (1 + sigma^2)."""

    def denoise(self, x, sigma):
        return toy_denoiser(x, float(torch.as_tensor(sigma).reshape(-1)[0]))


def test_heun_point_guidance_differentiates_the_second_estimate_through_the_euler_step():
    """guidance_point='heun' (FunDPS, DiffusionPDE): the loss is taken at D(x + (s1 - s0) d(x), s1) and
    differentiated with respect to x, then subtracted from the Heun step; the last step is left unguided here."""
    from pdeinv.sampling import ObservationTerm, PosteriorSampler, SamplerConfig
    from pdeinv.sampling.schedule import GuidanceSchedule

    prior = ShrinkPrior(resolution=8)
    sensor = PointObservation(8, indices=random_points(5, 8, seed=2))
    y = torch.randn(1, 1, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    term = ObservationTerm(sensor, y, "solution", loss="norm", schedule=GuidanceSchedule(weight=0.3, cutoff_steps=1))
    config = SamplerConfig(steps=2, sigma_min=0.5, sigma_max=3.0, guidance_point="heun")
    result = PosteriorSampler(prior, config, [term]).sample(1, torch.Generator().manual_seed(7), dtype=torch.float64)

    s0, s1 = config.sigmas().tolist()[:2]
    x = (s0 * torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    x = x.requires_grad_(True)
    drift = (x - toy_denoiser(x, s0)) / s0
    euler = x + (s1 - s0) * drift
    point = toy_denoiser(euler, s1)
    misfit = torch.linalg.vector_norm(sensor.A(prior.to_physical(point)[:, 1:]) - y)
    heun = x + (s1 - s0) * 0.5 * (drift + (euler - point) / s1)
    x1 = heun - 0.3 * torch.autograd.grad(misfit, x)[0]
    assert torch.allclose(result.normalized, toy_denoiser(x1, s1).detach(), rtol=1e-12)


@pytest.mark.parametrize("method", ["fundps", "diffusionpde"])
def test_a_task_without_published_weights_is_refused_not_given_another_tasks(method):
    """No silent fallback: a problem without one of the papers' PDEs needs weights chosen by the user."""
    from pdeinv.errors import UsageError

    s = 8
    sensor = PointObservation(s, indices=random_points(6, s, seed=0))
    problem = InverseProblem(None, sensor, torch.zeros(1, 1, 6), "output", "output", "a", "b", None)
    with pytest.raises(UsageError, match="publishes weights for helmholtz forward.*pass solve"):
        configure(method, problem)
