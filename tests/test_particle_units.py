"""RLSD and DWGF in their publications' units: the schedule, the conversion, one step by hand, the options.

References: diffusers' own DDIM scheduler for the noise levels the publications' code visits; a
direct computation of the data term from the sensor; one RLSD iteration (both Adam steps) written
out from the update rules of the reference code, with the per-particle kernel in closed form.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pdeinv.bench.runner import BenchConfig
from pdeinv.errors import UsageError
from pdeinv.operators import PointObservation
from pdeinv.sampling import MethodOptions
from pdeinv.sampling.methods import configure, method_config
from pdeinv.sampling.methods.units import ddim_particle_levels, particle_units
from pdeinv.sampling.particles import DWGFConfig, RLSDConfig, dwgf_solver, rlsd_solver
from pdeinv.sampling.particles.engine import ParticleStep
from pdeinv.sampling.particles.modes import AmbiguousMixture
from pdeinv.sampling.sampler import FieldSpace

pytestmark = pytest.mark.usefixtures("one_thread")


def test_levels_are_those_of_stable_diffusions_ddim_scheduler():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    for iterations in (998, 99):
        scheduler.set_timesteps(iterations + 1)  # the code's exp.num_steps; it loops over ts[:-1]
        t = scheduler.timesteps[:-1]
        alpha_bar = scheduler.alphas_cumprod.double()[t]
        expected = ((1 - alpha_bar) / alpha_bar).sqrt()
        assert torch.allclose(ddim_particle_levels(iterations), expected, rtol=1e-5)
    assert ddim_particle_levels(998)[0].item() == pytest.approx(14.61, abs=0.01)  # t = 999


def test_particle_units_convert_states_steps_and_term_weights():
    units = particle_units(sigma_data=2.0, latent_std=1.0, data_std=0.5, lr=1.0, lr_aux=0.4, iterations=10)
    assert units.state_unit == 2.0 and units.field_unit == 4.0
    assert units.image_weight == pytest.approx(0.25)  # (s_x / s_z)^2, independent of sigma_data
    assert units.lr == pytest.approx(2.0) and units.lr_aux == pytest.approx(1.6)
    assert torch.allclose(torch.tensor(units.levels, dtype=torch.float64), 2 * ddim_particle_levels(10))
    assert particle_units(1.0, 1.0, 0.5, 1.0, 1.0, 10, schedule="edm").levels is None
    with pytest.raises(ValueError, match="schedule must be one of"):
        particle_units(1.0, 1.0, 0.5, 1.0, 1.0, 10, schedule="cosine")


def _mixture_problem(n=1, seed=0):
    """The ambiguous mixture on 4 x 4 fields, measured at M = 11 points (a point sensor returns M values)."""
    setting = AmbiguousMixture()
    problem = setting.problem(n, torch.Generator().manual_seed(seed))
    points = torch.tensor([(i // 4, i % 4) for i in range(5, 16)])
    sensor = PointObservation(4, indices=points, grid="periodic")
    truth = setting.means()[:n] + 0.1 * torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed + 1))
    return setting.prior().double(), dataclasses.replace(problem, sensor=sensor, measurements=sensor.A(truth))


def _data_term(problem, prior, y, field):
    """Half the mean square residual over the M measured values, in the observed channel's std units."""
    residual = (problem.sensor.A(prior.to_physical(field)) - y) / prior.std[0]
    return 0.5 * residual.pow(2).flatten(1).sum(1) / residual[0].numel()


def test_dwgf_data_term_is_half_the_mean_square_over_the_measured_values():
    prior, problem = _mixture_problem()
    y = problem.measurements.repeat_interleave(2, 0)
    assert y.shape[-1] == 11  # M = 11 observed values of a 16-pixel field: the mean is over 11, not 16
    field = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    step = ParticleStep(field, None, 0.3, 0, 1, 2, prior, FieldSpace(), torch.Generator(), [0])
    for config, weight in ((DWGFConfig(decoder_std=0.0), 0.25), (DWGFConfig.preset("calibrated", decoder_std=0.0), 1)):
        likelihood = dwgf_solver(problem, prior, y, config).particle_terms[0]
        expected = weight * _data_term(problem, prior, y, field)
        assert torch.allclose(likelihood.loss(step), expected, rtol=1e-12)


def test_one_rlsd_iteration_matches_the_update_rules_by_hand():
    prior, problem = _mixture_problem()
    n, config = 3, RLSDConfig(steps=1)  # the publication's defaults: gamma 50, lambda 0.1, rho 0.2, lr 0.2
    y = problem.measurements.repeat_interleave(n, 0)
    result = rlsd_solver(problem, prior, y, config).run(1, n, torch.Generator().manual_seed(3), 4)

    draw = torch.Generator().manual_seed(3)
    c_z, c_x = float(prior.sigma_data), float(prior.sigma_data) / 0.5
    z = c_z * torch.randn(n, 1, 4, 4, generator=draw, dtype=torch.float64)
    x = c_x * torch.randn(n, 1, 4, 4, generator=draw, dtype=torch.float64)
    noise = torch.randn(n, 1, 4, 4, generator=draw, dtype=torch.float64)
    # one iteration: DDIM timestep 501 of a 2-step scheduler, ratio 1000 // 2
    abar = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0)[501]
    sigma = c_z * math.sqrt((1 - abar) / abar)
    z_t = z + sigma * noise
    denoised = prior.denoise(z_t, sigma)
    # kernel on the noisy fields, per-particle bandwidth median_j |f_i - f_j|^2 / log(N - 1)
    f = z_t.flatten(1)
    d2 = torch.cdist(f, f) ** 2
    off = ~torch.eye(n, dtype=torch.bool)
    h = d2[off].reshape(n, n - 1).sqrt().median(1).values ** 2 / math.log(n - 1)
    k = torch.exp(-d2 / h[:, None]) * off
    grad_log = -2 / h[:, None] * (k.sum(1, keepdim=True) * f - k @ f) / k.sum(1, keepdim=True)
    d = 16
    gradient_z = 0.25 * (z - x) / d + (0.1 / 0.2) / d * (z - denoised + 50.0 * sigma**2 * grad_log.reshape(z.shape))
    z_new = z - c_z * 0.2 * gradient_z / (gradient_z.abs() + 1e-8)  # Adam's first step
    x_leaf = x.clone().requires_grad_(True)
    loss_x = _data_term(problem, prior, y, x_leaf).sum() + 0.2 * 0.5 * ((x_leaf - z_new) ** 2).flatten(1).mean(1).sum()
    gradient_x = torch.autograd.grad(loss_x, x_leaf)[0]
    x_new = x - c_x * 0.2 * gradient_x / (gradient_x.abs() + 1e-8)
    assert torch.allclose(result.fields, z_new, atol=1e-12)
    assert torch.allclose(result.aux, x_new, atol=1e-12)
    assert result.nfe == 1


def test_rlsd_distillation_gradient_carries_the_repulsion_and_its_weights():
    # the same z-step gradient as above, now compared as a gradient (Adam's first step only keeps its sign)
    prior, problem = _mixture_problem()
    n, config = 4, RLSDConfig(gamma=30.0, lam=0.15, rho=0.07)
    solver = rlsd_solver(problem, prior, problem.measurements.repeat_interleave(n, 0), config)
    g = torch.Generator().manual_seed(8)
    z = torch.randn(n, 1, 4, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(n, 1, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 1, 4, 4, generator=g, dtype=torch.float64)
    step = ParticleStep(z, x, 0.8, 0, 1, n, prior, FieldSpace(), g, [0])
    step.noise = noise
    total = sum(term.loss(step).sum() for term in solver.particle_terms)
    gradient = torch.autograd.grad(total, z)[0]
    f = (z.detach() + 0.8 * noise).flatten(1)
    d2 = torch.cdist(f, f) ** 2
    off = ~torch.eye(n, dtype=torch.bool)
    h = d2[off].reshape(n, n - 1).sqrt().median(1).values ** 2 / math.log(n - 1)
    k = torch.exp(-d2 / h[:, None]) * off
    grad_log = (-2 / h[:, None] * (k.sum(1, keepdim=True) * f - k @ f) / k.sum(1, keepdim=True)).reshape(z.shape)
    denoised = prior.denoise(z.detach() + 0.8 * noise, 0.8)
    expected = 0.25 * (z.detach() - x) / 16 + (0.15 / 0.07) / 16 * (z.detach() - denoised + 30 * 0.64 * grad_log)
    assert torch.allclose(gradient, expected, rtol=1e-10)


def test_presets_and_method_options_set_the_configuration_and_are_recorded():
    options = MethodOptions(method_preset="calibrated", method_options={"lr": "0.5", "betas": "0.9,0.999"})
    config = configure("dwgf", None, options)
    assert (config.lr, config.betas, config.schedule, config.steps) == (0.5, (0.9, 0.999), "edm", 100)
    assert configure("dwgf", None, MethodOptions(steps=40, method_preset="calibrated")).steps == 40
    assert configure("dwgf", None, MethodOptions(steps=40, method_options=[("steps", "7")])).steps == 7
    assert method_config("rlsd-norep", None, MethodOptions(method_options={"bandwidth": "pooled"}))["gamma"] == 0.0
    paper = configure("dwgf")
    assert (paper.lr, paper.betas, paper.steps, paper.gamma, paper.schedule) == (1.0, (0.9, 0.999), 998, 0.15, "ddpm")
    with pytest.raises(UsageError, match="valid keys: betas, steps, schedule"):
        configure("dwgf", None, MethodOptions(method_options={"learning_rate": "1"}))
    with pytest.raises(UsageError, match="expected true or false|expected a number"):
        configure("rlsd", None, MethodOptions(method_options={"gamma": "strong"}))
    with pytest.raises(UsageError, match="schedule must be one of"):
        configure("rlsd", None, MethodOptions(method_options={"schedule": "cosine"}))
    with pytest.raises(UsageError, match="choose one of paper, calibrated"):
        BenchConfig("helmholtz-inverse-64", "dwgf", method_preset="tuned")
