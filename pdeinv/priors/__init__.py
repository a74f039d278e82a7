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

The names are imported on first use (module ``__getattr__``), so the torch-free modules of the
package (its command line) load without torch.
"""

from __future__ import annotations

from pdeinv.lazy import lazy_exports


_MODULES = {
    "EDMConfig": "edm",
    "EDMDenoiser": "edm",
    "FieldPrior": "base",
    "GaussianPrior": "gaussian",
    "HeunConfig": "sample",
    "JointGaussianPrior": "gaussian",
    "heun_sample": "sample",
    "helmholtz_joint_prior": "gaussian",
    "load": "checkpoint",
    "save_prior": "checkpoint",
    "shipped_priors": "checkpoint",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
