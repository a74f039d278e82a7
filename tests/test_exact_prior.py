"""The exact joint Gaussian prior against dense linear algebra, and its bench path (``--prior exact``).

The dense reference forms the covariance matrix C of the Helmholtz source GRF and the matrix A of
the solution operator column by column; the joint covariance of the normalised (source, solution)
is Sigma = [[C / s_a^2, C A^T / (s_a s_u)], [A C / (s_a s_u), A C A^T / s_u^2]] and the exact
denoiser is Sigma (Sigma + sigma^2 I)^-1.
"""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.bench.bayes_limit import bayes_limit_table, figures
from pdeinv.bench.runner import BenchConfig, exact_prior, run_benchmark
from pdeinv.bench.tasks import get_task
from pdeinv.datasets import generate, helmholtz_source_grf, make_config
from pdeinv.operators import Helmholtz, PointObservation, random_points
from pdeinv.priors.cg import CGConfig
from pdeinv.priors.gaussian import helmholtz_joint_prior
from pdeinv.sampling import InverseProblem, MethodOptions, solve

from dense import as_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

S = 8


@pytest.fixture(scope="module")
def dense():
    grf, operator = helmholtz_source_grf(S), Helmholtz(S)
    cov, a = as_matrix(grf.covariance, S), as_matrix(operator.A, S)
    s_a = float(torch.diagonal(cov).mean().sqrt())
    s_u = float(torch.diagonal(a @ cov @ a.T).mean().sqrt())
    return {"grf": grf, "operator": operator, "cov": cov, "a": a, "std": (s_a, s_u)}


def dense_joint(dense, std: torch.Tensor) -> torch.Tensor:
    """Sigma of the module docstring with the normalisation ``std`` (the prior's stored float32 values)."""
    s_a, s_u = std.double().tolist()
    g = torch.cat([torch.eye(S * S, dtype=torch.float64) / s_a, dense["a"] / s_u])
    return g @ dense["cov"] @ g.T


def dense_denoiser(joint: torch.Tensor, sigma: float) -> torch.Tensor:
    return joint @ torch.linalg.inv(joint + sigma**2 * torch.eye(len(joint), dtype=torch.float64))


@pytest.mark.parametrize("sigma", [50.0, 1.0, 0.05, 0.002])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tol, bound", [(CGConfig().tol, 1e-5), (1e-11, 1e-9)])
def test_exact_denoiser_equals_the_dense_posterior_mean(dense, sigma, dtype, tol, bound):
    """To the solver's tolerance, in float64 whatever the input dtype (float32 rounding only at the end)."""
    prior = helmholtz_joint_prior(S, cg=CGConfig(tol=tol, max_iter=5000))
    assert torch.allclose(prior.std.double(), torch.tensor(dense["std"], dtype=torch.float64), rtol=1e-6)
    y = torch.randn(3, 2, S, S, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = (dense_denoiser(dense_joint(dense, prior.std), sigma) @ y.flatten(1).T).T.reshape(y.shape)
    got = prior(y.to(dtype), sigma)
    assert got.dtype == dtype
    error = float((got.double() - expected).norm() / expected.norm())
    assert error < max(bound, 1e-6 if dtype == torch.float32 else 0.0)


@pytest.mark.parametrize("sigma", [50.0, 1.0, 0.05, 0.002])
def test_eigen_solver_equals_the_dense_posterior_mean(dense, sigma):
    """The dense eigendecomposition gives the posterior mean to rounding at every level, and keeps exactly the
    (S - 2)^2 modes the boundary mask leaves."""
    prior = helmholtz_joint_prior(S, solver="eigen")
    y = torch.randn(3, 2, S, S, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = (dense_denoiser(dense_joint(dense, prior.std), sigma) @ y.flatten(1).T).T.reshape(y.shape)
    got = prior(y, sigma)
    assert float((got - expected).norm() / expected.norm()) < 1e-9  # the dense inverse's own rounding at 0.002
    assert prior._eigenbasis(y.device)[1].numel() == (S - 2) ** 2


def test_eigen_spectrum_factorises_the_denoiser(dense):
    """<u, D_sigma v> = sum_n (W^T u)_n kappa_n / (kappa_n + sigma^2) (W^T v)_n, against the dense matrix."""
    prior, sigma = helmholtz_joint_prior(S, solver="eigen"), 0.03
    g = torch.Generator().manual_seed(4)
    u, v = (torch.randn(k, 2, S, S, generator=g, dtype=torch.float64) for k in (2, 3))
    (cu, kappa), (cv, _) = prior.gaussian_spectrum(u), prior.gaussian_spectrum(v)
    matrix = dense_denoiser(dense_joint(dense, prior.std), sigma)
    expected = u.flatten(1) @ matrix @ v.flatten(1).T
    got = (cu * (kappa / (kappa + sigma**2))) @ cv.T
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-10
    assert helmholtz_joint_prior(S).gaussian_spectrum(u) is None


def test_measurement_covariance_is_the_same_from_the_eigenbasis_and_from_cg():
    """TMPD's Tweedie covariance of point values: one product per level from the eigenbasis, 12 CG solves per
    level otherwise; both are H D_sigma H^T."""
    from pdeinv.sampling.terms import GaussianMeasurementCovariance

    sensor = PointObservation(S, indices=random_points(12, S, seed=5))

    def linear(v):
        return sensor.A(v[:, 1:]).flatten(1)

    like = torch.zeros(1, 2, S, S, dtype=torch.float64)
    by_eigen = GaussianMeasurementCovariance(helmholtz_joint_prior(S, solver="eigen"), linear, 0.01, like)
    by_cg = GaussianMeasurementCovariance(helmholtz_joint_prior(S, cg=CGConfig(tol=1e-12)), linear, 0.01, like)
    assert by_eigen.columns is not None and by_cg.columns is None
    for sigma in (5.0, 0.2, 0.005):
        expected = by_cg.covariance(sigma)
        assert float((by_eigen.covariance(sigma) - expected).abs().max() / expected.abs().max()) < 1e-9


def test_eigen_solver_is_refused_above_its_size_and_for_unknown_names():
    with pytest.raises(ValueError, match="at most 16384 grid points"):
        helmholtz_joint_prior(130, solver="eigen")
    with pytest.raises(ValueError, match="solver must be one of"):
        helmholtz_joint_prior(S, solver="lu")


def test_gradient_through_the_exact_denoiser_is_its_transpose(dense):
    """d<v, D(x)>/dx = D^T v = D v (the dense denoiser is symmetric); autograd must give the dense product."""
    prior, sigma = helmholtz_joint_prior(S, cg=CGConfig(tol=1e-11)), 0.01
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, S, S, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 2, S, S, generator=g, dtype=torch.float64)
    (prior(x, sigma) * v).sum().backward()
    matrix = dense_denoiser(dense_joint(dense, prior.std), sigma)
    expected = (matrix.T @ v.flatten(1).T).T.reshape(v.shape)
    assert float((x.grad - expected).norm() / expected.norm()) < 1e-7
    with pytest.raises(ValueError, match="not differentiable in sigma"):
        prior(x, torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True))


def test_kriging_equals_the_posterior_of_the_exact_prior(dense):
    """Kriging's mean is the conditional mean of the exact prior's joint Gaussian (its covariance read off its
    denoiser, sigma^2 D_sigma -> Sigma as sigma grows), given point values of the solution."""
    grf, operator = dense["grf"], dense["operator"]
    sources = grf.sample(2, torch.Generator().manual_seed(2), dtype=torch.float64)
    sensor = PointObservation(S, indices=random_points(12, S, seed=3))
    problem = InverseProblem(
        operator, sensor, sensor.A(operator.A(sources)), "output", "input", "source", "solution", "helmholtz", grf
    )
    prior, big = exact_prior(problem), 1e5
    assert prior.solver == "eigen" and exact_prior(problem) is prior  # factorised once per process
    unit = torch.eye(2 * S * S, dtype=torch.float64).reshape(-1, 2, S, S)
    joint = big**2 * prior(unit, big).reshape(2 * S * S, -1)  # normalised joint covariance, error ~ 1 / big^2
    scale = torch.cat([torch.full((S * S,), float(s), dtype=torch.float64) for s in prior.std])
    physical = scale[:, None] * joint * scale[None, :]
    observe = torch.cat([torch.zeros(12, S * S, dtype=torch.float64), as_matrix(sensor.A, S)], dim=1)
    k = observe @ physical @ observe.T
    keep = torch.diagonal(k) > 1e-12 * torch.diagonal(k).max()
    gain = physical[: S * S] @ observe[keep].T @ torch.linalg.inv(k[keep][:, keep])
    expected = (gain @ problem.measurements.flatten(1)[:, keep].T).T.reshape(sources.shape)
    kriging = solve("kriging", problem, MethodOptions()).mean
    assert float((kriging - expected).norm() / expected.norm()) < 1e-6


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "helmholtz_64_test.h5"
    return generate(make_config("helmholtz", 64, 2, 2), path, progress=False)


def test_bench_runs_a_sampler_with_the_exact_prior_and_records_its_spread(test_file):
    config = BenchConfig("helmholtz-inverse-64", "dps", n=1, steps=3, samples=2, prior="exact", data=str(test_file))
    record = run_benchmark(config)
    assert record["prior"] == "exact" and record["provenance"]["prior_weights"] == {}
    assert len(record["rel_std"]) == 1 and record["rel_std"][0] > 0
    kriging = run_benchmark(BenchConfig("helmholtz-inverse-64", "kriging", n=1, data=str(test_file)))
    assert 0 < kriging["rel_std"][0] < 1 and kriging["prior"] is None


def test_exact_prior_is_refused_where_it_does_not_exist(test_file):
    task = get_task("ns-inverse-64")
    from pdeinv.sampling.problem import pde_physics

    physics = pde_physics(task.pde, 16)
    problem = InverseProblem(
        physics.operator, PointObservation(16, indices=random_points(4, 16, seed=0), grid="periodic"),
        torch.zeros(1, 1, 4), "output", "input", "vorticity", "final", task.pde, physics.input_prior,
        grid="periodic",
    )
    with pytest.raises(ValueError, match="needs a linear PDE whose input is a Gaussian random field.*helmholtz, poisson"):
        exact_prior(problem)
    with pytest.raises(ValueError, match="--gaussian-part"):
        BenchConfig("helmholtz-inverse-64", "dps", prior="exact", gaussian_part=True)


def _record(method, errors, spreads, samples, task="t"):
    return {"task": task, "method": method, "n": len(errors), "samples": samples, "steps": 50, "rel_l2": errors,
            "rel_std": spreads, "seconds_per_sample": 1.0, "provenance": {"data_sha256": "d"}}


def test_bayes_limit_figures_of_an_exact_gaussian_sampler():
    """Samples drawn exactly from N(mu, Sigma) give single-sample and calibration ratios near 1, the mean of K
    near sqrt(1 + 1/K); samples shrunk towards their mean are flagged as over-confident."""
    g = torch.Generator().manual_seed(4)
    n, k, dim = 40, 4, 2000
    std = torch.linspace(0.05, 1.0, dim, dtype=torch.float64)
    mu = torch.randn(n, dim, generator=g, dtype=torch.float64) * 3
    truth = mu + std * torch.randn(n, dim, generator=g, dtype=torch.float64)
    samples = mu[:, None] + std * torch.randn(n, k, dim, generator=g, dtype=torch.float64)

    def record(s):
        mean = s.mean(1)
        return _record("exact-sampler", ((mean - truth).norm(dim=1) / truth.norm(dim=1)).tolist(),
                       (s.std(1).norm(dim=1) / truth.norm(dim=1)).tolist(), k)

    kriging = _record("kriging", ((mu - truth).norm(dim=1) / truth.norm(dim=1)).tolist(),
                      (std.norm() / truth.norm(dim=1)).tolist(), 1)
    exact = figures(record(samples), kriging)
    assert abs(exact["single_ratio"] - 1) < 0.03 and abs(exact["calibration"] - 1) < 0.05
    assert abs(exact["mean_ratio"] - math.sqrt(1 + 1 / k)) < 0.05
    shrunk = figures(record(mu[:, None] + 0.5 * (samples - mu[:, None])), kriging)
    assert shrunk["calibration"] < 0.7
    table = bayes_limit_table([kriging, record(samples)])
    assert "| t | exact-sampler | 50 | 40 | 4 |" in table and "kriging (exact posterior mean)" in table
