"""Gaussian random fields against analytic covariances built independently with numpy/scipy.

The reference covariances are written from the anchors' formulas (FNO ``GaussianRF``:
``sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)`` per Fourier mode; DiffusionPDE ``GRF.m``: DCT
coefficients ``S tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2) xi``), with scipy's DCT as the
transform, never with pdeinv's own code. Statistical tolerances are 5 standard errors computed
from the Gaussian theory of the estimators.
"""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from pdeinv.datasets.grf import GaussianRandomField, helmholtz_source_grf, ns_vorticity_grf
from pdeinv.datasets.seeding import sample_generator, sample_seed


def fno_mode_variance(s, alpha=2.5, tau=7.0):
    """sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha) on the FFT wavenumber grid, mean mode 0 (sigma = tau^(alpha-1))."""
    k = np.fft.fftfreq(s, 1.0 / s)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    mu = tau ** (2 * (alpha - 1)) * (4 * math.pi**2 * k2 + tau**2) ** (-alpha)
    mu[0, 0] = 0.0
    return mu


def dct_coefficient_std(s, alpha=2.0, tau=3.0):
    """DiffusionPDE coefficient scale S tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2), mean mode 0."""
    k = np.arange(s)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    c = s * tau ** (alpha - 1) * (math.pi**2 * k2 + tau**2) ** (-alpha / 2)
    c[0, 0] = 0.0
    return c


def dense_cosine_covariance(s, zero_boundary):
    """The (s^2, s^2) covariance of idct2(c * xi) (optionally boundary-masked), from scipy's DCT."""
    basis = scipy.fft.idctn(np.eye(s * s).reshape(s * s, s, s), axes=(1, 2), norm="ortho").reshape(s * s, s * s)
    factor = basis * dct_coefficient_std(s).reshape(-1)[:, None]
    cov = factor.T @ factor
    if zero_boundary:
        mask = np.zeros((s, s))
        mask[1:-1, 1:-1] = 1.0
        cov = cov * np.outer(mask.reshape(-1), mask.reshape(-1))
    return cov


def dense_periodic_covariance(s):
    """C_ij = sum_k mu_k cos(2 pi k . (x_i - x_j)), x_i = i/s: the covariance of Re(ifft(...))."""
    mu = fno_mode_variance(s)
    k = np.fft.fftfreq(s, 1.0 / s)
    idx = np.arange(s)
    phase = 2 * math.pi * np.subtract.outer(idx, idx) / s
    # C[(i1,j1),(i2,j2)] = sum_{k1,k2} mu cos(k1 d1 + k2 d2)
    cos1, sin1 = np.cos(k[None, None, :] * phase[:, :, None]), np.sin(k[None, None, :] * phase[:, :, None])
    cc = np.einsum("abk,cdl,kl->acbd", cos1, cos1, mu) - np.einsum("abk,cdl,kl->acbd", sin1, sin1, mu)
    return cc.reshape(s * s, s * s)


def test_fno_sampler_is_reproduced_exactly():
    s = 16
    grf = ns_vorticity_grf(s)
    gen = torch.Generator().manual_seed(3)
    xi = torch.randn(2, 1, s, s, generator=gen, dtype=torch.complex128)
    sqrt_eig = s**2 * math.sqrt(2.0) * np.sqrt(fno_mode_variance(s))
    expected = np.fft.ifft2(sqrt_eig * xi.numpy()).real
    got = grf.sample(2, torch.Generator().manual_seed(3), dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_diffusionpde_sampler_is_reproduced_exactly():
    s = 16
    grf = helmholtz_source_grf(s)
    xi = torch.randn(2, 1, s, s, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = scipy.fft.idctn(dct_coefficient_std(s) * xi.numpy(), axes=(2, 3), norm="ortho")
    expected[..., [0, -1], :] = 0.0
    expected[..., :, [0, -1]] = 0.0
    got = grf.sample(2, torch.Generator().manual_seed(5), dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_ns_vorticity_variance_and_spectrum_match_theory():
    s, n = 32, 3000
    mu = fno_mode_variance(s)
    grf = ns_vorticity_grf(s)
    np.testing.assert_allclose(grf.variance().numpy(), np.full((s, s), mu.sum()), rtol=1e-12)
    w = grf.sample(n, torch.Generator().manual_seed(0), dtype=torch.float64).numpy()[:, 0]
    power = np.abs(np.fft.fft2(w, norm="ortho")) ** 2
    expected_power = s**2 * mu
    # pixel-averaged variance: its variance is (2/n) sum_k lambda_k^2 / S^4 (pairs k, -k are tied)
    empirical_var = (w**2).mean()
    se_var = math.sqrt(2.0 * (expected_power**2).sum() / n) / s**2
    assert abs(empirical_var - mu.sum()) < 5 * se_var
    # radially averaged spectrum: |F_k|^2 is exponential (chi^2_2 / 2) with mean lambda_k
    k = np.fft.fftfreq(s, 1.0 / s)
    radius = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int)
    mean_power = power.mean(axis=0)
    for r in range(1, s // 2):
        ring = radius == r
        se = math.sqrt(2.0 * (expected_power[ring] ** 2).sum() / n) / ring.sum()
        assert abs(mean_power[ring].mean() - expected_power[ring].mean()) < 5 * se, r
    assert mean_power[0, 0] < 1e-20


def test_helmholtz_source_variance_and_spectrum_match_theory():
    s, n = 16, 4000
    cov = dense_cosine_covariance(s, zero_boundary=True)
    true_var = np.diag(cov).reshape(s, s)
    grf = helmholtz_source_grf(s)
    np.testing.assert_allclose(grf.variance().numpy(), true_var, rtol=1e-12, atol=1e-15)
    a = grf.sample(n, torch.Generator().manual_seed(1), dtype=torch.float64).numpy()[:, 0]
    assert np.all(a[:, [0, -1], :] == 0) and np.all(a[:, :, [0, -1]] == 0)
    interior = (slice(1, -1), slice(1, -1))
    se = true_var[interior] * math.sqrt(2.0 / n)
    assert np.all(np.abs((a**2).mean(axis=0)[interior] - true_var[interior]) < 5 * se)
    # DCT power of the masked field: c = T a has covariance K = T C T^T (T: orthonormal DCT-II matrix)
    transform = scipy.fft.dctn(np.eye(s * s).reshape(s * s, s, s), axes=(1, 2), norm="ortho").reshape(s * s, s * s).T
    k_cov = transform @ cov @ transform.T
    expected_power = np.diag(k_cov).reshape(s, s)
    power = scipy.fft.dctn(a, axes=(1, 2), norm="ortho") ** 2
    k = np.arange(s)
    radius = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int).reshape(-1)
    for r in range(1, s):
        ring = radius == r
        # var(sum_ring c_k^2) = 2 sum_{k,k' in ring} K_kk'^2 for jointly Gaussian c
        se = math.sqrt(2.0 * (k_cov[np.ix_(ring, ring)] ** 2).sum() / n) / ring.sum()
        ring_power = power.mean(axis=0).reshape(-1)[ring].mean()
        assert abs(ring_power - expected_power.reshape(-1)[ring].mean()) < 5 * se, r


def test_unmasked_cosine_spectrum_is_diagonal():
    s, n = 16, 3000
    grf = GaussianRandomField(s, alpha=2.0, tau=3.0, basis="cosine")
    a = grf.sample(n, torch.Generator().manual_seed(2), dtype=torch.float64).numpy()[:, 0]
    coeffs = scipy.fft.dctn(a, axes=(1, 2), norm="ortho")
    expected = dct_coefficient_std(s) ** 2
    mean_power = (coeffs**2).mean(axis=0)
    nonzero = expected > 0
    assert np.all(np.abs(mean_power[nonzero] - expected[nonzero]) < 5 * expected[nonzero] * math.sqrt(2.0 / n))
    np.testing.assert_allclose(grf.eigenvalues().numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("preset", ["periodic", "cosine", "cosine_masked"])
def test_covariance_operators_match_dense_matrices(preset):
    s = 8
    if preset == "periodic":
        grf, cov = ns_vorticity_grf(s), dense_periodic_covariance(s)
    else:
        masked = preset == "cosine_masked"
        grf = GaussianRandomField(s, alpha=2.0, tau=3.0, basis="cosine", zero_boundary=masked)
        cov = dense_cosine_covariance(s, zero_boundary=masked)
    eye = torch.eye(s * s, dtype=torch.float64).reshape(s * s, 1, s, s)
    c_op = grf.covariance(eye).reshape(s * s, s * s).numpy()
    np.testing.assert_allclose(c_op, cov, atol=1e-12 * np.abs(cov).max())
    factor = grf.covariance_sqrt(eye).reshape(s * s, s * s).numpy().T  # column j = B e_j
    np.testing.assert_allclose(factor @ factor.T, cov, atol=1e-12 * np.abs(cov).max())
    np.testing.assert_allclose(grf.variance().numpy().reshape(-1), np.diag(cov), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("grf", [ns_vorticity_grf(8), GaussianRandomField(8, alpha=2.0, tau=3.0, basis="cosine")])
def test_apply_spectral_inverts_regularised_covariance(grf):
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s2 = 0.3
    y = grf.apply_spectral(x, lambda lam: 1.0 / (lam + s2))
    torch.testing.assert_close(grf.covariance(y) + s2 * y, x, rtol=1e-12, atol=1e-12)


def test_covariance_is_differentiable():
    s = 8
    grf = GaussianRandomField(s, alpha=2.0, tau=3.0, basis="cosine", zero_boundary=True)
    x = torch.zeros(1, 1, s, s, dtype=torch.float64, requires_grad=True)
    grf.covariance(x).sum().backward()
    row_sums = dense_cosine_covariance(s, zero_boundary=True).sum(axis=0).reshape(s, s)
    np.testing.assert_allclose(x.grad[0, 0].numpy(), row_sums, atol=1e-12)


def test_seeding_is_a_pure_function_of_seed_and_index():
    assert sample_seed(7, 3) == int(np.random.SeedSequence([7, 3]).generate_state(1, np.uint64)[0])
    a = torch.randn(4, generator=sample_generator(7, 3))
    assert torch.equal(a, torch.randn(4, generator=sample_generator(7, 3)))
    assert not torch.equal(a, torch.randn(4, generator=sample_generator(7, 4)))
    assert not torch.equal(a, torch.randn(4, generator=sample_generator(8, 3)))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
        GaussianRandomField(1, alpha=2.0, tau=3.0)
    with pytest.raises(ValueError, match="basis must be one of"):
        GaussianRandomField(8, alpha=2.0, tau=3.0, basis="sine")
    with pytest.raises(ValueError, match="tau must be positive"):
        GaussianRandomField(8, alpha=2.0, tau=0.0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        ns_vorticity_grf(8).sample(0, torch.Generator())
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        ns_vorticity_grf(8).sample(2, 0)
    with pytest.raises(ValueError, match="zero_boundary=True"):
        helmholtz_source_grf(8).apply_spectral(torch.zeros(1, 1, 8, 8), lambda lam: lam)
    with pytest.raises(ValueError, match="resolution 16"):
        ns_vorticity_grf(8).covariance(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="non-negative integer"):
        sample_generator(-1, 0)
