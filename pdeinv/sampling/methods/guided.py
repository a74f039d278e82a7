r"""What the diffusion methods share: the preset they build and the loop that samples with it.

A guided method converts its configuration into a :class:`GuidedPreset`: a
:class:`~pdeinv.sampling.sampler.SamplerConfig` in the sampler's units, a factory of its terms for
measurements :math:`y`, and ``step``, the schedule of its own guidance step (the weight
:math:`\zeta_i` a modifier's term is multiplied by to enter the solver's loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pdeinv.pdes import solve_estimate
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.progress import measurement_batches
from pdeinv.sampling.sampler import PosteriorSampler, SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import Term, channel_index


@dataclass(frozen=True)
class GuidedConfig:
    """Base of the diffusion methods' configurations: the modifiers' configurations added by suffixes."""

    modifiers: tuple = ()


@dataclass(frozen=True)
class GuidedPreset:
    """A diffusion method in the sampler's units.

    Attributes
    ----------
    config : SamplerConfig
        Schedule, integrator and guidance mode.
    terms : callable
        ``terms(y) -> list[Term]`` for measurements ``y`` (one row per chain).
    step : GuidanceSchedule
        The method's own guidance step :math:`\\zeta_i` (weight of its data term).
    projection : callable, optional
        ``projection(y)`` -> the sampler's post-step hook (ReSample).
    solve_output : bool
        Replace each sample's output field by the forward solve of its input field.
    """

    config: SamplerConfig
    terms: Callable[[torch.Tensor], list[Term]]
    step: GuidanceSchedule
    projection: Callable[[torch.Tensor], Callable] | None = None
    solve_output: bool = False


def channel_std(prior, problem: InverseProblem, role: str) -> float:
    """The prior's normalisation std of the ``"input"`` or ``"output"`` channel (physical units)."""
    return float(prior.std[channel_index(prior.channels, problem.channel(role))])


def direction(problem: InverseProblem) -> str:
    """``"forward"`` (the input is observed) or ``"inverse"``."""
    return "forward" if problem.observed == "input" else "inverse"


def points(problem: InverseProblem) -> int:
    """Number of measured values per sample, ``M``."""
    return problem.measurement_size


def modifier_terms(preset: GuidedPreset, problem: InverseProblem, options: MethodOptions, modifiers, y) -> list[Term]:
    """The terms the modifiers' configurations add (each config's ``terms(preset, problem, options, y)``)."""
    return [term for config in modifiers for term in config.terms(preset, problem, options, y)]


def _target_field(preset: GuidedPreset, problem: InverseProblem, prior, physical: torch.Tensor) -> torch.Tensor:
    """The recovered field ``(B, 1, S, S)`` of physical samples: their target channel, or the solve of their input."""
    if not (preset.solve_output and problem.target == "output"):
        return physical[:, [channel_index(prior.channels, problem.channel(problem.target))]]
    source = channel_index(prior.channels, problem.input_channel)
    with torch.no_grad():
        return solve_estimate(problem.operator, physical[:, [source]])


def run_guided(preset: GuidedPreset, problem: InverseProblem, options: MethodOptions, modifiers=()) -> Reconstruction:
    """Sample ``options.samples`` chains per measurement with ``preset`` (plus the modifiers' terms).

    The sampler runs in the prior's ``space`` (latent priors) or on fields.
    """
    prior = options.prior
    generator = torch.Generator(device=prior.mean.device).manual_seed(options.seed)
    k, s = options.samples, problem.resolution
    collected, nfe = [], 0
    for rows in measurement_batches(problem.n, options.batch_size):
        y = problem.measurements[rows].to(prior.mean).repeat_interleave(k, 0)
        terms = preset.terms(y) + modifier_terms(preset, problem, options, modifiers, y)
        projection = preset.projection(y) if preset.projection is not None else None
        space = getattr(prior, "space", None)
        sampler = PosteriorSampler(prior, preset.config, terms, space=space, projection=projection)
        result = sampler.sample(y.shape[0], generator, resolution=s)
        collected.append(_target_field(preset, problem, prior, result.physical).reshape(len(rows), k, 1, s, s))
        nfe = result.nfe
    samples = torch.cat(collected)
    return Reconstruction(samples.mean(1), samples.std(1) if k > 1 else None, samples, nfe)
