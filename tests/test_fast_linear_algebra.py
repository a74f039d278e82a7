"""The fast paths of the samplers against independent dense computations.

- the DST-I (matrix and FFT evaluations) against scipy;
- the spectral factorisation of a Gaussian part, ``<u, J v> = sum_n c_n(u) g_n c_n(v)``;
- the Tweedie covariance built once per noise level against ``s_y^2 I + sigma^2 G J G^T`` with a
  dense Jacobian (``gaussian_jvp`` on every unit field; test_spectral_gaussian checks it against
  autograd) and a dense sensor matrix.
"""

from __future__ import annotations

import functools

import pytest
import scipy.fft
import torch

from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.operators.sine_transform import MATRIX_MAX, dst1, dst1_2d
from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.consistent import OperatorConsistentPrior
from pdeinv.priors.edm import EDMConfig, EDMDenoiser, GaussianPart
from pdeinv.priors.gaussian import helmholtz_joint_prior
from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser, prior_spectrum
from pdeinv.sampling.terms import TWEEDIE_DROP_TOLERANCE, GuidanceState, ObservationTerm, gaussian_measurement_covariance

SIZE = 12


@pytest.mark.parametrize("n", [5, 126, MATRIX_MAX + 44])
def test_dst1_matches_scipy_on_the_matrix_and_the_fft_paths(n):
    x = torch.randn(3, n, 2, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    expected = scipy.fft.dst(x.numpy(), type=1, norm="ortho", axis=1)
    torch.testing.assert_close(dst1(x, dim=1), torch.from_numpy(expected), rtol=0, atol=1e-12)
    square = x[:, :, 0, None] * x[:, None, :, 1]
    expected_2d = scipy.fft.dstn(square.numpy(), type=1, norm="ortho", axes=(1, 2))
    torch.testing.assert_close(dst1_2d(square), torch.from_numpy(expected_2d), rtol=0, atol=1e-11)


@functools.lru_cache(maxsize=None)
def _priors(basis: str) -> list:
    """Gaussian parts fitted to exact Helmholtz pairs: raw, and (dst, dct) in operator-consistent form."""
    g = torch.Generator().manual_seed(3)
    exact = helmholtz_joint_prior(SIZE)
    fields = exact.sample(1500, g, dtype=torch.float64).float()
    if basis == "fft":
        fields = torch.roll(fields, shifts=(3, 5), dims=(-2, -1))  # any field is periodic data for the fft base
    base = SpectralGaussianDenoiser.fit(fields, basis)
    backbone = build_backbone("fno", channels=2, width=4, n_layers=1, n_modes=2)
    network = EDMDenoiser(backbone, EDMConfig(), channels=exact.channels, std=exact.std, resolution=SIZE, base=base)
    part = GaussianPart(network)
    if basis == "fft":
        return [part]
    return [part, OperatorConsistentPrior(part, Helmholtz(SIZE, k=1.0))]


def _dense_jacobian(prior, sigma: float) -> torch.Tensor:
    """``(CSS, CSS)`` matrix of ``v -> prior.gaussian_jvp(v, sigma)`` from its action on unit fields."""
    n = 2 * SIZE * SIZE
    units = torch.eye(n, dtype=torch.float64).reshape(n, 2, SIZE, SIZE)
    return prior.gaussian_jvp(units, sigma).double().reshape(n, n).T


@pytest.mark.parametrize("basis", ["fft", "dst", "dct"])
def test_spectrum_factorises_the_gaussian_jacobian(basis):
    g = torch.Generator().manual_seed(4)
    u, v = torch.randn(2, 3, 2, SIZE, SIZE, generator=g, dtype=torch.float64).unbind(0)
    for prior in _priors(basis):
        (cu, lam), (cv, _) = prior_spectrum(prior, u), prior_spectrum(prior, v)
        for sigma in (0.05, 0.7, 20.0):
            expected = (u * prior.gaussian_jvp(v, sigma).double()).sum((1, 2, 3))
            torch.testing.assert_close((cu * lam / (lam + sigma**2) * cv).sum(1), expected, rtol=1e-9, atol=1e-12)


def _term_and_state(prior, channel: str, noise: float, scale: float, sigma: float):
    points = random_points(9, SIZE, seed=2)
    sensor = PointObservation(SIZE, indices=points)
    y = torch.zeros(1, 1, 9, dtype=torch.float64)
    term = ObservationTerm(sensor, y, channel, loss="tweedie", noise_std=noise, scale=scale)
    x = torch.randn(2, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    state = GuidanceState(x, x, sigma, 0, 10, prior, lambda z: z, prior.denoise)
    return term, state, points


@pytest.mark.parametrize("basis", ["fft", "dst", "dct"])
@pytest.mark.parametrize("channel", ["source", "solution"])
def test_tweedie_covariance_per_level_equals_the_dense_computation(basis, channel):
    noise, scale = 1e-3, 3.0
    for prior in _priors(basis):
        index = prior.channels.index(channel)
        for sigma in (0.02, 0.5, 30.0):
            term, state, points = _term_and_state(prior, channel, noise, scale, sigma)
            factor = term._tweedie_factor(state, 9)[0]
            sensor = torch.zeros(9, 2 * SIZE * SIZE, dtype=torch.float64)
            flat = index * SIZE * SIZE + points[:, 0] * SIZE + points[:, 1]
            sensor[torch.arange(9), flat] = scale * float(prior.std[index])
            dense = noise**2 * torch.eye(9, dtype=torch.float64)
            dense = dense + sigma**2 * sensor @ _dense_jacobian(prior, sigma) @ sensor.T
            # Dropped modes add at most TWEEDIE_DROP_TOLERANCE * noise^2 in trace; the rest is rounding.
            tolerance = TWEEDIE_DROP_TOLERANCE * noise**2 + 1e-12 * float(dense.diagonal().max())
            torch.testing.assert_close(factor @ factor.T, dense, rtol=1e-8, atol=tolerance)


def test_tweedie_covariance_is_built_once_per_prior_and_operator_and_factorised_once_per_level():
    prior = _priors("dst")[1]
    term, state, _ = _term_and_state(prior, "solution", 1e-3, 1.0, 0.5)
    again, _, _ = _term_and_state(prior, "solution", 1e-3, 1.0, 0.5)
    again.operator = term.operator
    first = gaussian_measurement_covariance(prior, term.operator, ("solution",), 1.0, 1e-3, state.denoised)
    second = gaussian_measurement_covariance(prior, again.operator, ("solution",), 1.0, 1e-3, state.denoised)
    assert first is second
    assert first.factor(0.5) is second.factor(0.5)
    assert first.columns.shape[0] == 9 and first.columns.shape[1] <= 2 * (SIZE - 2) ** 2
