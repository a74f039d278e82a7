"""EDM preconditioning: coefficient identities, small-sigma limit, Bayes-optimality on white data, loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pdeinv.priors.edm import (
    EDMConfig,
    EDMDenoiser,
    edm_coefficients,
    edm_loss,
    edm_loss_weight,
    sample_training_sigma,
)

SIGMAS = torch.tensor([1e-3, 0.05, 0.5, 1.0, 3.0, 80.0], dtype=torch.float64)


class ZeroBackbone(nn.Module):
    def forward(self, x, c_noise):
        return torch.zeros_like(x)


class RandomBackbone(nn.Module):
    """A fixed non-trivial function of (x_in, c_noise), bounded by 1 in absolute value."""

    def forward(self, x, c_noise):
        return torch.tanh(3 * x.flip(-1) + c_noise.reshape(-1, 1, 1, 1))


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_coefficients_satisfy_the_edm_design_identities(sigma_data):
    c = edm_coefficients(SIGMAS, sigma_data)
    # unit-variance network input: Var(c_in (x0 + sigma n)) = c_in^2 (sigma_data^2 + sigma^2) = 1
    assert torch.allclose(c.c_in**2 * (sigma_data**2 + SIGMAS**2), torch.ones_like(SIGMAS), rtol=1e-12)
    # unit-variance training target (x0 - c_skip y) / c_out, with y = x0 + sigma n
    target_var = ((1 - c.c_skip) ** 2 * sigma_data**2 + c.c_skip**2 * SIGMAS**2) / c.c_out**2
    assert torch.allclose(target_var, torch.ones_like(SIGMAS), rtol=1e-12)
    # c_skip minimises that target variance: d/dc [(1-c)^2 sd^2 + c^2 s^2] = 0
    assert torch.allclose((c.c_skip - 1) * sigma_data**2 + c.c_skip * SIGMAS**2, torch.zeros_like(SIGMAS), atol=1e-12)
    # loss weight makes the effective weight lambda * c_out^2 equal to one
    assert torch.allclose(edm_loss_weight(SIGMAS, sigma_data) * c.c_out**2, torch.ones_like(SIGMAS), rtol=1e-12)
    assert torch.allclose(c.c_noise, torch.log(SIGMAS) / 4, rtol=0, atol=0)
    assert math.isclose(float(c.c_noise[3]), 0.0, abs_tol=0)


def test_denoiser_tends_to_identity_as_sigma_vanishes():
    model = EDMDenoiser(RandomBackbone(), EDMConfig(sigma_data=1.0), channels=("a", "u")).double()
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    errors = [float((model.denoise(x, s) - x).abs().max()) for s in (1e-2, 1e-4, 1e-6)]
    # |D - x| <= (1 - c_skip)|x| + c_out |F| <= sigma^2 |x| + sigma (for sigma_data = 1, |F| <= 1)
    for s, err in zip((1e-2, 1e-4, 1e-6), errors):
        assert err <= s**2 * float(x.abs().max()) + s
    assert errors[0] > errors[1] > errors[2]


def test_zero_backbone_is_the_bayes_denoiser_of_white_data():
    """For x0 ~ N(0, sd^2 I), E[x0 | y] = sd^2 / (sd^2 + sigma^2) y, which is D with F = 0; MC check."""
    sd, sigma, n = 0.7, 0.9, 400_000
    g = torch.Generator().manual_seed(0)
    x0 = sd * torch.randn(n, dtype=torch.float64, generator=g)
    y = x0 + sigma * torch.randn(n, dtype=torch.float64, generator=g)
    slope_mc = float((x0 * y).mean() / (y * y).mean())
    model = EDMDenoiser(ZeroBackbone(), EDMConfig(sigma_data=sd), channels=("f",)).double()
    probe = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    slope = float(model.denoise(probe, sigma))
    stderr = math.sqrt(1 / n) * 2
    assert abs(slope - slope_mc) < 4 * stderr


def test_loss_of_the_bayes_denoiser_is_one_at_every_sigma():
    """E[lambda(sigma) (D*(y) - x0)^2] = lambda * posterior variance = 1 for white data (Monte Carlo)."""
    sd = 1.0
    model = EDMDenoiser(ZeroBackbone(), EDMConfig(sigma_data=sd), channels=("f",)).double()
    g = torch.Generator().manual_seed(1)
    for sigma in (0.02, 0.3, 5.0):
        x0 = sd * torch.randn(64, 1, 32, 32, dtype=torch.float64, generator=g)
        noise = torch.randn(x0.shape, dtype=torch.float64, generator=g)
        loss = edm_loss(model, x0, torch.full((64,), sigma, dtype=torch.float64), noise, sd)
        assert abs(float(loss) - 1.0) < 4 * math.sqrt(2 / x0.numel())


def test_training_sigma_is_log_normal():
    config = EDMConfig(p_mean=-1.2, p_std=1.2)
    log_sigma = sample_training_sigma(200_000, config, torch.Generator().manual_seed(2)).log()
    assert abs(float(log_sigma.mean()) + 1.2) < 4 * 1.2 / math.sqrt(200_000)
    assert abs(float(log_sigma.std()) - 1.2) < 4 * 1.2 / math.sqrt(2 * 200_000)


def test_per_sample_sigma_matches_scalar_sigma():
    model = EDMDenoiser(RandomBackbone(), channels=("a", "u")).double()
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    sigmas = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    batched = model.denoise(x, sigmas)
    for i, s in enumerate(sigmas.tolist()):
        assert torch.equal(batched[i : i + 1], model.denoise(x[i : i + 1], s))


def test_bad_inputs_are_clear_errors():
    model = EDMDenoiser(RandomBackbone(), channels=("a", "u"))
    x = torch.zeros(2, 2, 8, 8)
    with pytest.raises(ValueError, match="positive"):
        model.denoise(x, 0.0)
    with pytest.raises(ValueError, match=r"shape \(batch,\)"):
        model.denoise(x, torch.ones(3))
    with pytest.raises(ValueError, match="2 channel"):
        model.denoise(torch.zeros(2, 1, 8, 8), 1.0)
    with pytest.raises(ValueError, match="one value per channel"):
        EDMDenoiser(RandomBackbone(), channels=("a", "u"), mean=[0.0])
    with pytest.raises(ValueError, match="std must be positive"):
        EDMDenoiser(RandomBackbone(), channels=("a",), std=[0.0])


def test_normalisation_round_trip():
    model = EDMDenoiser(ZeroBackbone(), channels=("a", "u"), mean=[1.0, -2.0], std=[0.5, 3.0])
    x = torch.randn(2, 2, 4, 4)
    physical = model.to_physical(x)
    assert torch.allclose(physical[:, 1], -2.0 + 3.0 * x[:, 1])
    assert torch.allclose(model.to_normalized(physical), x, atol=1e-6)
