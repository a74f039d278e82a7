"""Guidance terms and their schedules against hand computations and dense linear algebra."""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.datasets.dct import dct2, dct_matrix, idct2
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.operators.symmetry import IDENTITY, SymmetryGroup, Transform, dihedral_group
from pdeinv.priors.base import FieldPrior
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.equireg import EquiRegTerm
from pdeinv.sampling.terms import GuidanceState, ObservationTerm, PhysicsTerm

S = 12


class LinearGaussianDenoiser(FieldPrior):
    """D(x, s) = Phi diag(lam / (lam + s^2)) Phi^T x in the 2-D DCT basis (exact for N(0, C))."""

    def __init__(self, lam, channels=("source",), mean=0.0, std=1.0):
        n = len(channels)
        super().__init__(channels, mean=[mean] * n, std=[std] * n, resolution=lam.shape[-1])
        self.lam = lam

    def denoise(self, x, sigma):
        lam = self.lam.to(x)
        return idct2(lam / (lam + sigma**2) * dct2(x))


class DeclaredGaussianDenoiser(LinearGaussianDenoiser):
    """The same denoiser, declaring its Jacobian in closed form (the fast Tweedie path)."""

    def gaussian_jvp(self, v, sigma):
        return self.denoise(v, sigma)


def spectrum(anisotropy: float = 1.0) -> torch.Tensor:
    k = torch.arange(S, dtype=torch.float64)
    return (math.pi**2 * (anisotropy * k[:, None] ** 2 + k[None, :] ** 2) + 4.0) ** -2.0 * 1e3


def make_state(prior, x, sigma=0.7, step=0, generator=None) -> GuidanceState:
    x = x.clone().requires_grad_(True)
    return GuidanceState(
        x=x,
        denoised=prior.denoise(x, sigma),
        sigma=sigma,
        step=step,
        n_steps=10,
        prior=prior,
        decode=lambda z: z,
        denoise=prior.denoise,
        generator=generator,
    )


def clean_state(prior, fields) -> GuidanceState:
    """A state whose estimate is ``fields`` itself (as inside DAPS's Langevin loop)."""
    return GuidanceState(fields, fields, 0.1, 0, 10, prior, lambda z: z, prior.denoise, through_denoiser=False)


def random_field(seed: int, channels: int = 1) -> torch.Tensor:
    return torch.randn(3, channels, S, S, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_schedules_reproduce_fundps_and_diffusionpde_rules():
    fundps_obs = GuidanceSchedule(weight=10.0, sigma_scale="min1")
    fundps_pde = GuidanceSchedule(weight=2.0, sigma_scale="sigma", sigma_below=1.0)
    assert fundps_obs(5.0, 0, 10) == 10.0 and fundps_obs(0.3, 5, 10) == pytest.approx(3.0)
    assert fundps_pde(5.0, 0, 10) == 0.0 and fundps_pde(0.5, 6, 10) == pytest.approx(1.0)
    diffusionpde_obs = GuidanceSchedule(weight=60.0, switch_fraction=0.8, late_factor=0.1)
    diffusionpde_pde = GuidanceSchedule(weight=1.0, start_fraction=0.8)
    assert diffusionpde_obs(1.0, 80, 100) == 60.0 and diffusionpde_obs(1.0, 81, 100) == pytest.approx(6.0)
    assert diffusionpde_pde(1.0, 79, 100) == 0.0 and diffusionpde_pde(1.0, 80, 100) == 1.0
    rescaled = GuidanceSchedule(weight=10.0, sigma_scale="min1", sigma_reference=2.0)
    assert rescaled(3.0, 0, 10) == 10.0 and rescaled(1.0, 0, 10) == pytest.approx(5.0)
    sparse = GuidanceSchedule(weight=1.0, every=3, cutoff_steps=2)
    assert [sparse(1.0, i, 10) for i in range(10)] == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="sigma_scale"):
        GuidanceSchedule(sigma_scale="log")


@pytest.mark.parametrize("loss", ["norm", "sqnorm", "mse", "gaussian"])
def test_observation_losses_match_hand_computation(loss):
    prior = LinearGaussianDenoiser(spectrum(), mean=0.25, std=2.0)
    points = random_points(7, S, seed=0)
    sensor = PointObservation(S, indices=points)
    y = torch.randn(1, 1, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state = make_state(prior, random_field(2))
    term = ObservationTerm(sensor, y, "source", loss=loss, noise_std=0.5, scale=3.0)
    physical = 0.25 + 2.0 * state.denoised.detach()
    values = physical[:, 0, points[:, 0], points[:, 1]]
    r = 3.0 * (values - y[:, 0])
    expected = {
        "norm": r.pow(2).sum(1).sqrt(),
        "sqnorm": r.pow(2).sum(1),
        "mse": r.pow(2).mean(1),
        "gaussian": r.pow(2).sum(1) / (2 * 0.5**2),
    }[loss]
    assert torch.allclose(term.loss(state), expected, rtol=1e-12)


@pytest.mark.parametrize("prior_class", [LinearGaussianDenoiser, DeclaredGaussianDenoiser])
def test_tweedie_gradient_is_the_exact_gaussian_likelihood_score(prior_class):
    """-grad L = grad log N(y; H D(x_t), s_y^2 I + sigma^2 H J H^T), with dense matrices.

    J comes from differentiating the denoiser, or from the prior's declared ``gaussian_jvp``.
    """
    lam, sigma, noise = spectrum(), 0.7, 0.2
    prior = prior_class(lam, mean=0.25, std=2.0)
    points = random_points(6, S, seed=4)
    sensor = PointObservation(S, indices=points)
    y = torch.randn(1, 1, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    state = make_state(prior, random_field(6), sigma=sigma)
    term = ObservationTerm(sensor, y, "source", loss="tweedie", noise_std=noise)
    gradient = torch.autograd.grad(term.loss(state).sum(), state.x)[0]

    d = dct_matrix(S, dtype=torch.float64)
    basis = torch.kron(d, d)
    jacobian = basis.T @ torch.diag((lam / (lam + sigma**2)).flatten()) @ basis
    h = torch.zeros(6, S * S, dtype=torch.float64)
    h[torch.arange(6), points[:, 0] * S + points[:, 1]] = 2.0
    covariance = noise**2 * torch.eye(6, dtype=torch.float64) + sigma**2 * h @ jacobian @ h.T
    x = state.x.detach().reshape(3, -1)
    residual = 0.25 + (h @ jacobian @ x.T).T - y.reshape(1, -1)
    expected = (jacobian.T @ h.T @ torch.linalg.solve(covariance, residual.T)).T
    assert torch.allclose(gradient.reshape(3, -1), expected, rtol=1e-9, atol=1e-12)
    expected_value = 0.5 * (residual * torch.linalg.solve(covariance, residual.T).T).sum(1)
    assert torch.allclose(term.loss(make_state(prior, random_field(6), sigma=sigma)), expected_value, rtol=1e-9)


def test_physics_term_vanishes_on_exact_solutions():
    helmholtz = Helmholtz(S, k=1.0)
    prior = LinearGaussianDenoiser(spectrum(), channels=("source", "solution"))
    source = random_field(8)
    solution = helmholtz.A(source)
    state = clean_state(prior, torch.cat([source, solution], dim=1))
    for form in ("residual", "forward"):
        term = PhysicsTerm(helmholtz, "source", "solution", form=form, reduction="sqnorm")
        assert float(term.loss(state).max()) < 1e-16 * float(source.pow(2).sum())
    state = clean_state(prior, torch.cat([source, solution + 0.01], dim=1))
    residual = helmholtz.residual(source, solution + 0.01)
    term = PhysicsTerm(helmholtz, "source", "solution", form="residual", reduction="norm", scale=0.5)
    assert torch.allclose(term.loss(state), 0.5 * residual.flatten(1).norm(dim=1), rtol=1e-12)


def denoiser_features(sigma_f: float = 0.05):
    """EquiReg's feature map f = D(., sigma_f) through the state's (counted) denoiser."""
    return lambda fields, state: state.denoise(fields, sigma_f)


def test_equireg_is_zero_for_an_equivariant_feature_map():
    prior = LinearGaussianDenoiser(spectrum(), mean=0.0, std=2.0)
    term = EquiRegTerm(dihedral_group(), denoiser_features(), draw="all", reduction="sqnorm")
    loss = term.loss(make_state(prior, random_field(9))).detach()
    assert float(loss.max()) < 1e-20


def test_equireg_is_the_equivariance_error_of_the_feature_map_at_the_clean_estimate():
    """||g f(x0) - f(g x0)|| with x0 = D(x_t, sigma) and f = D(., sigma_f), for an anisotropic (non-equivariant) D."""
    prior = LinearGaussianDenoiser(spectrum(anisotropy=4.0))
    transpose = Transform("transpose", (("transpose",),))
    group = SymmetryGroup("transpose", [IDENTITY, transpose])
    term = EquiRegTerm(group, denoiser_features(0.05), reduction="norm")
    state = make_state(prior, random_field(10))
    clean = state.denoised.detach()
    expected = prior.denoise(clean, 0.05).transpose(-2, -1) - prior.denoise(clean.transpose(-2, -1), 0.05)
    loss = term.loss(state)
    assert float(loss.detach().min()) > 1e-3
    assert torch.allclose(loss.detach(), expected.flatten(1).norm(dim=1), rtol=1e-10)
    gradient = torch.autograd.grad(loss.sum(), state.x)[0]  # through the clean estimate to x_t
    assert float(gradient.abs().max()) > 0


def test_equireg_acts_in_physical_units():
    """A sign flip is a symmetry of N(0, C) but not of N(0.5, C): the group acts on physical fields."""
    negate = SymmetryGroup("sign", [IDENTITY, Transform("negate", (("negate",),))])
    term = EquiRegTerm(negate, denoiser_features(1.0), draw="all", reduction="sqnorm")
    centred = LinearGaussianDenoiser(spectrum(), mean=0.0, std=2.0)
    shifted = LinearGaussianDenoiser(spectrum(), mean=0.5, std=2.0)
    assert float(term.loss(make_state(centred, random_field(11))).detach().max()) < 1e-20
    assert float(term.loss(make_state(shifted, random_field(11))).detach().min()) > 1e-3


def test_terms_reject_bad_configuration():
    sensor = PointObservation(S, indices=random_points(3, S, seed=0))
    y = torch.zeros(1, 1, 3)
    with pytest.raises(ValueError, match="loss must be one of"):
        ObservationTerm(sensor, y, "source", loss="l7")
    with pytest.raises(ValueError, match="noise_std > 0"):
        ObservationTerm(sensor, y, "source", loss="gaussian")
    with pytest.raises(ValueError, match="no non-identity element"):
        EquiRegTerm(SymmetryGroup("trivial", [IDENTITY]), denoiser_features())
    with pytest.raises(ValueError, match="no residual"):
        PhysicsTerm(sensor, "source", "solution")
    prior = LinearGaussianDenoiser(spectrum())
    state = make_state(prior, random_field(1))
    state.field_space = False
    with pytest.raises(ValueError, match="latent"):
        EquiRegTerm(dihedral_group(), denoiser_features()).loss(state)
