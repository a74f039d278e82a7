"""Latent space: the field autoencoder, the latent prior and the sampler's latent ``space``.

- :mod:`pdeinv.latent.autoencoder`: :class:`FieldAutoencoder` (``diffusers`` ``AutoencoderKL``).
- :mod:`pdeinv.latent.space`: :class:`LatentSpace`, :class:`LatentPrior`.
- :mod:`pdeinv.latent.checkpoint`: loading autoencoders and latent priors, pairing checks.
- :mod:`pdeinv.latent.training`: training both through ``pdeinv train``.
- :mod:`pdeinv.latent.methods`: ``latent-dps``, ``psld``, ``resample`` and the ``+repa`` suffix.

Importing the package registers those methods with :mod:`pdeinv.sampling.methods` and the
``latent`` and ``repa`` card sections with :mod:`pdeinv.priors.checkpoint`.
"""

from pdeinv.latent.autoencoder import AutoencoderConfig, FieldAutoencoder
from pdeinv.latent.checkpoint import load_autoencoder, load_latent_prior
from pdeinv.latent.repa import attach_head
from pdeinv.latent.space import LatentPrior, LatentSpace
from pdeinv.priors.checkpoint import register_card_head, register_card_loader

register_card_loader("latent", load_latent_prior)
register_card_head("repa", attach_head)

from pdeinv.latent import methods  # noqa: E402,F401 (registers the latent methods)

__all__ = [
    "AutoencoderConfig",
    "FieldAutoencoder",
    "LatentPrior",
    "LatentSpace",
    "load_autoencoder",
    "load_latent_prior",
]
