"""TMPD through a nonlinear solve: the Jacobian adjoint of the Darcy solve and the linearised covariance.

Each piece is checked against something computed independently: finite differences of the solve,
the exact probe of a linear operator, and the dense Gauss-Newton covariance from the solve's full
Jacobian.
"""

from __future__ import annotations

import functools

import pytest
import torch

from pdeinv.datasets.grf import darcy_level_set_grf, darcy_permeability
from pdeinv.operators import Darcy, Helmholtz, PointObservation, random_points
from pdeinv.pdes.spec import solve_estimate_adjoint
from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.consistent import OperatorConsistentPrior
from pdeinv.priors.edm import EDMConfig, EDMDenoiser, GaussianAboveLevel, GaussianPart
from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser, prior_spectrum
from pdeinv.sampling import InverseProblem, MethodOptions, solve
from pdeinv.sampling.methods.tmpd import solved_prior
from pdeinv.sampling.terms import (
    GuidanceState,
    ObservationTerm,
    _sensor_adjoint,
    linearised_measurement_covariance,
)

from test_darcy import _level_set_problem

CHANNELS = ("permeability", "pressure")


def _permeability(shape, seed: int) -> torch.Tensor:
    return 3.0 + 9.0 * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_jacobian_adjoint_matches_finite_differences_for_every_cotangent():
    operator = Darcy(12)
    a = _permeability((2, 1, 12, 12), 0)
    g = torch.Generator().manual_seed(1)
    cotangents = torch.randn(3, 2, 1, 12, 12, generator=g, dtype=torch.float64)
    direction = torch.randn(2, 1, 12, 12, generator=g, dtype=torch.float64)
    pulled = operator.jacobian_adjoint(a, cotangents)
    assert pulled.shape == cotangents.shape
    eps = 1e-5
    change = (operator.A(a + eps * direction) - operator.A(a - eps * direction)) / (2 * eps)
    for w, grad in zip(cotangents, pulled):
        fd = (w * change).sum(dim=(1, 2, 3))
        torch.testing.assert_close((grad * direction).sum(dim=(1, 2, 3)), fd, rtol=1e-7, atol=1e-12)
    with pytest.raises(ValueError, match="cotangents must have shape"):
        operator.jacobian_adjoint(a, cotangents[0])


def test_solve_estimate_adjoint_vanishes_where_the_permeability_is_clipped():
    operator = Darcy(10)
    a = _permeability((1, 1, 10, 10), 2)
    a[..., 2:5, 3:6] = 20.0  # above the admissible 12: clipped before the solve
    w = torch.randn(2, 1, 1, 10, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pulled = solve_estimate_adjoint(operator, a, w)
    clipped = (a > 12.0).expand_as(pulled)
    assert bool((pulled[clipped] == 0).all())
    torch.testing.assert_close(pulled[~clipped], operator.jacobian_adjoint(a.clamp(3.0, 12.0), w)[~clipped])


def _joint_network(operator_size: int, fields: torch.Tensor, mean, std) -> EDMDenoiser:
    """A small network prior whose Gaussian base is fitted to normalised ``fields``."""
    base = SpectralGaussianDenoiser.fit(fields.float(), "fft")
    backbone = build_backbone("fno", channels=2, width=4, n_layers=1, n_modes=2)
    return EDMDenoiser(
        backbone, EDMConfig(), channels=CHANNELS, mean=mean, std=std, resolution=operator_size, base=base
    )


def _joint_part(operator_size: int, fields: torch.Tensor, mean, std) -> GaussianPart:
    """The Gaussian part of :func:`_joint_network`."""
    return GaussianPart(_joint_network(operator_size, fields, mean, std))


def test_linearised_probe_is_the_exact_probe_for_a_linear_operator():
    size = 10
    operator = Helmholtz(size, k=1.0)
    g = torch.Generator().manual_seed(4)
    fields = torch.randn(200, 2, size, size, generator=g)
    prior = OperatorConsistentPrior(_joint_part(size, fields, [0.0, 0.0], [1.0, 0.3]), operator, *CHANNELS)
    v = torch.randn(3, 2, 2, size, size, generator=g, dtype=torch.float64)
    estimate = torch.randn(2, 2, size, size, generator=g, dtype=torch.float64)
    linearised = prior.linearised_probe(v, estimate)
    for k in range(3):
        torch.testing.assert_close(linearised[k], prior._probe(v[k]).double(), rtol=1e-6, atol=1e-9)


@functools.lru_cache(maxsize=None)
def _darcy_network(size: int) -> EDMDenoiser:
    permeability = darcy_permeability(darcy_level_set_grf(size).sample(300, torch.Generator().manual_seed(5)))
    pressure = Darcy(size).A(permeability.double()).float()
    fields = torch.cat([permeability, pressure], dim=1)
    mean = [7.5, float(pressure.mean())]
    std = [4.5, float(pressure.std())]
    normalised = (fields - torch.tensor(mean).reshape(1, 2, 1, 1)) / torch.tensor(std).reshape(1, 2, 1, 1)
    return _joint_network(size, normalised, mean, std)


@functools.lru_cache(maxsize=None)
def _darcy_prior(size: int) -> OperatorConsistentPrior:
    """The Gaussian part of :func:`_darcy_network` in operator-consistent form."""
    return OperatorConsistentPrior(GaussianPart(_darcy_network(size)), Darcy(size), *CHANNELS)


def _dense_solve_jacobian(operator: Darcy, a: torch.Tensor) -> torch.Tensor:
    """``(S*S, S*S)`` Jacobian of the clipped solve at one permeability ``(S, S)``."""
    s = operator.resolution

    def solve_flat(x):
        return operator.A(x.reshape(1, 1, s, s).clamp(3.0, 12.0)).reshape(-1)

    return torch.autograd.functional.jacobian(solve_flat, a.reshape(-1))


def test_linearised_covariance_equals_the_dense_gauss_newton_covariance():
    size, n_points, noise, scale = 8, 7, 1e-2, 2.0
    prior = _darcy_prior(size)
    sensor = PointObservation(size, indices=random_points(n_points, size, seed=6))
    estimate = 0.8 * torch.randn(2, 2, size, size, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    units = torch.eye(2 * size * size, dtype=torch.float64).reshape(-1, 2, size, size)
    for sigma in (0.05, 0.6, 8.0):
        got = linearised_measurement_covariance(prior, sensor, ("pressure",), scale, noise, estimate, sigma)
        inner_jacobian = prior.prior.gaussian_jvp(units, sigma).double().reshape(units.shape[0], -1).T
        n = size * size
        input_block = inner_jacobian[:n, :n]
        sampling = sensor.A(torch.eye(n, dtype=torch.float64).reshape(n, 1, size, size))[:, 0].T  # (M, N)
        for b in range(2):
            a = prior.mean[0] + prior.std[0] * estimate[b, 0]
            gain = scale * sampling @ _dense_solve_jacobian(prior.operator, a.double()) * float(prior.std[0])
            dense = noise**2 * torch.eye(n_points, dtype=torch.float64) + sigma**2 * gain @ input_block @ gain.T
            torch.testing.assert_close(got[b], dense, rtol=1e-7, atol=1e-12)
    term = ObservationTerm(sensor, torch.zeros(1, 1, n_points), "pressure", loss="tweedie", noise_std=noise,
                           scale=scale)
    state = GuidanceState(estimate, estimate, 0.6, 0, 10, prior, lambda z: z, prior.denoise)
    factor = term._tweedie_factor(state, n_points)
    expected = linearised_measurement_covariance(prior, term.operator, ("pressure",), scale, noise, estimate, 0.6)
    torch.testing.assert_close(factor @ factor.transpose(1, 2), expected, rtol=1e-9, atol=1e-14)
    first = _sensor_adjoint(prior, term.operator, ("pressure",), scale, estimate)
    assert _sensor_adjoint(prior, term.operator, ("pressure",), scale, estimate) is first  # built once


def test_linearised_covariance_without_spectral_coordinates_goes_through_the_gaussian_jvp():
    """A prior that exposes only ``gaussian_jvp`` (no spectrum) gets the same covariance, by the other path."""
    prior = _darcy_prior(8)
    switched = prior.with_prior(GaussianAboveLevel(_darcy_network(8), 1.0))
    assert prior_spectrum(switched.prior, torch.zeros(1, 2, 8, 8, dtype=torch.float64)) is None
    sensor = PointObservation(8, indices=random_points(6, 8, seed=6))
    estimate = 0.8 * torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for sigma in (0.05, 2.0):
        expected = linearised_measurement_covariance(prior, sensor, ("pressure",), 2.0, 1e-2, estimate, sigma)
        got = linearised_measurement_covariance(switched, sensor, ("pressure",), 2.0, 1e-2, estimate, sigma)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-14)


def test_linearised_covariance_does_not_apply_to_a_linear_pde_or_a_raw_prior():
    prior = _darcy_prior(8)
    sensor = PointObservation(8, indices=random_points(5, 8, seed=6))
    estimate = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    assert linearised_measurement_covariance(prior.prior, sensor, ("pressure",), 1.0, 1e-2, estimate, 1.0) is None
    linear = OperatorConsistentPrior(prior.prior, Helmholtz(8, k=1.0), *CHANNELS)
    assert linearised_measurement_covariance(linear, sensor, ("pressure",), 1.0, 1e-2, estimate, 1.0) is None


def test_tmpd_solve_reads_an_observed_output_through_the_solve():
    size = 16
    raw = _darcy_prior(size).prior
    inverse, permeability, _ = _level_set_problem(size, "output", n_points=60)
    forward, _, _ = _level_set_problem(size, "input", n_points=60)
    assert isinstance(solved_prior(inverse, raw), OperatorConsistentPrior)
    assert solved_prior(forward, raw) is raw
    helmholtz = InverseProblem(
        Helmholtz(size, k=1.0), inverse.sensor, inverse.measurements, "output", "input", *CHANNELS, "helmholtz"
    )
    assert solved_prior(helmholtz, raw) is raw  # a linear PDE's prior is used as given
    result = solve("tmpd-solve", inverse, MethodOptions(steps=20, prior=raw.double(), batch_size=3))
    wrong = ((result.mean > 7.5) != (permeability > 7.5)).double().mean(dim=(1, 2, 3))
    high = (permeability > 7.5).double().mean(dim=(1, 2, 3))
    chance = torch.minimum(high, 1 - high)
    assert bool(torch.isfinite(result.mean).all())
    assert float(wrong.max()) < 0.4 * float(chance.min()), (wrong, chance)
