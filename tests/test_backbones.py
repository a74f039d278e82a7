"""Backbones: shapes, noise conditioning, trainability, zero-shot resolution transfer of fno, config errors."""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.priors.backbones import FNOConfig, backbone_config, build_backbone
from pdeinv.priors.edm import EDMConfig, EDMDenoiser, edm_loss

SMALL = {
    "fno": {"width": 16, "n_modes": 8, "n_layers": 2, "embedding_dim": 16},
    "unet": {"block_out_channels": (16, 32), "norm_num_groups": 8},
}


def smooth_fields(size: int, cell: bool = True) -> torch.Tensor:
    """Two band-limited channels sampled on the cell grid x_i = i / S (or the vertex grid)."""
    t = torch.arange(size) / (size if cell else size - 1)
    x, y = torch.meshgrid(t, t, indexing="ij")
    f = torch.sin(2 * math.pi * x) * torch.cos(4 * math.pi * y) + 0.5 * torch.cos(2 * math.pi * (x + 2 * y))
    return torch.stack((f, -f.T))[None]


def randomise_outputs(backbone: torch.nn.Module) -> None:
    """Replace the zero initialisation of the fno head and FiLM layers by random weights."""
    with torch.no_grad():
        for p in backbone.head[-1].parameters():
            p.normal_(0, 0.3)
        for block in backbone.blocks:
            block.film.weight.normal_(0, 0.3)


@pytest.mark.parametrize("name", ["fno", "unet"])
def test_shapes_and_noise_conditioning(name):
    torch.manual_seed(0)
    backbone = build_backbone(name, **SMALL[name])
    if name == "fno":
        randomise_outputs(backbone)
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        low, high = backbone(x, torch.full((2,), -1.0)), backbone(x, torch.full((2,), 1.0))
    assert low.shape == x.shape and torch.isfinite(low).all()
    assert float((low - high).abs().max()) > 1e-3, "the output must depend on the noise level"


@pytest.mark.parametrize("name", ["fno", "unet"])
def test_edm_training_steps_fit_a_fixed_batch(name):
    torch.manual_seed(0)
    model = EDMDenoiser(build_backbone(name, **SMALL[name]), EDMConfig(), channels=("a", "u"))
    x0 = smooth_fields(16).repeat(2, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    sigma, noise = torch.full((2,), 0.5), torch.randn(x0.shape, generator=g)
    lr, steps = {"fno": (1e-2, 12), "unet": (3e-3, 8)}[name]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = edm_loss(model, x0, sigma, noise, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_fno_evaluates_zero_shot_at_128_consistently_with_64():
    """The same function sampled at 64 and 128 gives the same output on shared grid points, up to O(1/S)."""
    torch.manual_seed(0)
    backbone = build_backbone("fno", grid="cell", **SMALL["fno"])
    randomise_outputs(backbone)
    c_noise = torch.tensor([-0.3])
    with torch.no_grad():
        out = {s: backbone(smooth_fields(s), c_noise) for s in (32, 64, 128)}
    assert out[128].shape == (1, 2, 128, 128) and torch.isfinite(out[128]).all()
    gap_64 = float((out[128][..., ::2, ::2] - out[64]).norm() / out[64].norm())
    gap_32 = float((out[64][..., ::2, ::2] - out[32]).norm() / out[32].norm())
    assert gap_64 < 0.03
    assert gap_64 < 0.75 * gap_32, "the discrepancy must shrink as the grid is refined"


def test_denoiser_trained_at_64_runs_at_128():
    model = EDMDenoiser(build_backbone("fno", **SMALL["fno"]), channels=("a", "u"), resolution=64)
    x = torch.randn(2, 2, 128, 128)
    with torch.no_grad():
        out = model.denoise(x, torch.tensor([0.1, 5.0]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_configuration_errors_name_the_fix():
    with pytest.raises(ValueError, match="expected one of"):
        build_backbone("resnet")
    with pytest.raises(ValueError, match="valid options"):
        backbone_config("fno", depth=3)
    with pytest.raises(ValueError, match="n_modes must be in 1..32"):
        FNOConfig(n_modes=40)
    with pytest.raises(ValueError, match="grid must be"):
        FNOConfig(grid="staggered")
    with pytest.raises(ValueError, match="must divide every block width"):
        backbone_config("unet", block_out_channels=(12, 32), norm_num_groups=8)
    unet = build_backbone("unet", **SMALL["unet"])
    with pytest.raises(ValueError, match="divisible by 2"):
        unet(torch.zeros(1, 2, 15, 15), torch.zeros(1))


def spectral_reference(conv, x: torch.Tensor) -> torch.Tensor:
    """Direct definition: mix the rfft2 coefficients of the kept frequencies, inverse rfft2, add the bias."""
    weight = conv.weight.to_tensor()
    m1, m2 = weight.shape[-2:]
    size = x.shape[-1]
    coeffs = torch.fft.rfft2(x, norm="forward")
    out = torch.zeros(x.shape[0], weight.shape[1], size, size // 2 + 1, dtype=coeffs.dtype)
    for j in range(m1):
        row = (j - m1 // 2) % size
        out[:, :, row, :m2] = torch.einsum("biy,ioy->boy", coeffs[:, :, row, :m2], weight[:, :, j])
    return torch.fft.irfft2(out, s=(size, size), norm="forward") + conv.bias


@pytest.mark.parametrize("size", [16, 17, 64])
def test_truncated_spectral_conv_matches_its_definition(size):
    from pdeinv.priors.backbones import _spectral_conv_class

    torch.manual_seed(0)
    conv = _spectral_conv_class()(6, 5, (12, 12))
    x = torch.randn(3, 6, size, size)
    with torch.no_grad():
        assert torch.allclose(conv(x), spectral_reference(conv, x), rtol=1e-5, atol=1e-6)


def test_truncated_spectral_conv_equals_neuraloperator_on_even_grids():
    """Same parameters, same map and gradients as the parent class (neuraloperator shifts odd grids differently)."""
    from neuralop.layers.spectral_convolution import SpectralConv

    from pdeinv.priors.backbones import _spectral_conv_class

    torch.manual_seed(0)
    fast = _spectral_conv_class()(6, 5, (12, 12))
    reference = SpectralConv(6, 5, (12, 12))
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(3, 6, 32, 32, requires_grad=True)
    out_fast, out_ref = fast(x), reference(x)
    assert torch.allclose(out_fast, out_ref, rtol=1e-5, atol=1e-6)
    grad_fast = torch.autograd.grad(out_fast.square().sum(), [x, *fast.parameters()])
    grad_ref = torch.autograd.grad(out_ref.square().sum(), [x, *reference.parameters()])
    for a, b in zip(grad_fast, grad_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
