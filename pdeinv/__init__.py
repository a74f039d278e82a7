"""pdeinv: reconstruct physical fields from sparse, noisy or indirect measurements with diffusion priors.

Layers (each imports only the layers above it)::

    pdeinv.operators   forward maps as deepinv Physics, with their symmetry groups
    pdeinv.datasets    Gaussian random fields, PDE pair generation, the HDF5 store
    pdeinv.priors      EDM denoisers, the exact Gaussian prior, training, checkpoints
    pdeinv.sampling    the posterior sampler, its guidance terms and baselines
    pdeinv.latent      autoencoders, latent priors and the latent-space methods (registers itself)
    pdeinv.bench       benchmark tasks, runs and result tables

``pdeinv.reconstruct(y, sensor * operator, prior)`` (:mod:`pdeinv.api`) is the short path for
one's own measurements; ``pdeinv.relative_l2`` (:mod:`pdeinv.metrics`) the error measure.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the short API on first use, so ``import pdeinv`` stays light."""
    if name == "reconstruct":
        from pdeinv.api import reconstruct

        return reconstruct
    if name == "relative_l2":
        from pdeinv.metrics import relative_l2

        return relative_l2
    raise AttributeError(f"module 'pdeinv' has no attribute {name!r}")
