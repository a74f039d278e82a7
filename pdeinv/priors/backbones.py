r"""Denoiser backbones ``F(x_in, c_noise)`` for :class:`pdeinv.priors.edm.EDMDenoiser`.

Two backbones, picked by name from :data:`BACKBONES`:

``fno``
    A function-space denoiser: coordinate channels + a 1x1 lift, residual blocks of
    neuraloperator ``SpectralConv`` (Fourier modes up to ``n_modes``) plus a pointwise path, each
    modulated by FiLM from a sinusoidal embedding of :math:`c_\text{noise}`, then a 1x1 projection.
    Every part is defined on functions, not pixels, so a model trained at 64 x 64 evaluates at
    128 x 128 unchanged: the spectral weights act on Fourier-series coefficients
    (``fft_norm="forward"``), the coordinates are the physical ``x, y`` of each grid point,
    group-norm statistics are spatial averages, and the noise level enters only as a per-channel
    scale and shift computed from the scalar :math:`c_\text{noise}` (no per-pixel parameters).
``unet``
    diffusers ``UNet2DModel`` with :math:`c_\text{noise}` as its (continuous) timestep input.
    Fixed-resolution: ``S`` must be divisible by ``2 ** (len(block_out_channels) - 1)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class FNOConfig:
    """Hyper-parameters of the ``fno`` backbone.

    Parameters
    ----------
    channels : int
        Field channels in and out (2 for joint (input, solution) fields).
    width : int
        Hidden channels.
    n_layers : int
        Number of spectral residual blocks.
    n_modes : int
        Fourier modes kept per dimension (at most 32, the full spectrum of a 64 x 64 grid).
    embedding_dim : int
        Size of the noise-level embedding.
    grid : str
        ``"vertex"`` (``x_i = i / (S - 1)``, Helmholtz/Poisson) or ``"cell"`` (``x_i = i / S``,
        periodic Navier-Stokes): where the coordinate channels place grid point ``i``.
    """

    channels: int = 2
    width: int = 32
    n_layers: int = 4
    n_modes: int = 24
    embedding_dim: int = 64
    grid: str = "vertex"

    def __post_init__(self):
        if not 1 <= self.n_modes <= 32:
            raise ValueError(f"n_modes must be in 1..32 (a 64 x 64 grid has 32 modes per axis), got {self.n_modes}")
        if self.grid not in ("vertex", "cell"):
            raise ValueError(f"grid must be 'vertex' or 'cell', got {self.grid!r}")


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of the ``unet`` backbone (diffusers ``UNet2DModel``).

    Parameters
    ----------
    channels : int
        Field channels in and out.
    block_out_channels : tuple of int
        Widths of the resolution levels.
    layers_per_block : int
        ResNet blocks per level.
    attention : bool
        Self-attention at the coarsest level.
    norm_num_groups : int
        Group-norm groups (must divide every width).
    """

    channels: int = 2
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = True
    norm_num_groups: int = 8

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"norm_num_groups={self.norm_num_groups} must divide every block width, not {bad}")


def grid_coordinates(size: int, grid: str, like: torch.Tensor) -> torch.Tensor:
    """Coordinate channels ``(1, 2, S, S)``: ``[x_i, y_j]`` on the vertex or cell grid of the unit square."""
    denom = size - 1 if grid == "vertex" else size
    t = torch.arange(size, device=like.device, dtype=like.dtype) / denom
    gx, gy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack((gx, gy))[None]


class NoiseEmbedding(nn.Module):
    r"""Sinusoidal embedding of :math:`c_\text{noise}` followed by a two-layer MLP, ``(B,) -> (B, D)``."""

    def __init__(self, dim: int):
        super().__init__()
        from neuralop.layers.embeddings import SinusoidalEmbedding

        self.sinusoid = SinusoidalEmbedding(1, num_frequencies=dim // 2, max_positions=1000)
        self.mlp = nn.Sequential(nn.Linear(2 * (dim // 2), dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(c_noise.reshape(-1, 1, 1)).flatten(1))


@functools.cache
def _spectral_conv_class() -> type:
    """The truncated-transform subclass of neuraloperator's ``SpectralConv`` (imported on first use)."""
    from neuralop.layers.spectral_convolution import SpectralConv

    class TruncatedSpectralConv(SpectralConv):
        r"""neuraloperator ``SpectralConv`` (same parameters, same map) with a cheaper forward pass.

        The 2-D ``rfftn`` / ``irfftn`` of the parent become 1-D transforms applied only where the
        kept modes live: ``rfft`` along ``y`` keeping ``m_2`` columns, ``fft`` along ``x`` of those
        columns, a per-mode channel mixing by batched matrix products, and the inverse transforms
        of the zero-padded ``(S, m_2)`` block. Kept frequencies along ``x`` are
        :math:`-\lfloor m_1/2\rfloor, \dots, m_1 - \lfloor m_1/2\rfloor - 1` (the parent's fft-shifted
        window), along ``y`` :math:`0, \dots, m_2 - 1`; normalisation ``"forward"``. Falls back to the
        parent for grids too small to hold every kept mode.
        """

        def forward(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
            weight = self.weight.to_tensor()
            m1, m2 = weight.shape[-2:]
            size1, size2 = x.shape[-2:]
            if output_shape is not None or m1 > size1 or m2 > size2 // 2 + 1:
                return super().forward(x, output_shape)
            coeffs = torch.fft.fft(torch.fft.rfft(x, dim=-1, norm="forward")[..., :m2], dim=-2, norm="forward")
            half = m1 // 2
            kept = torch.cat((coeffs[..., size1 - half :, :], coeffs[..., : m1 - half, :]), dim=-2)
            batch, c_in = kept.shape[:2]
            mixed = torch.bmm(
                kept.permute(2, 3, 0, 1).reshape(m1 * m2, batch, c_in),
                weight.permute(2, 3, 0, 1).reshape(m1 * m2, c_in, -1),
            )
            modes = mixed.reshape(m1, m2, batch, -1).permute(2, 3, 0, 1)
            gap = modes.new_zeros(batch, modes.shape[1], size1 - m1, m2)
            full = torch.cat((modes[..., half:, :], gap, modes[..., :half, :]), dim=-2)
            out = torch.fft.irfft(torch.fft.ifft(full, dim=-2, norm="forward"), n=size2, dim=-1, norm="forward")
            return out + self.bias if self.bias is not None else out

    return TruncatedSpectralConv


class FiLMSpectralBlock(nn.Module):
    r"""Residual block :math:`h + W_2\,\mathrm{gelu}(K m + W_1 m)`, :math:`m = (1 + a)\,\mathrm{GN}(h) + b`.

    ``K`` is a neuraloperator ``SpectralConv`` (modes up to ``n_modes``), ``W_1, W_2`` are 1x1
    convolutions and ``(a, b)`` are per-channel FiLM parameters from the noise embedding.
    """

    def __init__(self, width: int, n_modes: int, embedding_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(8, width), width, affine=False)
        self.film = nn.Linear(embedding_dim, 2 * width)
        self.spectral = _spectral_conv_class()(width, width, (n_modes, n_modes))
        self.pointwise = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, width, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        m = self.norm(h) * (1 + scale) + shift
        with torch.autocast(device_type=m.device.type, enabled=False):
            spectral = self.spectral(m.float())
        return h + self.out(F.gelu(spectral.to(m.dtype) + self.pointwise(m)))


class FNOBackbone(nn.Module):
    """The ``fno`` function-space denoiser backbone (see the module docstring).

    Parameters
    ----------
    config : FNOConfig
        Hyper-parameters.
    """

    resolution_free = True

    def __init__(self, config: FNOConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        self.embedding = NoiseEmbedding(config.embedding_dim)
        self.lift = nn.Conv2d(c + 2, w, 1)
        self.blocks = nn.ModuleList(
            FiLMSpectralBlock(w, config.n_modes, config.embedding_dim) for _ in range(config.n_layers)
        )
        self.head_norm = nn.GroupNorm(math.gcd(8, w), w)
        self.head = nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.GELU(), nn.Conv2d(2 * w, c, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S), (B,) -> (B, C, S, S)``."""
        coords = grid_coordinates(x.shape[-1], self.config.grid, x).expand(x.shape[0], -1, -1, -1)
        h = self.lift(torch.cat((x, coords), dim=1))
        emb = self.embedding(c_noise.to(x.dtype))
        for block in self.blocks:
            h = block(h, emb)
        return self.head(F.gelu(self.head_norm(h)))


class UNetBackbone(nn.Module):
    """The ``unet`` backbone: diffusers ``UNet2DModel`` with ``c_noise`` as its timestep.

    Parameters
    ----------
    config : UNetConfig
        Hyper-parameters.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        from diffusers import UNet2DModel

        self.config = config
        levels = len(config.block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if config.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.net = UNet2DModel(
            in_channels=config.channels,
            out_channels=config.channels,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=config.norm_num_groups,
        )
        self.factor = 2 ** (levels - 1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S), (B,) -> (B, C, S, S)``; ``S`` must be divisible by ``2 ** (levels - 1)``."""
        if x.shape[-1] % self.factor:
            raise ValueError(
                f"the unet backbone needs a resolution divisible by {self.factor}, got {x.shape[-1]}; "
                "resample the field or use the resolution-free 'fno' backbone"
            )
        return self.net(x, c_noise, return_dict=False)[0]


BACKBONES: dict[str, tuple[type, type]] = {
    "fno": (FNOConfig, FNOBackbone),
    "unet": (UNetConfig, UNetBackbone),
}


def backbone_config(name: str, **options) -> FNOConfig | UNetConfig:
    """Build the configuration dataclass of backbone ``name`` from keyword ``options``.

    Raises
    ------
    ValueError
        For an unknown backbone name or option, listing the valid ones.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    config_cls = BACKBONES[name][0]
    valid = {f.name for f in fields(config_cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backbone {name!r}; valid options: {sorted(valid)}")
    return config_cls(**options)


def build_backbone(name: str, **options) -> nn.Module:
    """Instantiate backbone ``name`` (``"fno"`` or ``"unet"``) with configuration ``options``."""
    config = backbone_config(name, **options)
    return BACKBONES[name][1](config)


def config_dict(config: FNOConfig | UNetConfig) -> dict:
    """JSON-serialisable view of a backbone configuration."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
