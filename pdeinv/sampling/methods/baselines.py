"""Registration of the classical baselines and of deepinv's DPS (:mod:`pdeinv.sampling.baselines`)."""

from __future__ import annotations

from dataclasses import dataclass

from pdeinv.sampling import baselines
from pdeinv.sampling.methods.registry import NoParameters, register
from pdeinv.sampling.methods.units import check_positive
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction


@register("kriging", kind="baseline")
def kriging(problem: InverseProblem, config: NoParameters, options: MethodOptions) -> Reconstruction:
    """Exact Gaussian posterior (:func:`pdeinv.sampling.baselines.kriging_baseline`)."""
    return baselines.kriging_baseline(problem, options)


@register("interp-solve", kind="baseline")
def interp_solve(problem: InverseProblem, config: NoParameters, options: MethodOptions) -> Reconstruction:
    """Interpolate, then solve (:func:`pdeinv.sampling.baselines.interpolate_then_solve`)."""
    return baselines.interpolate_then_solve(problem, options)


@register("adjoint", kind="baseline")
def adjoint(problem: InverseProblem, config: NoParameters, options: MethodOptions) -> Reconstruction:
    """MAP estimate by L-BFGS through the solver (:func:`pdeinv.sampling.baselines.adjoint_inversion`)."""
    return baselines.adjoint_inversion(problem, options)


@register("pinv", kind="baseline")
def pinv(problem: InverseProblem, config: NoParameters, options: MethodOptions) -> Reconstruction:
    """The sensor's pseudo-inverse (:func:`pdeinv.sampling.baselines.pseudo_inverse`)."""
    return baselines.pseudo_inverse(problem, options)


@dataclass(frozen=True)
class DeepinvDPSConfig:
    r"""DPS's parameters for deepinv's sampler (the same as :class:`~pdeinv.sampling.methods.dps.DPSConfig`).

    Parameters
    ----------
    zeta : float
        DPS's step per DDPM step.
    steps : int
        Ancestral steps on deepinv's VP schedule.
    data_std : float
        DPS's data std (images in :math:`[-1, 1]`: 0.5).
    """

    zeta: float = 1.0
    steps: int = 1000
    data_std: float = 0.5

    def __post_init__(self) -> None:
        check_positive(zeta=self.zeta, data_std=self.data_std)


@register("deepinv-dps", DeepinvDPSConfig, kind="baseline", needs_prior=True)
def deepinv_dps(problem: InverseProblem, config: DeepinvDPSConfig, options: MethodOptions) -> Reconstruction:
    """deepinv's DPS with DPS's step (:func:`pdeinv.sampling.baselines.deepinv_dps`)."""
    return baselines.deepinv_dps(problem, config, options)
