"""pdeinv: reconstruct physical fields from sparse, noisy or indirect measurements with diffusion priors.

Layers (each imports only the layers above it)::

    pdeinv.operators   forward maps as deepinv Physics, with their symmetry groups
    pdeinv.datasets    Gaussian random fields, PDE pair generation, the HDF5 store
    pdeinv.priors      EDM denoisers, the exact Gaussian prior, training, checkpoints
    pdeinv.sampling    the posterior sampler, its guidance terms and baselines
    pdeinv.latent      autoencoders, latent priors and the latent-space methods (registers itself)
    pdeinv.bench       benchmark tasks, runs and result tables
"""

__version__ = "0.1.0"

from pdeinv import latent  # noqa: E402,F401 (registers the latent methods and checkpoint sections)
