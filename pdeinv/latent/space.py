r"""Latent space of the posterior sampler: the autoencoder as the sampler's ``space``, and the latent prior.

The sampler's state is a standardised latent :math:`z` ``(B, L, S/r, S/r)``; every guidance term
sees the decoded field :math:`D(\hat z_0)` (``GuidanceState.field``), so observation, physics and
EquiReg terms work unchanged, their gradients flowing back through the decoder:

.. math:: \nabla_{z_t} L\big(D(\hat z_0(z_t))\big) = J_{\hat z_0}^\top J_D^\top \nabla_f L.
"""

from __future__ import annotations

import torch

from pdeinv.latent.autoencoder import FieldAutoencoder
from pdeinv.priors.base import FieldPrior


class LatentSpace:
    """The sampler's latent space: ``encode(field) -> latent``, ``decode(latent) -> field`` (differentiable).

    Parameters
    ----------
    autoencoder : FieldAutoencoder
        Trained autoencoder; fields are normalised ``(B, C, S, S)``, latents ``(B, L, S/r, S/r)``.
    """

    field_space = False

    def __init__(self, autoencoder: FieldAutoencoder):
        self.autoencoder = autoencoder

    def encode(self, field: torch.Tensor) -> torch.Tensor:
        """Normalised field ``(B, C, S, S)`` to standardised latent ``(B, L, S/r, S/r)``."""
        return self.autoencoder.encode(field)

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """Standardised latent ``(B, L, S/r, S/r)`` to normalised field ``(B, C, S, S)``."""
        return self.autoencoder.decode(state)

    def state_shape(self, channels: int, resolution: int) -> tuple[int, int, int]:
        """Latent shape ``(L, S/r, S/r)`` of a ``channels``-channel field on an ``S x S`` grid."""
        if channels != len(self.autoencoder.channels):
            raise ValueError(f"the autoencoder encodes {len(self.autoencoder.channels)} channels, not {channels}")
        return self.autoencoder.latent_shape(resolution)


class LatentPrior(FieldPrior):
    r"""A diffusion prior on latents, seen by the sampler as a prior on fields with a latent ``space``.

    ``channels``, ``mean``, ``std``, ``resolution`` and ``to_physical`` are the *field's* (the
    autoencoder's normalisation); ``denoise(z, sigma)`` is the latent denoiser
    :math:`E[z_0 \mid z_0 + \sigma n]` on standardised latents; ``space`` is the
    :class:`LatentSpace` the sampler runs in.

    Parameters
    ----------
    denoiser : pdeinv.priors.edm.EDMDenoiser
        EDM prior trained on ``autoencoder``'s standardised latents.
    autoencoder : FieldAutoencoder
        The autoencoder (checked against the denoiser's card by the loaders).
    """

    def __init__(self, denoiser, autoencoder: FieldAutoencoder):
        super().__init__(
            autoencoder.channels,
            autoencoder.mean,
            autoencoder.std,
            denoiser.sigma_data,
            autoencoder.resolution,
            denoiser.card,
        )
        if len(denoiser.channels) != autoencoder.config.latent_channels:
            raise ValueError(
                f"the denoiser has {len(denoiser.channels)} channels but the autoencoder's latents have "
                f"{autoencoder.config.latent_channels}; pair the latent prior with the autoencoder it was trained on"
            )
        self.denoiser = denoiser
        self.autoencoder = autoencoder
        self.space = LatentSpace(autoencoder)

    @property
    def latent_resolution(self) -> int:
        """Grid size of the latents at the field's training resolution."""
        return self.autoencoder.latent_shape()[-1]

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Latent posterior mean :math:`E[z_0 \mid z]`, ``(B, L, S/r, S/r) -> (B, L, S/r, S/r)``."""
        return self.denoiser.denoise(x, sigma)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Same as :meth:`denoise`."""
        return self.denoise(x, sigma)
