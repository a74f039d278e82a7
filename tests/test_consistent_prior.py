"""OperatorConsistentPrior: exact for the exact joint prior, physics-consistent for any network."""

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
    network = EDMDenoiser(
        build_backbone("fno", channels=2, width=8, n_layers=1, n_modes=4),
        EDMConfig(),
        channels=("source", "solution"),
        mean=(0.1, -0.002),
        std=(0.3, 0.005),
        resolution=S,
    ).double()
    operator = Helmholtz(S)
    wrapped = OperatorConsistentPrior(network, operator)
    with torch.no_grad():
        estimate = wrapped.to_physical(wrapped.denoise(_noisy(network, 1.0), 1.0))
        raw = network.to_physical(network.denoise(_noisy(network, 1.0), 1.0))
    residual = operator.residual(estimate[:, :1], estimate[:, 1:])
    assert float(residual.abs().max() / estimate[:, :1].abs().max()) < 1e-10
    assert float(operator.residual(raw[:, :1], raw[:, 1:]).abs().max() / raw[:, :1].abs().max()) > 1e-2


def test_rejects_nonlinear_operators_and_unknown_channels():
    exact = helmholtz_joint_prior(S)
    with pytest.raises(ValueError, match="linear"):
        OperatorConsistentPrior(exact, NavierStokes2D(8))
    with pytest.raises(ValueError, match="channels"):
        OperatorConsistentPrior(exact, Helmholtz(S), input_channel="vorticity[0]")
