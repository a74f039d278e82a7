"""Particle methods: RLSD and DWGF on one particle engine (field or latent space).

Public names::

    ParticleConfig, ParticleSolver, ParticleStep, ParticleResult     engine
    kernel_matrix, log_kernel_sum, median_bandwidth                   kernel
    ScoreDistillation, Coupling, DataFit, DecoderLikelihood,
    MixtureRegulariser, AutoencoderScore, Measurement                 terms
    RLSDConfig, DWGFConfig, rlsd_solver, dwgf_solver, run_particles   methods
"""

from pdeinv.sampling.particles.engine import ParticleConfig, ParticleResult, ParticleSolver, ParticleStep
from pdeinv.sampling.particles.kernel import kernel_matrix, log_kernel_sum, median_bandwidth
from pdeinv.sampling.particles.methods import DWGFConfig, RLSDConfig, dwgf_solver, rlsd_solver, run_particles
from pdeinv.sampling.particles.terms import (
    AutoencoderScore,
    Coupling,
    DataFit,
    DecoderLikelihood,
    Measurement,
    MixtureRegulariser,
    ScoreDistillation,
)

__all__ = [
    "AutoencoderScore",
    "Coupling",
    "DWGFConfig",
    "DataFit",
    "DecoderLikelihood",
    "Measurement",
    "MixtureRegulariser",
    "ParticleConfig",
    "ParticleResult",
    "ParticleSolver",
    "ParticleStep",
    "RLSDConfig",
    "ScoreDistillation",
    "dwgf_solver",
    "kernel_matrix",
    "log_kernel_sum",
    "median_bandwidth",
    "rlsd_solver",
    "run_particles",
]
