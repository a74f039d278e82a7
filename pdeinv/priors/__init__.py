"""Diffusion priors: EDM denoisers (trained networks and the exact Gaussian priors), training, checkpoints.

A prior is a ``torch.nn.Module`` with ``denoise(x, sigma)`` on normalised ``(B, C, S, S)``
fields plus ``channels``, ``mean``, ``std``, ``sigma_data``, ``to_physical``, ``to_normalized``,
``resolution`` and ``card`` (see :class:`pdeinv.priors.base.FieldPrior`).

Public names::

    load, save_prior, shipped_priors                  pdeinv.priors.checkpoint
    EDMDenoiser, EDMConfig                            pdeinv.priors.edm
    GaussianPrior, JointGaussianPrior,
    helmholtz_joint_prior                             pdeinv.priors.gaussian
    FieldPrior                                        pdeinv.priors.base
    heun_sample, HeunConfig                           pdeinv.priors.sample
"""

from pdeinv.priors.base import FieldPrior
from pdeinv.priors.checkpoint import load, save_prior, shipped_priors
from pdeinv.priors.edm import EDMConfig, EDMDenoiser
from pdeinv.priors.gaussian import GaussianPrior, JointGaussianPrior, helmholtz_joint_prior
from pdeinv.priors.sample import HeunConfig, heun_sample

__all__ = [
    "EDMConfig",
    "EDMDenoiser",
    "FieldPrior",
    "GaussianPrior",
    "HeunConfig",
    "JointGaussianPrior",
    "heun_sample",
    "helmholtz_joint_prior",
    "load",
    "save_prior",
    "shipped_priors",
]
