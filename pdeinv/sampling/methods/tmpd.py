r"""Tweedie moment projection: the Gaussian likelihood of :math:`y` given :math:`x_t` inside the drift.

:math:`p(y \mid x_t) \approx N(P D(x_t), \sigma_y^2 I + \sigma^2 P J P^\top)` with :math:`J` the
Jacobian of the prior's Gaussian part when it has one (no network differentiation beyond one
gradient per evaluation), Heun steps. :math:`\sigma_y` adds a model-error std (normalised units) to
the measurement noise, for the network's departure from the Gaussian part whose Jacobian stands in
for the denoiser's: 1e-3 for a Gaussian prior (``prior.is_gaussian``, where :math:`J` is exact)
and for the joint prior of a linear PDE (Gaussian data); 1e-2 otherwise (Navier-Stokes), where
1e-3 makes the guided flow too stiff for 50 Heun steps. Measured with the shipped priors on 8
validation fields (seed 1) per task, 50 steps: Navier-Stokes inverse 28.0 / 19.9 / 19.8 /
1380 % at 0.1 / 0.01 / 0.003 / 0.001, forward 15.2 / 13.5 / 13.5 / 13.5 %; Helmholtz inverse
33.0 / 18.9 / 16.3 / 15.4 %, forward 12.7 / 10.6 / 10.8 / 10.4 %.

``tmpd-solve`` is ``tmpd`` on the solution manifold: every sample's output field is the forward
solve of its input field. On a forward task (the input observed) the output is solved once at the
end; on an inverse task of a nonlinear PDE (Darcy) the joint prior is used in operator-consistent
form (:class:`~pdeinv.priors.consistent.OperatorConsistentPrior`: each denoised estimate's output is
the solve of its input; a linear PDE's prior is used in that form by ``pdeinv bench`` already), so
the measurement of the output reaches the input through the solver, and the measurement covariance
linearises the solve at each sample's estimate,
:math:`K_b = \sigma_y^2 I + \sigma^2 (P A'_b) J_{aa} (P A'_b)^\top` with :math:`A'_b` the solve's
Jacobian there and :math:`J_{aa}` the Gaussian part's Jacobian of the input
(:func:`~pdeinv.sampling.terms.linearised_measurement_covariance`): the extended-Kalman form of
TMPD (TMPD's own covariance when the PDE is linear), an approximation this package adds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from pdeinv.priors.consistent import consistent_form
from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, channel_std, run_guided
from pdeinv.sampling.methods.registry import register
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.sampler import SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import ObservationTerm

TMPD_MODEL_ERROR = {True: 1e-3, False: 1e-2}  # keyed by "the prior is Gaussian or models a linear PDE"


@dataclass(frozen=True)
class TMPDConfig(GuidedConfig):
    r"""Parameters of the Tweedie moment projection (units of the prior's :math:`\sigma_\text{data}`).

    Parameters
    ----------
    steps : int
        Heun steps.
    sigma_max : float
        Largest noise level over :math:`\sigma_\text{data}` (above the largest prior standard
        deviation of a normalised 128 x 128 field's modes).
    model_error : float, optional
        Model-error std added to the noise; ``None`` picks ``TMPD_MODEL_ERROR`` (module docstring).
    """

    steps: int = 100
    sigma_max: float = 500.0
    model_error: float | None = None


def tmpd_sampler_units(problem: InverseProblem, config: TMPDConfig, prior, solve_output: bool = False) -> GuidedPreset:
    """TMPD in the sampler's units."""
    scale = 1.0 / channel_std(prior, problem, problem.observed)
    channel = problem.channel(problem.observed)
    model_error = config.model_error
    if model_error is None:
        model_error = TMPD_MODEL_ERROR[problem.linear or prior.is_gaussian]
    noise = math.hypot(problem.noise_std * scale, model_error)
    sampler = SamplerConfig(steps=config.steps, sigma_max=config.sigma_max * float(prior.sigma_data), guidance="drift")

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="tweedie", noise_std=noise, scale=scale)]

    return GuidedPreset(sampler, terms, GuidanceSchedule(), solve_output=solve_output)


@register("tmpd", TMPDConfig)
def tmpd(problem: InverseProblem, config: TMPDConfig, options: MethodOptions) -> Reconstruction:
    """Tweedie moment projection (module docstring)."""
    return run_guided(tmpd_sampler_units(problem, config, options.prior), problem, options, config.modifiers)


def solved_prior(problem: InverseProblem, prior):
    """``prior`` in operator-consistent form when ``problem`` recovers a nonlinear PDE's input from its output.

    A prior already in that form, a latent prior (its own state ``space``), a problem without a PDE
    operator and a linear PDE's problem (whose prior ``pdeinv bench`` and ``pdeinv demo`` already give
    in that form, unless ``--raw-prior`` asks for the joint one) keep the prior as it is.
    """
    inverse = problem.observed == "output" and problem.target == "input"
    if problem.operator is None or not inverse or problem.linear:
        return prior
    return consistent_form(prior, problem.operator, problem.input_channel, problem.output_channel)


@register("tmpd-solve", TMPDConfig)
def tmpd_solve(problem: InverseProblem, config: TMPDConfig, options: MethodOptions) -> Reconstruction:
    """``tmpd`` whose samples solve the PDE (module docstring)."""
    options = dataclasses.replace(options, prior=solved_prior(problem, options.prior))
    preset = tmpd_sampler_units(problem, config, options.prior, solve_output=True)
    return run_guided(preset, problem, options, config.modifiers)
