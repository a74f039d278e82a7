"""Latent space: the field autoencoder, the latent prior and the sampler's latent ``space``.

- :mod:`pdeinv.latent.autoencoder`: :class:`FieldAutoencoder` (``diffusers`` ``AutoencoderKL``).
- :mod:`pdeinv.latent.space`: :class:`LatentSpace`, :class:`LatentPrior`.
- :mod:`pdeinv.latent.checkpoint`: loading autoencoders and latent priors, pairing checks.
- :mod:`pdeinv.latent.training`: training both through ``pdeinv train``.
"""

from pdeinv.latent.autoencoder import AutoencoderConfig, FieldAutoencoder
from pdeinv.latent.checkpoint import load_autoencoder, load_latent_prior
from pdeinv.latent.space import LatentPrior, LatentSpace

__all__ = [
    "AutoencoderConfig",
    "FieldAutoencoder",
    "LatentPrior",
    "LatentSpace",
    "load_autoencoder",
    "load_latent_prior",
]
