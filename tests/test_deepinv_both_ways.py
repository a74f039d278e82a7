"""deepinv both ways: pdeinv priors as deepinv Denoisers, deepinv sensors in pdeinv, exact operator norms, PGD."""

import deepinv as dinv
import pytest
import torch

import pdeinv
from pdeinv.datasets import helmholtz_source_grf
from pdeinv.metrics import relative_l2
from pdeinv.operators import Helmholtz, PointObservation, Poisson, random_points
from pdeinv.priors import helmholtz_joint_prior, load


def dense_matrix(operator, s):
    basis = torch.eye(s * s, dtype=torch.float64).reshape(s * s, 1, s, s)
    return operator.A(basis).flatten(1).T


@pytest.mark.parametrize("operator", [Helmholtz(9, k=1.0), Helmholtz(9, k=7.5), Poisson(9)])
def test_helmholtz_norm_is_the_largest_singular_value(operator):
    exact = torch.linalg.matrix_norm(dense_matrix(operator, 9), ord=2) ** 2
    x0 = torch.zeros(1, 9, 9, dtype=torch.float64)
    assert float(operator.compute_norm(x0)) == pytest.approx(float(exact), rel=1e-12)
    assert float(operator.compute_norm(x0, squared=False)) == pytest.approx(float(exact.sqrt()), rel=1e-12)


def test_points_after_helmholtz_norm_matches_a_dense_computation():
    s = 12
    sensor = PointObservation(s, indices=random_points(20, s, seed=2))
    physics = sensor * Helmholtz(s)
    matrix = sensor.A(dense_matrix(Helmholtz(s), s).T.reshape(-1, 1, s, s))[:, 0].T  # (M, S^2)
    exact = torch.linalg.matrix_norm(matrix, ord=2) ** 2
    assert float(physics.compute_sqnorm(torch.zeros(1, s, s, dtype=torch.float64))) == pytest.approx(float(exact), rel=1e-10)


def test_deepinv_pgd_on_points_after_helmholtz_converges_to_the_tikhonov_solution():
    """PGD with the step 1/||PA||^2 reaches argmin 1/2 ||PAx - y||^2 + lam/2 ||x||^2 (closed form on a small grid)."""
    s, lam = 12, 1e-6
    sensor = PointObservation(s, indices=random_points(40, s, seed=1))
    physics = sensor * Helmholtz(s)
    x_true = helmholtz_source_grf(s).sample(1, torch.Generator().manual_seed(0), dtype=torch.float64)
    y = physics.A(x_true)
    norm = physics.compute_sqnorm(torch.zeros(1, s, s, dtype=torch.float64))
    model = dinv.optim.PGD(
        data_fidelity=dinv.optim.L2(), prior=dinv.optim.Tikhonov(), lambda_reg=lam, stepsize=1.0 / float(norm),
        max_iter=3000, early_stop=False,
    )
    estimate = model(y, physics, init=torch.zeros_like(x_true))
    matrix = sensor.A(dense_matrix(Helmholtz(s), s).T.reshape(-1, 1, s, s))[:, 0].T
    normal = matrix.T @ matrix + lam * torch.eye(s * s, dtype=torch.float64)
    exact = torch.linalg.solve(normal, matrix.T @ y.flatten()).reshape(1, 1, s, s)
    assert torch.isfinite(estimate).all()
    assert float(relative_l2(estimate, exact)) < 0.05


def test_priors_are_deepinv_denoisers_in_normalised_units():
    prior = load("helmholtz-joint")
    assert isinstance(prior, dinv.models.Denoiser)
    x = torch.randn(2, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior(x, 0.5), prior.denoise(x, 0.5))
    torch.testing.assert_close(prior(x.double(), torch.tensor([0.5, 0.5])), prior.denoise(x, 0.5).double())


def test_deepinv_dps_with_a_pdeinv_prior_beats_the_prior_mean():
    """deepinv.sampling.DPS, the exact joint Gaussian prior in deepinv's [-1, 1] range, Helmholtz inverse at 16 x 16."""
    s = 16
    prior = helmholtz_joint_prior(s)
    model = prior.image_range()
    sensor = PointObservation(s, indices=random_points(60, s, seed=0))
    source = helmholtz_source_grf(s).sample(1, torch.Generator().manual_seed(5), dtype=torch.float64)
    y = sensor.A(Helmholtz(s).A(source))
    scale = float(prior.std[1])

    def measure(x):
        return sensor.A(model.to_physical(x)[:, 1:]) / scale

    physics = dinv.physics.Physics(A=measure)
    sampler = dinv.sampling.DPS(model, num_steps=200, weight=5.0, rng=torch.Generator().manual_seed(0),
                                minus_one_one=False, dtype=torch.float64)
    x = sampler(y / scale, physics, x_init=(1, 2, s, s))
    estimate = model.to_physical(x)[:, :1]
    error = float(relative_l2(estimate, source))
    assert error < 0.9, error  # the prior mean (zero) has error 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["kriging", "tmpd", "dps"])
@pytest.mark.parametrize("make_sensor", ["inpainting", "blur", "downsampling"])
def test_deepinv_sensors_work_in_pdeinv_methods(method, make_sensor, dtype, request):
    if method == "kriging" or make_sensor == "blur":
        request.applymarker(pytest.mark.xfail(
            raises=(ValueError, RuntimeError), strict=True,
            reason="kriging assumes a (B, 1, M) point sensor; deepinv's Blur keeps a float32 filter for float64 fields",
        ))
    s = 16
    sensors = {
        "inpainting": lambda: dinv.physics.Inpainting((1, s, s), mask=0.3, rng=torch.Generator().manual_seed(0)),
        "blur": lambda: dinv.physics.Blur(dinv.physics.blur.gaussian_blur(1.0), padding="circular"),
        "downsampling": lambda: dinv.physics.Downsampling((1, s, s), filter=None, factor=2, padding="circular"),
    }
    sensor = sensors[make_sensor]()
    source = helmholtz_source_grf(s).sample(2, torch.Generator().manual_seed(1), dtype=torch.float64)
    y = sensor.A(Helmholtz(s).A(source)).to(dtype)
    prior = None if method == "kriging" else helmholtz_joint_prior(s)
    steps = 50 if method == "dps" else 10  # DPS's per-step zeta overshoots on a 10-step grid (231 % at 10, 41 % at 50)
    result = pdeinv.reconstruct(y, sensor * Helmholtz(s), prior, method=method, samples=1, steps=steps)
    assert result.mean.shape == (2, 1, s, s) and torch.isfinite(result.mean).all()
    assert float(relative_l2(result.mean, source).mean()) < (0.5 if method == "kriging" else 1.5)
