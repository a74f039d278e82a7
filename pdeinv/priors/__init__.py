"""Diffusion priors: EDM denoisers (trained networks and the exact Gaussian prior), training, checkpoints.

A prior is a ``torch.nn.Module`` with ``denoise(x, sigma)`` on normalised ``(B, C, S, S)``
fields plus ``channels``, ``mean``, ``std``, ``sigma_data``, ``to_physical``, ``to_normalized``,
``resolution`` and ``card`` (see :class:`pdeinv.priors.base.FieldPrior`).
"""

from pdeinv.priors.base import FieldPrior
from pdeinv.priors.checkpoint import load, save_prior, shipped_priors
from pdeinv.priors.edm import EDMConfig, EDMDenoiser

__all__ = ["EDMConfig", "EDMDenoiser", "FieldPrior", "load", "save_prior", "shipped_priors"]
