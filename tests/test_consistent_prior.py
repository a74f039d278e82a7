"""OperatorConsistentPrior: exact for the exact joint prior, physics-consistent for any network, linear or not."""

import pytest
import torch

from pdeinv.operators import Helmholtz, NavierStokes2D
from pdeinv.priors import EDMConfig, EDMDenoiser, helmholtz_joint_prior
from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.consistent import OperatorConsistentPrior

S = 10


def _noisy(prior, sigma, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, 2, S, S, generator=generator, dtype=torch.float64) * (1 + sigma**2) ** 0.5


def _tiny_network(channels, mean, std, size):
    return EDMDenoiser(
        build_backbone("fno", channels=2, width=8, n_layers=1, n_modes=4),
        EDMConfig(),
        channels=channels,
        mean=mean,
        std=std,
        resolution=size,
    ).double()


@pytest.mark.parametrize("sigma", [0.05, 0.5, 5.0])
def test_exact_joint_prior_is_already_operator_consistent(sigma):
    exact = helmholtz_joint_prior(S)
    wrapped = OperatorConsistentPrior(exact, Helmholtz(S))
    x = _noisy(exact, sigma)
    reference, consistent = exact.denoise(x, sigma), wrapped.denoise(x, sigma)
    torch.testing.assert_close(consistent[:, :1], reference[:, :1], rtol=0, atol=0)
    scale = reference[:, 1].abs().max()
    assert float((consistent[:, 1] - reference[:, 1]).abs().max() / scale) < 1e-5


def test_any_network_becomes_physics_consistent():
    network = _tiny_network(("source", "solution"), (0.1, -0.002), (0.3, 0.005), S)
    operator = Helmholtz(S)
    wrapped = OperatorConsistentPrior(network, operator)
    with torch.no_grad():
        estimate = wrapped.to_physical(wrapped.denoise(_noisy(network, 1.0), 1.0))
        raw = network.to_physical(network.denoise(_noisy(network, 1.0), 1.0))
    residual = operator.residual(estimate[:, :1], estimate[:, 1:])
    assert float(residual.abs().max() / estimate[:, :1].abs().max()) < 1e-10
    assert float(operator.residual(raw[:, :1], raw[:, 1:]).abs().max() / raw[:, :1].abs().max()) > 1e-2


def test_nonlinear_operator_projects_estimates_onto_its_solutions():
    size = 16
    network = _tiny_network(("vorticity[0]", "vorticity[-1]"), (0.0, 0.0), (0.2, 0.2), size)
    operator = NavierStokes2D(size, time=0.1, dt=1e-2)
    wrapped = OperatorConsistentPrior(network, operator, "vorticity[0]", "vorticity[-1]")
    assert not wrapped.linear and wrapped.gaussian_jvp(torch.zeros(1, 2, size, size), 1.0) is None
    x = torch.randn(3, 2, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        estimate = wrapped.to_physical(wrapped.denoise(x, 1.0))
        raw = network.to_physical(network.denoise(x, 1.0))
    # The final vorticity is the solve of the initial one, checked by an independent solve at a 10x
    # finer step (the scheme is first order, so the gap is the coarse step's own error).
    fine = NavierStokes2D(size, time=0.1, dt=1e-3).double()
    gap = (estimate[:, 1:] - fine.A(estimate[:, :1])).norm() / estimate[:, 1:].norm()
    raw_gap = (raw[:, 1:] - fine.A(raw[:, :1])).norm() / raw[:, 1:].norm()
    assert float(gap) < 1e-3 and float(raw_gap) > 1e-1
    # A projection: an estimate already on the solution manifold is left as it is.
    normalised = wrapped.to_normalized(estimate)
    torch.testing.assert_close(wrapped.project(normalised), normalised, rtol=0, atol=1e-12)


def test_rejects_unknown_channels():
    exact = helmholtz_joint_prior(S)
    with pytest.raises(ValueError, match="channels"):
        OperatorConsistentPrior(exact, Helmholtz(S), input_channel="vorticity[0]")
