r"""The field autoencoder of latent space: a small ``diffusers`` ``AutoencoderKL`` on normalised fields.

A normalised field :math:`f` of shape ``(B, C, S, S)`` maps to a latent of shape
``(B, L, S/r, S/r)``, :math:`r = 2^{\text{levels} - 1}` (the default ``r = 2``: 64 x 64 x 2 fields to
32 x 32 x 4 latents, the size whose reconstruction error stays below 2 % on both fields of a pair;
``results/latent/latent_floor.md`` gives the linear floor of smaller latents). The latent used by
the sampler is the encoder's posterior mean, standardised per latent channel so that its entries
have unit variance on the training data:

.. math::

    E(f) = (\mu_\phi(f) - m) / s, \qquad D(z) = g_\psi(m + s z),

with :math:`\mu_\phi` the ``AutoencoderKL`` encoder mean, :math:`g_\psi` its decoder and
:math:`m, s` the per-channel latent statistics (buffers measured after training).

With ``linear_code`` each network gets a linear path beside it, acting on the :math:`r \times r`
blocks of the grid (``pixel_unshuffle``, :math:`U`):

.. math::

    \mu(f) = \mu_\phi(f) + P\,U f, \qquad g(z) = g_\psi(z) + U^{-1} Q z,

with :math:`P` (``L x C r^2``) and :math:`Q` (``C r^2 x L``) learned 1 x 1 convolutions, initialised
to the top ``L`` principal directions of the training fields' blocks (:meth:`FieldAutoencoder.init_linear_code`),
and the decoder network's last convolution initialised to zero. Training then starts from the
best local linear code (on Helmholtz pairs at ``r = 2``, ``L = 4``: 3.2 % / 5.1 % relative
error on source / solution) and the networks learn what it misses. Training
minimises :math:`\lVert g_\psi(\mu + e^{\log\sigma/2}\,\cdot\,n\ldots) - f\rVert^2` with the usual
reparametrised posterior sample :math:`\tilde z = \mu + \sigma_\phi n` plus
:math:`\beta\,\mathrm{KL}(N(\mu, \sigma_\phi^2) \,\|\, N(0, I))` (mean over entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.metrics import relative_l2
from pdeinv.operators.base import check_field


INITIAL_LOGVAR = -10.0  # posterior log-variance at the start of training with a linear code


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyper-parameters of :class:`FieldAutoencoder`.

    Parameters
    ----------
    channels : int
        Field channels (2 for joint (input, solution) fields).
    latent_channels : int
        Latent channels ``L``.
    block_out_channels : tuple of int
        Widths of the resolution levels; ``len - 1`` halvings of the grid.
    layers_per_block : int
        ResNet blocks per level.
    norm_num_groups : int
        Group-norm groups (must divide every width).
    mid_attention : bool
        Self-attention in the middle block.
    kl_weight : float
        :math:`\\beta` of the KL term.
    periodic : bool
        Circular padding in every convolution (fields on a periodic grid, e.g. Navier-Stokes).
    linear_code : bool
        Add the linear block code :math:`P, Q` beside the encoder and decoder (module docstring).
    """

    channels: int = 2
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    mid_attention: bool = False
    kl_weight: float = 1e-6
    periodic: bool = False
    linear_code: bool = False

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"norm_num_groups={self.norm_num_groups} must divide every block width, not {bad}")
        if self.latent_channels < 1 or self.channels < 1 or self.kl_weight < 0:
            raise ValueError("channels and latent_channels must be positive and kl_weight non-negative")

    @property
    def factor(self) -> int:
        """Downsampling factor ``r`` of the grid."""
        return 2 ** (len(self.block_out_channels) - 1)


class FieldAutoencoder(nn.Module):
    """``AutoencoderKL`` between normalised fields ``(B, C, S, S)`` and standardised latents ``(B, L, S/r, S/r)``.

    Parameters
    ----------
    config : AutoencoderConfig
        Architecture and KL weight.
    channels : sequence of str
        Field channel names (the normalisation below is per channel).
    mean, std : sequence of float
        Field normalisation, physical = ``mean + std * normalised``.
    resolution : int
        Field grid size ``S`` it was trained at.
    card : dict, optional
        Provenance (see :mod:`pdeinv.latent.checkpoint`).
    """

    def __init__(
        self,
        config: AutoencoderConfig,
        *,
        channels: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        resolution: int,
        card: dict | None = None,
    ):
        super().__init__()
        from diffusers import AutoencoderKL

        if len(channels) != config.channels:
            raise ValueError(f"config.channels = {config.channels} but {len(channels)} channel names {channels}")
        if resolution % config.factor:
            raise ValueError(f"resolution {resolution} must be divisible by the downsampling factor {config.factor}")
        self.config = config
        self.channels = tuple(channels)
        self.resolution = int(resolution)
        self.card = dict(card or {})
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(-1))
        self.register_buffer("latent_shift", torch.zeros(config.latent_channels))
        self.register_buffer("latent_scale", torch.ones(config.latent_channels))
        levels = len(config.block_out_channels)
        self.net = AutoencoderKL(
            in_channels=config.channels,
            out_channels=config.channels,
            latent_channels=config.latent_channels,
            block_out_channels=config.block_out_channels,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            sample_size=resolution,
            mid_block_add_attention=config.mid_attention,
        )
        if config.periodic:
            for module in self.net.modules():
                if isinstance(module, nn.Conv2d) and module.padding != (0, 0):
                    module.padding_mode = "circular"
        self.code_in = self.code_out = None
        if config.linear_code:
            block = config.channels * config.factor**2
            self.code_in = nn.Conv2d(block, config.latent_channels, 1, bias=False)
            self.code_out = nn.Conv2d(config.latent_channels, block, 1, bias=False)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, int, int]:
        """``(L, S/r, S/r)`` for field grid size ``resolution`` (default the training size)."""
        s = self.resolution if resolution is None else int(resolution)
        if s % self.config.factor:
            raise ValueError(f"resolution {s} is not divisible by the autoencoder's factor {self.config.factor}")
        return (self.config.latent_channels, s // self.config.factor, s // self.config.factor)

    def _posterior(self, field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the encoder's posterior, each ``(B, L, S/r, S/r)``."""
        check_field(field, channels=len(self.channels), name="field")
        if field.shape[-1] % self.config.factor:
            raise ValueError(
                f"field grid size {field.shape[-1]} is not divisible by the autoencoder's factor {self.config.factor}"
            )
        posterior = self.net.encode(field).latent_dist
        mean = posterior.mean
        if self.code_in is not None:
            mean = mean + self.code_in(F.pixel_unshuffle(field, self.config.factor))
        return mean, posterior.logvar

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder :math:`g(z)` on unstandardised latents ``(B, L, h, w) -> (B, C, rh, rw)``."""
        field = self.net.decode(z).sample
        if self.code_out is not None:
            field = field + F.pixel_shuffle(self.code_out(z), self.config.factor)
        return field

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_shift.to(z).reshape(1, -1, 1, 1)) / self.latent_scale.to(z).reshape(1, -1, 1, 1)

    def encode(self, field: torch.Tensor) -> torch.Tensor:
        r"""Standardised latent :math:`E(f) = (\mu_\phi(f) - m)/s`, ``(B, C, S, S) -> (B, L, S/r, S/r)``."""
        return self._standardise(self._posterior(field)[0])

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        r"""Normalised field :math:`D(z) = g_\psi(m + s z)`, ``(B, L, S/r, S/r) -> (B, C, S, S)`` (differentiable)."""
        if latent.ndim != 4 or latent.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"latent must have shape (B, {self.config.latent_channels}, H, W), got {tuple(latent.shape)}"
            )
        z = self.latent_shift.to(latent).reshape(1, -1, 1, 1) + self.latent_scale.to(latent).reshape(1, -1, 1, 1) * latent
        return self._generate(z)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``decode(encode(field))`` of a normalised field ``(B, C, S, S)``."""
        return self.decode(self.encode(field))

    def training_loss(self, field: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Mean squared reconstruction error of a posterior sample plus :math:`\beta` times the mean KL."""
        mean, logvar = self._posterior(field)
        noise = torch.randn(mean.shape, generator=generator).to(mean)
        reconstruction = self._generate(mean + torch.exp(0.5 * logvar) * noise)
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)
        return ((reconstruction - field) ** 2).mean() + self.config.kl_weight * kl.mean()

    @torch.no_grad()
    def init_linear_code(self, fields: torch.Tensor) -> None:
        """Start the linear code at the top-``L`` principal directions of the blocks of ``fields`` ``(N, C, S, S)``.

        Sets :math:`P = V^\\top`, :math:`Q = V` (:math:`V` the leading eigenvectors of the blocks'
        second-moment matrix), zeroes the encoder network's mean and the decoder network's last
        convolution, and starts the posterior's log-variance at ``INITIAL_LOGVAR``, so that the
        untrained autoencoder is the local principal-component reconstruction (plus posterior
        noise of std :math:`e^{-5}` in training).
        """
        if self.code_in is None:
            raise ValueError("this autoencoder has no linear code; build it with linear_code=True")
        blocks = F.pixel_unshuffle(fields, self.config.factor).transpose(0, 1).flatten(1)
        _, vectors = torch.linalg.eigh(blocks @ blocks.T / blocks.shape[1])
        top = vectors[:, -self.config.latent_channels :].flip(1).to(self.code_in.weight)
        self.code_in.weight.copy_(top.T[:, :, None, None])
        self.code_out.weight.copy_(top[:, :, None, None])
        nn.init.zeros_(self.net.decoder.conv_out.weight)
        nn.init.zeros_(self.net.decoder.conv_out.bias)
        latent = self.config.latent_channels
        self.net.quant_conv.weight.zero_()
        self.net.quant_conv.bias[:latent].zero_()
        self.net.quant_conv.bias[latent:].fill_(INITIAL_LOGVAR)

    @torch.no_grad()
    def fit_latent_statistics(self, fields: torch.Tensor, batch_size: int = 64) -> None:
        """Set :math:`m, s` to the per-channel mean and std of :math:`\\mu_\\phi` over ``fields`` ``(N, C, S, S)``."""
        means = torch.cat([self._posterior(chunk)[0] for chunk in fields.split(batch_size)])
        self.latent_shift.copy_(means.mean(dim=(0, 2, 3)))
        self.latent_scale.copy_(means.std(dim=(0, 2, 3)).clamp_min(1e-6))


def config_dict(config: AutoencoderConfig) -> dict:
    """JSON-ready dictionary of an :class:`AutoencoderConfig` (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
