r"""Schedules over the sampling steps: the EDM noise levels and the weight of a guidance term.

Noise levels (Karras et al. 2022, eq. 5), for ``N`` steps :math:`i = 0, \dots, N-1`:

.. math:: \sigma_i = \Big(\sigma_\max^{1/\rho} + \tfrac{i}{N-1}
          \big(\sigma_\min^{1/\rho} - \sigma_\max^{1/\rho}\big)\Big)^{\rho}, \qquad \sigma_N = 0.

Noise levels are in the units of the prior's normalised fields (a normalised field plus
:math:`\sigma n`, :math:`n \sim N(0, I)`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

SIGMA_SCALES = ("none", "sigma", "min1")


def edm_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    r"""The EDM noise levels :math:`\sigma_0 > \dots > \sigma_{N-1} > \sigma_N = 0`.

    Parameters
    ----------
    steps : int
        Number of steps ``N >= 1``; ``N = 1`` gives ``(sigma_max, 0)``.
    sigma_min, sigma_max : float
        Smallest and largest positive noise level, ``0 < sigma_min <= sigma_max``.
    rho : float
        Warping exponent (7 in EDM); larger spends more steps at low noise.

    Returns
    -------
    torch.Tensor
        float64 tensor of shape ``(N + 1,)``, last entry 0.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (0 < sigma_min <= sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min <= sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if steps == 1:
        ramp = torch.zeros(1, dtype=torch.float64, device="cpu")
    else:
        ramp = torch.arange(steps, dtype=torch.float64, device="cpu") / (steps - 1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@dataclass(frozen=True)
class GuidanceSchedule:
    r"""Weight of a guidance term as a function of the step, :math:`w(\sigma_i, i, N)`.

    .. math:: w = \text{weight} \cdot s(\sigma_i) \cdot f_i \cdot \mathbb{1}[\text{active}],

    with :math:`s = 1` (``"none"``), :math:`\sigma_i/\sigma_\text{ref}` (``"sigma"``) or
    :math:`\min(1, \sigma_i/\sigma_\text{ref})` (``"min1"``, FunDPS's observation coefficient);
    :math:`f_i = ` ``late_factor`` once
    :math:`i > \text{switch\_fraction} \cdot N` (DiffusionPDE: 0.1 after 80 % of the steps), else 1,
    times ``step_weights[i]`` when a method's weights differ per step (DPS's DDPM steps summed over
    each EDM step, :mod:`pdeinv.sampling.methods.units`).
    The term is active when every condition holds: :math:`\sigma_i >` ``sigma_above``,
    :math:`\sigma_i \le` ``sigma_below``, :math:`i \ge \text{start\_fraction} \cdot N`,
    :math:`i < N -` ``cutoff_steps``, :math:`i < \text{stop\_fraction} \cdot N` and
    :math:`i \bmod` ``every`` :math:`= 0`.

    Parameters
    ----------
    weight : float
        Base weight (>= 0).
    sigma_scale : {"none", "sigma", "min1"}
        How the weight scales with the noise level.
    sigma_reference : float
        :math:`\sigma_\text{ref}`, the noise level that counts as 1 in ``sigma_scale`` (converts a
        method's published schedule to a prior normalised differently, e.g. 2 for a unit-variance
        prior running a rule written for data of standard deviation 0.5).
    sigma_above, sigma_below : float, optional
        Noise-level window of activity (FunDPS: physics only for :math:`\sigma \le 1`).
    start_fraction : float
        Fraction of the steps before which the term is off (DiffusionPDE physics: 0.8).
    switch_fraction : float, optional
        Fraction of the steps after which ``late_factor`` multiplies the weight.
    late_factor : float
        Multiplier after the switch.
    every : int
        Fire every ``every`` steps (EquiReg ``constant`` schedule with ``equi_freq = 1/every``).
    cutoff_steps : int
        Off for the final ``cutoff_steps`` steps (EquiReg ``cutoff``; FunDPS skips the last step).
    stop_fraction : float
        Fraction of the steps after which the term is off (1: never).
    step_weights : tuple of float, optional
        One factor per step (length ``N``); ``None`` is 1 at every step.
    """

    weight: float = 1.0
    sigma_scale: str = "none"
    sigma_reference: float = 1.0
    sigma_above: float | None = None
    sigma_below: float | None = None
    start_fraction: float = 0.0
    switch_fraction: float | None = None
    late_factor: float = 1.0
    every: int = 1
    cutoff_steps: int = 0
    stop_fraction: float = 1.0
    step_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"weight must be a finite number >= 0, got {self.weight!r}")
        if self.sigma_scale not in SIGMA_SCALES:
            raise ValueError(f"sigma_scale must be one of {SIGMA_SCALES}, got {self.sigma_scale!r}")
        if not (math.isfinite(self.sigma_reference) and self.sigma_reference > 0):
            raise ValueError(f"sigma_reference must be a positive number, got {self.sigma_reference!r}")
        if not 0.0 <= self.start_fraction <= 1.0:
            raise ValueError(f"start_fraction must lie in [0, 1], got {self.start_fraction!r}")
        if self.switch_fraction is not None and not 0.0 <= self.switch_fraction <= 1.0:
            raise ValueError(f"switch_fraction must lie in [0, 1] or be None, got {self.switch_fraction!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every!r}")
        if isinstance(self.cutoff_steps, bool) or not isinstance(self.cutoff_steps, int) or self.cutoff_steps < 0:
            raise ValueError(f"cutoff_steps must be an integer >= 0, got {self.cutoff_steps!r}")
        if not 0.0 <= self.stop_fraction <= 1.0:
            raise ValueError(f"stop_fraction must lie in [0, 1], got {self.stop_fraction!r}")
        if self.step_weights is not None and not all(math.isfinite(w) and w >= 0 for w in self.step_weights):
            raise ValueError("step_weights must be finite numbers >= 0")

    def scaled(self, factor: float) -> GuidanceSchedule:
        """The same schedule with its weight multiplied by ``factor`` (a term riding on a solver's step)."""
        return dataclasses.replace(self, weight=self.weight * factor)

    def active(self, sigma: float, step: int, n_steps: int) -> bool:
        """Whether the term fires at step ``step`` of ``n_steps`` (noise level ``sigma``)."""
        return (
            (self.sigma_above is None or sigma > self.sigma_above)
            and (self.sigma_below is None or sigma <= self.sigma_below)
            and step >= self.start_fraction * n_steps
            and step < n_steps - self.cutoff_steps
            and step < self.stop_fraction * n_steps
            and step % self.every == 0
            and self.weight > 0
        )

    def __call__(self, sigma: float, step: int, n_steps: int) -> float:
        """The weight :math:`w(\\sigma_i, i, N)` (0 when inactive)."""
        if not self.active(sigma, step, n_steps):
            return 0.0
        relative = sigma / self.sigma_reference
        scale = {"none": 1.0, "sigma": relative, "min1": min(1.0, relative)}[self.sigma_scale]
        late = self.switch_fraction is not None and step > self.switch_fraction * n_steps
        return self.weight * scale * (self.late_factor if late else 1.0) * self._step_factor(step, n_steps)

    def _step_factor(self, step: int, n_steps: int) -> float:
        if self.step_weights is None:
            return 1.0
        if len(self.step_weights) != n_steps:
            raise ValueError(
                f"the schedule holds {len(self.step_weights)} step weights but the sampler runs {n_steps} steps; "
                "build the method's schedule for the steps it runs"
            )
        return self.step_weights[step]
