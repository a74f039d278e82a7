"""One posterior sampler (field space, or a latent space through ``encode/decode``), its guidance
terms, the classical baselines and the method registry.

Public names::

    PosteriorSampler, SamplerConfig, DAPSConfig, FieldSpace, SamplingDivergedError   sampler
    GuidanceSchedule, edm_sigmas                                                       schedule
    ObservationTerm, PhysicsTerm, GuidanceState                                        terms
    EquiRegTerm                                                                        equireg
    Kriging, KrigingObservation, LinearGaussianModel                                   kriging
    InverseProblem, MethodOptions, Reconstruction                                      problem
    solve, method_names, parse_method, method_config, register                         methods
"""

from pdeinv.sampling.equireg import EquiRegTerm
from pdeinv.sampling.kriging import Kriging, KrigingObservation, LinearGaussianModel
from pdeinv.sampling.methods import method_config, method_names, parse_method, register, solve
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import DAPSConfig, FieldSpace, PosteriorSampler, SamplerConfig, SamplingDivergedError
from pdeinv.sampling.schedule import GuidanceSchedule, edm_sigmas
from pdeinv.sampling.terms import GuidanceState, ObservationTerm, PhysicsTerm

__all__ = [
    "DAPSConfig",
    "EquiRegTerm",
    "FieldSpace",
    "GuidanceSchedule",
    "GuidanceState",
    "InverseProblem",
    "Kriging",
    "KrigingObservation",
    "LinearGaussianModel",
    "MethodOptions",
    "ObservationTerm",
    "PhysicsTerm",
    "PosteriorSampler",
    "Reconstruction",
    "SamplerConfig",
    "SamplingDivergedError",
    "edm_sigmas",
    "method_config",
    "method_names",
    "parse_method",
    "register",
    "solve",
]
