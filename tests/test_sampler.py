"""The posterior sampler against exact Gaussian answers.

The prior is a test-local exact Gaussian: normalised fields ~ N(0, C) with C diagonal in the
orthonormal 2-D DCT basis, so D(x, s) = C (C + s^2 I)^-1 x is the exact denoiser. With point
observations the posterior is Gaussian and kriging (checked against dense conditioning in
test_kriging.py) gives its exact mean and pointwise variance.
"""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.datasets.dct import dct2, idct2
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.priors.base import FieldPrior
from pdeinv.sampling.kriging import Kriging, KrigingObservation, LinearGaussianModel
from pdeinv.sampling.sampler import (
    DAPSConfig,
    PosteriorSampler,
    SamplerConfig,
    SamplingDivergedError,
)
from pdeinv.sampling.schedule import GuidanceSchedule, edm_sigmas
from pdeinv.sampling.terms import ObservationTerm

from dense import ScaledSpace

pytestmark = pytest.mark.usefixtures("one_thread")

S = 16
MEAN, STD = 0.5, 2.0


def spectrum(size: int = S, anisotropy: float = 1.0) -> torch.Tensor:
    """Eigenvalues (pi^2 (a k1^2 + k2^2) + 9)^-2 in the DCT basis, scaled to mean 1."""
    k = torch.arange(size, dtype=torch.float64)
    lam = (math.pi**2 * (anisotropy * k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -2.0
    return lam / lam.mean()


class DCTGaussianPrior(FieldPrior):
    """Exact Gaussian prior N(0, Phi diag(lam) Phi^T) on normalised fields; physical = MEAN + STD * x."""

    def __init__(self, lam: torch.Tensor, channels=("source",), mean=MEAN, std=STD):
        n = len(channels)
        super().__init__(channels, mean=[mean] * n, std=[std] * n, resolution=lam.shape[-1])
        self.lam = lam

    def denoise(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        lam = self.lam.to(x)
        return idct2(lam / (lam + sigma**2) * dct2(x))


def physical_model(lam: torch.Tensor) -> LinearGaussianModel:
    """The same prior in physical units, for kriging."""
    return LinearGaussianModel(
        covariance=lambda x: STD**2 * idct2(lam.to(x) * dct2(x)),
        covariance_sqrt=lambda x: STD * idct2(lam.sqrt().to(x) * dct2(x)),
        resolution=lam.shape[-1],
        mean=MEAN,
    )


@pytest.fixture(scope="module")
def gaussian_task():
    lam = spectrum()
    generator = torch.Generator().manual_seed(0)
    truth = MEAN + STD * idct2(lam.sqrt() * torch.randn(1, 1, S, S, generator=generator, dtype=torch.float64))
    sensor = PointObservation(S, indices=random_points(8, S, seed=1))
    noise_std = 0.1
    y = sensor.A(truth) + noise_std * torch.randn(1, 1, 8, generator=generator, dtype=torch.float64)
    kriging = Kriging(physical_model(lam), [KrigingObservation(sensor, "input", noise_std)], "input")
    return dict(lam=lam, truth=truth, sensor=sensor, y=y, noise_std=noise_std, kriging=kriging)


def test_edm_sigmas_are_equally_spaced_in_the_rho_th_root():
    sigmas = edm_sigmas(12, 0.002, 80.0, rho=7.0)
    assert sigmas.shape == (13,) and sigmas[-1] == 0
    assert math.isclose(float(sigmas[0]), 80.0, rel_tol=1e-12)
    assert math.isclose(float(sigmas[-2]), 0.002, rel_tol=1e-12)
    roots = sigmas[:-1] ** (1 / 7)
    gaps = roots[1:] - roots[:-1]
    assert torch.allclose(gaps, torch.full_like(gaps, (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 11), atol=1e-12)


def test_sampler_matches_exact_gaussian_posterior(gaussian_task):
    """Exact Tweedie-covariance guidance in drift form samples the kriging posterior.

    sigma_max = 1000 dominates the prior's largest standard deviation (sqrt(lam_max) ~ 12 in
    normalised units); with the EDM default 80 the initial state would under-spread that mode.
    """
    task, k = gaussian_task, 1024
    term = ObservationTerm(task["sensor"], task["y"], "source", loss="tweedie", noise_std=task["noise_std"])
    config = SamplerConfig(steps=32, sigma_max=1000.0, integrator="heun", guidance="drift")
    result = PosteriorSampler(DCTGaussianPrior(task["lam"]), config, [term]).sample(
        k, torch.Generator().manual_seed(3), dtype=torch.float64
    )
    samples = result.physical
    mean, variance = samples.mean(0, keepdim=True), samples.var(0, keepdim=True)
    exact_mean, exact_variance = task["kriging"].mean([task["y"]]), task["kriging"].variance()
    monte_carlo_sd = math.sqrt(float(exact_variance.sum()) / k)
    assert float((mean - exact_mean).norm()) < 3 * monte_carlo_sd
    sampler_error = float((mean - task["truth"]).norm())
    kriging_error = float((exact_mean - task["truth"]).norm())
    assert abs(sampler_error / kriging_error - 1) < 0.05
    assert abs(float(variance.sum() / exact_variance.sum()) - 1) < 0.1
    assert float((variance / exact_variance - 1).abs().mean()) < 0.2
    assert result.nfe == 2 * 32 - 1


@pytest.mark.parametrize("integrator, churn", [("heun", 0.0), ("euler", 0.0), ("heun", 10.0)])
def test_unguided_sampler_reproduces_prior_variance(integrator, churn):
    lam = spectrum()
    config = SamplerConfig(steps=40, sigma_max=1000.0, integrator=integrator, s_churn=churn)
    result = PosteriorSampler(DCTGaussianPrior(lam), config).sample(
        512, torch.Generator().manual_seed(1), dtype=torch.float64
    )
    exact_total = STD**2 * float(lam.sum())
    assert abs(float(result.physical.var(0).sum()) / exact_total - 1) < 0.12
    assert result.nfe == (2 * 40 - 1 if integrator == "heun" else 40)


def test_daps_pulls_samples_to_the_data(gaussian_task):
    """DAPS (decoupled annealing) is approximate: its samples fit the sensors and beat the prior mean."""
    task = gaussian_task
    term = ObservationTerm(task["sensor"], task["y"], "source", loss="gaussian", noise_std=task["noise_std"])
    daps = DAPSConfig(ode_steps=4, langevin_steps=20, lr=4e-3, lr_min_ratio=0.1)
    config = SamplerConfig(steps=50, sigma_max=100.0, sigma_min=0.1, integrator="daps", daps=daps)
    result = PosteriorSampler(DCTGaussianPrior(task["lam"]), config, [term]).sample(
        64, torch.Generator().manual_seed(2), dtype=torch.float64
    )
    assert result.nfe == 50 * 4
    mean = result.physical.mean(0, keepdim=True)
    prior_error = float((MEAN - task["truth"]).norm())
    assert float((mean - task["truth"]).norm()) < 0.75 * prior_error
    misfit = task["sensor"].A(result.physical) - task["y"]
    assert float(misfit.pow(2).mean().sqrt()) < 3 * task["noise_std"]


class LatentGaussianPrior(DCTGaussianPrior):
    """The exact denoiser of z = 2 x: D_z(z, s) = 2 D_x(z / 2, s / 2)."""

    def denoise(self, z, sigma):
        return 2.0 * super().denoise(0.5 * z, 0.5 * sigma)


def test_state_space_seam_decodes_samples():
    lam = spectrum()
    config = SamplerConfig(steps=40, sigma_max=2000.0)
    result = PosteriorSampler(LatentGaussianPrior(lam), config, space=ScaledSpace()).sample(
        512, torch.Generator().manual_seed(4), dtype=torch.float64
    )
    assert abs(float(result.physical.var(0).sum()) / (STD**2 * float(lam.sum())) - 1) < 0.12


def test_divergence_names_step_sigma_and_term(gaussian_task):
    task = gaussian_task
    term = ObservationTerm(
        task["sensor"], task["y"], "source", loss="sqnorm", schedule=GuidanceSchedule(weight=1e200), name="sensors"
    )
    sampler = PosteriorSampler(DCTGaussianPrior(task["lam"]), SamplerConfig(steps=10), [term])
    with pytest.raises(SamplingDivergedError, match=r"step \d+ of 10 \(sigma = .*'sensors'") as info:
        sampler.sample(2, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert "sensors" in info.value.culprit and info.value.sigma == pytest.approx(
        float(SamplerConfig(steps=10).sigmas()[info.value.step])
    )


def test_bad_inputs_raise_clear_errors(gaussian_task):
    task = gaussian_task
    prior = DCTGaussianPrior(task["lam"])
    bad_y = task["y"].clone()
    bad_y[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ObservationTerm(task["sensor"], bad_y, "source")
    with pytest.raises(ValueError, match="generator"):
        PosteriorSampler(prior).sample(2, 0)
    wrong = ObservationTerm(task["sensor"], task["y"][..., :5], "source")
    with pytest.raises(ValueError, match="y has shape"):
        PosteriorSampler(prior, SamplerConfig(steps=2), [wrong]).sample(2, torch.Generator(), dtype=torch.float64)
    other_fields = ObservationTerm(task["sensor"], task["y"], "vorticity")
    with pytest.raises(ValueError, match="no channel 'vorticity'"):
        PosteriorSampler(prior, SamplerConfig(steps=2), [other_fields]).sample(2, torch.Generator())
    with pytest.raises(ValueError, match="integrator"):
        SamplerConfig(integrator="rk4")
    with pytest.raises(ValueError, match="unique"):
        PosteriorSampler(prior, terms=[wrong, wrong])
