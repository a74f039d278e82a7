"""The fitted Gaussian base: exactness on Gaussian data, built-in physics, grid transfer, the EDM hook."""

from __future__ import annotations

import pytest
import torch

from pdeinv.datasets import ns_vorticity_grf
from pdeinv.datasets.dct import dct2, idct2
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.checkpoint import load, save_prior
from pdeinv.priors.edm import EDMConfig, EDMDenoiser
from pdeinv.priors.gaussian import GaussianPrior, helmholtz_joint_prior
from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser, choose_basis


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_fft_base_fitted_to_a_stationary_grf_matches_its_exact_denoiser(sigma):
    exact = GaussianPrior(ns_vorticity_grf(16), "vorticity")
    g = torch.Generator().manual_seed(0)
    base = SpectralGaussianDenoiser.fit(exact.sample(20000, g, dtype=torch.float64).float(), "fft")
    x = exact.sample(8, g) + sigma * torch.randn(8, 1, 16, 16, generator=g)
    # 20000 samples estimate each mode's variance to about 1 %, so the filters agree to ~1 %.
    assert _relative(base(x, sigma), exact.denoise(x, sigma)) < 0.02


def test_dst_base_of_helmholtz_pairs_is_consistent_and_close_to_the_exact_joint_prior():
    size, sigma = 16, 0.5
    exact = helmholtz_joint_prior(size)
    g = torch.Generator().manual_seed(1)
    data = exact.sample(20000, g, dtype=torch.float64).float()
    assert choose_basis(data, "vertex") == "dst"
    base = SpectralGaussianDenoiser.fit(data, "dst")
    x = exact.sample(8, g) + sigma * torch.randn(8, 2, size, size, generator=g)
    estimate = exact.to_physical(base(x, sigma))
    solve = Helmholtz(size, k=1.0).A(estimate[:, :1].double())
    # The solution map is diagonal in the DST basis: every estimate solves the PDE.
    assert _relative(solve, estimate[:, 1:].double()) < 1e-4
    # The boundary-zeroed cosine GRF is nearly, not exactly, diagonal there.
    reference = exact.denoise(x, sigma)
    assert _relative(base(x, sigma), reference) < 0.1


def test_densities_transfer_to_a_finer_grid():
    grf = ns_vorticity_grf
    g = torch.Generator().manual_seed(2)
    coarse = SpectralGaussianDenoiser.fit(GaussianPrior(grf(16), "w").sample(8000, g), "fft")
    fine_exact = GaussianPrior(grf(32), "w")
    fine = SpectralGaussianDenoiser.fit(fine_exact.sample(8000, g), "fft")
    transferred, measured = coarse.covariance(32), fine.covariance(32)
    kx = torch.fft.fftfreq(32, 1 / 32).abs()[:, None]
    ky = torch.arange(17)[None, :]
    inside = (kx < 8) & (ky < 8)
    outside = torch.hypot(kx, ky.float()).le(12) & ~((kx <= 8) & (ky <= 8))
    ratio = (transferred[..., 0, 0].real / measured[..., 0, 0].real).log().abs()
    # Known modes keep their density (up to the grf's 16- vs 32-point normalisation and sampling noise);
    # the power-law extrapolation lands within a factor 2 up to 1.5 times the known band.
    assert ratio[inside].median() < 0.1
    assert ratio[outside].max() < 0.7


def test_dst_refuses_fields_that_do_not_vanish_on_the_boundary():
    fields = torch.randn(10, 1, 8, 8)
    assert choose_basis(fields, "vertex") == "fft"
    with pytest.raises(ValueError, match="vanish on the boundary"):
        SpectralGaussianDenoiser.fit(fields, "dst")


def test_edm_denoiser_starts_at_its_base_and_round_trips_through_a_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(3)
    base = SpectralGaussianDenoiser.fit(GaussianPrior(ns_vorticity_grf(16), "w").sample(500, g), "fft")
    backbone = build_backbone("fno", channels=1, width=8, n_layers=1, n_modes=4, grid="cell")
    card = {
        "format": "pdeinv-prior",
        "format_version": 1,
        "backbone": {"name": "fno", "config": {"channels": 1, "width": 8, "n_layers": 1, "n_modes": 4, "grid": "cell"}},
        "preconditioning": {"type": "edm", "sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2,
                            "gaussian_base": {"basis": "fft", "resolution": 16}},
        "normalization": {"channels": ["w"], "mean": [0.0], "std": [1.0]},
        "resolution": 16,
    }
    prior = EDMDenoiser(backbone, EDMConfig(), channels=["w"], resolution=16, card=card, base=base)
    x = torch.randn(2, 1, 32, 32, generator=g)
    assert prior.resolution_free
    torch.testing.assert_close(prior.denoise(x, 0.7), base(x, 0.7))
    loaded = load(save_prior(prior, tmp_path / "p", card))
    torch.testing.assert_close(loaded.denoise(x, 0.7), prior.denoise(x, 0.7))


def _helmholtz_priors(size: int, basis: str, g: torch.Generator):
    """A small EDM prior around a ``basis`` base fitted to exact Helmholtz pairs, raw and operator-consistent."""
    from pdeinv.priors.consistent import OperatorConsistentPrior

    exact = helmholtz_joint_prior(size)
    base = SpectralGaussianDenoiser.fit(exact.sample(2000, g, dtype=torch.float64).float(), basis)
    backbone = build_backbone("fno", channels=2, width=8, n_layers=1, n_modes=4)
    prior = EDMDenoiser(backbone, EDMConfig(), channels=exact.channels, std=exact.std, resolution=size, base=base)
    return prior, OperatorConsistentPrior(prior, Helmholtz(size, k=1.0))


def test_gaussian_jvp_is_the_jacobian_of_the_denoiser_also_in_operator_consistent_form():
    size, sigma = 16, 0.4
    g = torch.Generator().manual_seed(4)
    prior, consistent = _helmholtz_priors(size, "dst", g)
    x, v = torch.randn(2, 2, 2, size, size, generator=g).unbind(0)
    for model in (prior, consistent):
        _, expected = torch.func.jvp(lambda z: model.denoise(z, sigma), (x,), (v,))
        torch.testing.assert_close(model.gaussian_jvp(v, sigma), expected, rtol=1e-4, atol=1e-6)


def test_gaussian_above_level_uses_the_gaussian_part_at_and_above_its_level_only():
    from pdeinv.priors.edm import GaussianAboveLevel, GaussianPart, gaussian_above, gaussian_part

    size = 16
    g = torch.Generator().manual_seed(8)
    prior, consistent = _helmholtz_priors(size, "dct", g)
    assert isinstance(gaussian_above(prior, 0.5), GaussianAboveLevel)
    wrapped = gaussian_above(consistent, 0.5)
    assert type(wrapped) is type(consistent) and isinstance(wrapped.prior, GaussianAboveLevel)
    assert isinstance(gaussian_part(prior), GaussianPart)
    part = gaussian_part(consistent)
    assert type(part) is type(consistent) and isinstance(part.prior, GaussianPart)
    with torch.no_grad():
        for parameter in prior.backbone.parameters():
            parameter.normal_(0.0, 0.1, generator=g)
    part, switched = GaussianPart(prior), GaussianAboveLevel(prior, level=0.5)
    x = torch.randn(2, 2, size, size, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(switched.denoise(x, 0.5), part.denoise(x, 0.5))
        torch.testing.assert_close(switched.denoise(x, 0.3), prior.denoise(x, 0.3))
        assert (switched.network_calls, switched.gaussian_calls) == (1, 1)
        mixed = switched.denoise(x, torch.tensor([2.0, 0.3]))
        torch.testing.assert_close(mixed[:1], part.denoise(x[:1], 2.0))
        torch.testing.assert_close(mixed[1:], prior.denoise(x[1:], 0.3))
        assert float((part.denoise(x, 0.3) - prior.denoise(x, 0.3)).abs().max()) > 1e-3
    assert (switched.network_calls, switched.gaussian_calls) == (2, 2) and switched.network_share == 0.5
    v = torch.randn(2, 2, size, size, generator=g)
    torch.testing.assert_close(switched.gaussian_jvp(v, 0.3), prior.gaussian_jvp(v, 0.3))
    with pytest.raises(ValueError, match="noise level > 0"):
        GaussianAboveLevel(prior, level=0.0)


def test_gaussian_part_switches_the_network_off_and_keeps_the_consistent_form():
    from pdeinv.priors.edm import GaussianPart
    from pdeinv.priors.quality import relative_residuals

    size, sigma = 16, 0.4
    g = torch.Generator().manual_seed(6)
    prior, consistent = _helmholtz_priors(size, "dct", g)
    with torch.no_grad():
        for parameter in prior.backbone.parameters():
            parameter.normal_(0.0, 0.1, generator=g)
    part = GaussianPart(prior)
    x, v = torch.randn(2, 2, 2, size, size, generator=g).unbind(0)
    torch.testing.assert_close(part.denoise(x, sigma), prior.base(x, torch.tensor([sigma])))
    with torch.no_grad():
        assert float((part.denoise(x, sigma) - prior.denoise(x, sigma)).abs().max()) > 1e-3
    _, expected = torch.func.jvp(lambda z: part.denoise(z, sigma), (x,), (v,))
    torch.testing.assert_close(part.gaussian_jvp(v, sigma), expected, rtol=1e-4, atol=1e-6)
    wrapped = consistent.with_prior(part)
    assert part.is_gaussian and wrapped.is_gaussian and not prior.is_gaussian and not consistent.is_gaussian
    assert float(relative_residuals(Helmholtz(size, k=1.0), wrapped.to_physical(wrapped.denoise(x, sigma))).max()) < 1e-5
    prior.base = None
    with pytest.raises(ValueError, match="without a Gaussian base"):
        GaussianPart(prior)


def test_dst_densities_transfer_to_a_finer_grid():
    g = torch.Generator().manual_seed(5)
    coarse = SpectralGaussianDenoiser.fit(helmholtz_joint_prior(16).sample(4000, g), "dst")
    fine = SpectralGaussianDenoiser.fit(helmholtz_joint_prior(32).sample(4000, g), "dst")
    transferred, measured = coarse.covariance(32), fine.covariance(32)
    # Sine modes 1..6 (well inside the 16-grid band, where both grids resolve the source's spectrum).
    ratio = (transferred[:6, :6, 0, 0] / measured[:6, :6, 0, 0]).log().abs()
    assert ratio.median() < 0.15


def _forced(size: int) -> torch.Tensor:
    """A band-limited deterministic field on the periodic cell grid ``x_i = i / S``, ``(1, 1, S, S)``."""
    x = torch.arange(size) / size
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    return (0.8 * torch.sin(2 * torch.pi * (xx + yy)) + 0.5 * torch.cos(4 * torch.pi * xx))[None, None]


def test_fft_base_learns_a_mean_field_that_transfers_exactly_to_a_finer_grid():
    g = torch.Generator().manual_seed(4)
    noise = GaussianPrior(ns_vorticity_grf(16), "w").sample(4000, g)
    base = SpectralGaussianDenoiser.fit(_forced(16) + 0.1 * noise / noise.std(), "fft")
    # 4000 samples of unit-0.1 noise estimate the mean to ~0.1 / sqrt(4000) per pixel.
    assert _relative(base.mean_field(16), _forced(16)) < 0.01
    # A trigonometric polynomial inside the known band is resampled exactly by zero padding.
    assert _relative(base.mean_field(32), _forced(32)) < 0.01
    # Under overwhelming noise the Wiener estimate falls back to the mean, not to a constant.
    x = 1e4 * torch.randn(2, 1, 32, 32, generator=g)
    assert _relative(base(x, 1e4), _forced(32).expand(2, -1, -1, -1)) < 0.02


def test_dct_base_of_a_cut_cosine_field_matches_its_exact_wiener_filter():
    size, sigma = 16, 0.5
    g = torch.Generator().manual_seed(5)
    k = torch.arange(size - 2, dtype=torch.float64)
    variance = (1 + k[:, None] ** 2 + k[None, :] ** 2) ** -2.0

    def interior_to_field(coefficients: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(idct2(coefficients), (1, 1, 1, 1))

    white = torch.randn(20000, 1, size - 2, size - 2, generator=g, dtype=torch.float64)
    fields = interior_to_field(variance.sqrt() * white)
    base = SpectralGaussianDenoiser.fit(fields.float(), "dct")
    x = fields[:8] + sigma * torch.randn(8, 1, size, size, generator=g, dtype=torch.float64)
    exact = interior_to_field(variance / (variance + sigma**2) * dct2(x[..., 1:-1, 1:-1]))
    assert _relative(base(x.float(), sigma).double(), exact) < 0.02


def test_operator_consistent_gaussian_part_is_symmetric_positive_even_for_an_inconsistent_base():
    size, sigma = 16, 0.4
    g = torch.Generator().manual_seed(6)
    prior, consistent = _helmholtz_priors(size, "dct", g)
    u, v = torch.randn(2, 1, 2, size, size, generator=g, dtype=torch.float64).unbind(0)
    ju, jv = consistent.gaussian_jvp(u, sigma), consistent.gaussian_jvp(v, sigma)
    # sigma^2 J is a covariance: <u, J v> = <J u, v> and <v, J v> >= 0.
    assert abs(float((u * jv).sum() - (ju * v).sum())) < 1e-8 * float(ju.norm() * v.norm())
    assert float((v * jv).sum()) > 0
    # Its output channel is the solve of its input channel.
    solve = Helmholtz(size, k=1.0).A(prior.std[0] * jv[:, :1]) / prior.std[1]
    torch.testing.assert_close(jv[:, 1:], solve)


def test_posterior_sqrt_squares_to_the_posterior_covariance_and_is_c_out_for_white_data():
    g = torch.Generator().manual_seed(8)
    base = SpectralGaussianDenoiser.fit(GaussianPrior(ns_vorticity_grf(16), "w").sample(500, g), "fft")
    v = torch.randn(3, 1, 16, 16, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.7, 4.0], dtype=torch.float64)
    twice = base.posterior_sqrt(base.posterior_sqrt(v, sigma), sigma)
    torch.testing.assert_close(twice, sigma.reshape(-1, 1, 1, 1) ** 2 * base.linear(v, sigma))
    white = SpectralGaussianDenoiser.fit(torch.randn(4000, 1, 16, 16, generator=g), "fft")
    white.density.fill_(1.0 / 16**2)
    c_out = sigma / (1 + sigma**2).sqrt()
    torch.testing.assert_close(white.posterior_sqrt(v, sigma), c_out.reshape(-1, 1, 1, 1) * v)


def test_posterior_residual_keeps_the_network_out_of_modes_the_data_do_not_excite(tmp_path):
    # A base fitted to fields with no power beyond wavenumber 3: whatever the network outputs, the
    # denoiser's estimate stays free of those modes, and the setting survives a checkpoint.
    g = torch.Generator().manual_seed(9)
    smooth = GaussianPrior(ns_vorticity_grf(16), "w").sample(500, g)
    coefficients = torch.fft.rfft2(smooth, norm="ortho")
    k = torch.fft.fftfreq(16, 1 / 16).abs()[:, None].maximum(torch.arange(9.0)[None, :])
    smooth = torch.fft.irfft2(torch.where(k <= 3, coefficients, 0), s=(16, 16), norm="ortho")
    base = SpectralGaussianDenoiser.fit(smooth, "fft")
    backbone = build_backbone("fno", channels=1, width=8, n_layers=1, n_modes=4, grid="cell")
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.normal_(0.0, 0.3, generator=g)
    config = {"channels": 1, "width": 8, "n_layers": 1, "n_modes": 4, "grid": "cell"}
    card = {
        "format": "pdeinv-prior", "format_version": 1, "backbone": {"name": "fno", "config": config},
        "preconditioning": {"type": "edm", "sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2,
                            "gaussian_base": {"basis": "fft", "resolution": 16}, "residual": "posterior"},
        "normalization": {"channels": ["w"], "mean": [0.0], "std": [1.0]}, "resolution": 16,
    }  # fmt: skip
    prior = EDMDenoiser(backbone, EDMConfig(), channels=["w"], resolution=16, card=card, base=base,
                        residual="posterior")
    x = torch.randn(2, 1, 16, 16, generator=g)
    with torch.no_grad():
        estimate = torch.fft.rfft2(prior.denoise(x, 2.0), norm="ortho")
        loaded = load(save_prior(prior, tmp_path / "p", card))
        torch.testing.assert_close(loaded.denoise(x, 2.0), prior.denoise(x, 2.0))
        edm = EDMDenoiser(backbone, EDMConfig(), channels=["w"], resolution=16, base=base).denoise(x, 2.0)
    outside = (k > 3).expand_as(estimate)
    total = estimate.abs().pow(2).sum()
    assert float(estimate[outside].abs().pow(2).sum() / total) < 1e-6
    assert float(torch.fft.rfft2(edm, norm="ortho")[outside].abs().pow(2).sum() / total) > 1e-3
    with pytest.raises(ValueError, match="needs a base"):
        EDMDenoiser(backbone, EDMConfig(), channels=["w"], residual="posterior")
