r"""Reconstruction methods: one registry, one module per method, each with its publication's parameters.

- :mod:`~pdeinv.sampling.methods.registry`: :func:`register`, :func:`solve`, :func:`method_config`.
- :mod:`~pdeinv.sampling.methods.units`: every conversion from a publication's units to the sampler's.
- Diffusion methods (:mod:`~pdeinv.sampling.methods.guided`): ``dps``, ``fundps``, ``diffusionpde``,
  ``tmpd``, ``tmpd-solve``, ``daps``; suffixes ``+equireg``, ``+equireg-d4``
  (:mod:`~pdeinv.sampling.methods.equireg`). The latent package registers ``latent-dps``,
  ``psld``, ``resample`` and ``+repa`` when it is imported.
- Baselines: ``kriging``, ``interp-solve``, ``adjoint``, ``pinv``, ``deepinv-dps``.
- Particle methods: ``rlsd``, ``rlsd-norep``, ``dwgf`` (:mod:`pdeinv.sampling.particles.methods`).
"""

from pdeinv.sampling.methods import baselines, daps, diffusionpde, dps, equireg, fundps, tmpd  # noqa: F401 (register)
from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, run_guided
from pdeinv.sampling.methods.registry import (
    BASELINES,
    GUIDED,
    METHODS,
    MODIFIERS,
    PARTICLES,
    Method,
    NoParameters,
    configure,
    method_config,
    method_names,
    parse_method,
    register,
    register_modifier,
    solve,
    split_method,
    split_repa,
)
from pdeinv.sampling.particles import methods as _particles  # noqa: F401 (registers rlsd, dwgf)

__all__ = [
    "BASELINES",
    "GUIDED",
    "METHODS",
    "MODIFIERS",
    "PARTICLES",
    "GuidedConfig",
    "GuidedPreset",
    "Method",
    "NoParameters",
    "configure",
    "method_config",
    "method_names",
    "parse_method",
    "register",
    "register_modifier",
    "run_guided",
    "solve",
    "split_method",
    "split_repa",
]
