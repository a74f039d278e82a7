"""The exact Gaussian priors: Monte-Carlo posterior means, orthogonality, sample variances, errors."""

from __future__ import annotations

import pytest
import torch

from pdeinv.datasets import helmholtz_source_grf, ns_vorticity_grf
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.priors.cg import CGConfig
from pdeinv.priors.gaussian import GaussianPrior, JointGaussianPrior, helmholtz_joint_prior
from pdeinv.priors.sample import HeunConfig, heun_sample

PRIORS = {
    "periodic": lambda s: GaussianPrior(ns_vorticity_grf(s), "vorticity"),
    "zero-boundary": lambda s: GaussianPrior(helmholtz_source_grf(s), "source"),
    "joint-helmholtz": lambda s: helmholtz_joint_prior(s),
}


def importance_posterior_mean(prior, y, sigma, n, generator):
    """Self-normalised importance estimate of E[x | y] from n prior samples, and its standard error."""
    xs = prior.sample(n, generator, dtype=torch.float64)
    weights = torch.softmax(-((xs - y) ** 2).flatten(1).sum(1) / (2 * sigma**2), 0)[:, None, None, None]
    mean = (weights * xs).sum(0, keepdim=True)
    stderr = ((weights**2) * (xs - mean) ** 2).sum(0, keepdim=True).sqrt()
    return mean, stderr, float(1 / (weights**2).sum())


@pytest.mark.parametrize("kind,size", [("periodic", 4), ("zero-boundary", 5), ("joint-helmholtz", 5)])
def test_denoiser_equals_monte_carlo_posterior_mean(kind, size):
    prior = PRIORS[kind](size)
    g = torch.Generator().manual_seed(8)
    sigma = 2.0
    y = prior.sample(1, g, dtype=torch.float64) + sigma * torch.randn(1, len(prior.channels), size, size,
                                                                      generator=g, dtype=torch.float64)
    mean, stderr, ess = importance_posterior_mean(prior, y, sigma, 200_000, g)
    assert ess > 1000, "the Monte-Carlo reference itself is too noisy"
    denoised = prior.denoise(y, sigma)
    random = stderr > 0
    assert torch.equal(random, denoised.abs() > 1e-12), "deterministic (boundary) entries must match exactly"
    z = (denoised - mean)[random] / stderr[random]
    assert z.abs().max() < 4.5


@pytest.mark.parametrize("kind", ["zero-boundary", "joint-helmholtz"])
def test_residual_is_orthogonal_to_observation(kind):
    """E[(x - D(y)) y^T] = 0 characterises E[x | y] for jointly Gaussian (x, y); a wrong sigma fails."""
    size, n, sigma = 8, 4000, 0.3
    prior = PRIORS[kind](size)
    g = torch.Generator().manual_seed(3)
    x = prior.sample(n, g, dtype=torch.float64)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)

    def max_z(denoised):
        r, obs = (x - denoised).flatten(1), y.flatten(1)
        products = r[:, :, None] * obs[:, None, :]
        stderr = products.std(0) / n**0.5
        keep = stderr > 1e-12
        return float((products.mean(0)[keep] / stderr[keep]).abs().max())

    assert max_z(prior.denoise(y, sigma)) < 5.5
    assert max_z(prior.denoise(y, 2 * sigma)) > 8, "the test must detect a wrong denoiser"


@pytest.mark.parametrize(
    "kind",
    ["periodic", pytest.param("zero-boundary", marks=pytest.mark.slow), pytest.param("joint-helmholtz", marks=pytest.mark.slow)],
)
def test_heun_samples_have_the_exact_variance(kind):
    """64 Heun steps: the schedule's discretisation bias (about 1 % here) is below the Monte-Carlo tolerance."""
    size, n = 6, 1000
    prior = PRIORS[kind](size)
    samples = heun_sample(prior, n, torch.Generator().manual_seed(0), config=HeunConfig(steps=64),
                          dtype=torch.float64)
    exact = prior.variances / prior.std.double()[:, None, None] ** 2
    estimate = samples.var(0)
    inside = exact > 0
    ratio = estimate[inside] / exact[inside]
    tolerance = 4 * (2 / (n - 1)) ** 0.5
    assert abs(float(ratio.mean()) - 1) < tolerance / 2
    assert float((ratio - 1).abs().max()) < 1.5 * tolerance
    assert float(estimate[~inside].sum()) < 1e-20
    assert torch.allclose(exact.mean(dim=(1, 2)), torch.ones(len(prior.channels), dtype=torch.float64))


def test_joint_solution_channel_is_the_operator_of_the_source_estimate():
    size = 8
    prior = PRIORS["joint-helmholtz"](size)
    g = torch.Generator().manual_seed(1)
    y = prior.sample(2, g, dtype=torch.float64) + 0.2 * torch.randn(2, 2, size, size, generator=g, dtype=torch.float64)
    out = prior.to_physical(prior.denoise(y, 0.2))
    assert torch.allclose(Helmholtz(size).A(out[:, :1]), out[:, 1:], rtol=1e-6, atol=1e-12)


def test_exact_variances_match_the_grf_and_monte_carlo():
    size = 8
    prior = PRIORS["joint-helmholtz"](size)
    assert torch.allclose(prior.variances[0], helmholtz_source_grf(size).variance(), rtol=1e-12, atol=0)
    a = helmholtz_source_grf(size).sample(20000, torch.Generator().manual_seed(2), dtype=torch.float64)
    mc = Helmholtz(size).A(a).var(0)[0]
    inside = prior.variances[1] > 0
    assert float((mc[inside] / prior.variances[1][inside] - 1).abs().max()) < 6 * (2 / 20000) ** 0.5


def test_bad_inputs_and_non_convergence_are_clear_errors():
    prior = PRIORS["zero-boundary"](8)
    with pytest.raises(ValueError, match="1 channel"):
        prior.denoise(torch.zeros(1, 2, 8, 8), 0.5)
    with pytest.raises(ValueError, match="resolution"):
        prior.denoise(torch.zeros(1, 1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="positive"):
        prior.denoise(torch.zeros(1, 1, 8, 8), 0.0)
    starved = GaussianPrior(helmholtz_source_grf(8), cg=CGConfig(tol=1e-14, max_iter=1))
    with pytest.raises(RuntimeError, match="did not reach"):
        starved.denoise(torch.randn(1, 1, 8, 8), 0.01)
    with pytest.raises(ValueError, match="differs"):
        JointGaussianPrior(helmholtz_source_grf(8), Helmholtz(16))


def test_quality_figures_of_the_exact_joint_prior():
    """Heun samples of the exact prior satisfy the PDE to solver precision; the wrong PDE does not."""
    from pdeinv.priors.quality import physics_consistency

    size = 16
    prior = PRIORS["joint-helmholtz"](size)
    exact = physics_consistency(prior, Helmholtz(size), n=8, steps=12, batch=8)
    assert exact["median"] < 1e-5 and exact["samples"].shape == (8, 2, size, size)
    wrong = physics_consistency(prior, Helmholtz(size, k=3.0), n=8, steps=12, batch=8)
    assert wrong["median"] > 0.1


def test_radial_power_spectrum_matches_the_grf_eigenvalues():
    """E|x_hat(kappa)|^2 = lambda_kappa in the unitary DFT basis of a periodic GRF; shell means of both agree."""
    from pdeinv.priors.quality import radial_power_spectrum, spectrum_ratio

    size, n = 16, 4000
    grf = ns_vorticity_grf(size)
    samples = grf.sample(n, torch.Generator().manual_seed(4), dtype=torch.float64)
    estimate = radial_power_spectrum(samples, size // 4)[0]
    lam = grf.eigenvalues()
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().long()
    exact = torch.stack([lam[radius == s].mean() for s in range(1, size // 4 + 1)])
    assert float((estimate / exact - 1).abs().max()) < 4 * (2 / n) ** 0.5
    other = grf.sample(n, torch.Generator().manual_seed(5), dtype=torch.float64)
    assert float((spectrum_ratio(samples, other) - 1).abs().max()) < 8 * (2 / n) ** 0.5
