r"""ReSample (Song et al. 2024): hard data consistency in the late steps plus stochastic resampling.

After the sampler's step to :math:`\sigma' = \sigma_{i+1}` (state :math:`x'`), on every ``every``-th
step once :math:`i \ge` ``start_fraction`` :math:`\cdot N`:

1. :math:`\hat z_0 = D_\theta(x', \sigma')` (one network evaluation);
2. hard data consistency, latent optimisation: :math:`\hat z = \arg\min_z \sum_k L_k(z)` by AdamW
   (``lr``, at most ``iterations`` steps, stopping once the loss falls below ``tolerance`` times
   its start), started at :math:`\hat z_0`, with :math:`L_k` the observation terms evaluated on
   the decoded :math:`z`;
3. stochastic resampling (ReSample's Eq. for :math:`p(x_{t'} \mid \hat z, x')` in EDM's
   variance-exploding form):

   .. math::

      x' \leftarrow \frac{\gamma^2 \hat z + \sigma'^2 x'}{\gamma^2 + \sigma'^2}
                    + \sqrt{\frac{\gamma^2 \sigma'^2}{\gamma^2 + \sigma'^2}}\; n,\qquad
      \gamma^2 = c\, \frac{\sigma'^2 (\sigma^2 - \sigma'^2)}{\sigma^2},

   which is ReSample's :math:`\sigma_t^2 = 40\,\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}
   \big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}\big)` (``c = 40``) rewritten with
   :math:`\sigma^2 = (1-\bar\alpha)/\bar\alpha`.

At the last step (:math:`\sigma' = 0`) the output itself is optimised (ReSample's final latent
optimisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pdeinv.sampling.terms import GuidanceState, Term


@dataclass(frozen=True)
class ReSampleConfig:
    """Settings of :class:`ReSampleProjection`.

    Parameters
    ----------
    start_fraction : float
        Hard consistency from step ``start_fraction * N`` on.
    every : int
        Apply it on every ``every``-th step (and always on the last).
    iterations : int
        Maximum AdamW iterations per optimisation.
    lr : float
        AdamW learning rate (standardised latent units).
    tolerance : float
        Stop once the loss is below ``tolerance`` times its starting value.
    resampling : float
        :math:`c` of :math:`\\gamma^2` (ReSample: 40).
    """

    start_fraction: float = 0.5
    every: int = 5
    iterations: int = 20
    lr: float = 1e-2
    tolerance: float = 1e-3
    resampling: float = 40.0

    def __post_init__(self):
        if not (0 <= self.start_fraction <= 1 and self.every >= 1 and self.iterations >= 1 and self.lr > 0):
            raise ValueError(
                "ReSampleConfig needs 0 <= start_fraction <= 1, every >= 1, iterations >= 1 and lr > 0, got "
                f"{self}"
            )


class ReSampleProjection:
    """The sampler's post-step hook implementing ReSample (module docstring).

    Parameters
    ----------
    terms : sequence of Term
        The measurement terms whose sum is minimised in the hard consistency step.
    config : ReSampleConfig, optional
        Settings.
    """

    def __init__(self, terms: Sequence[Term], config: ReSampleConfig | None = None):
        if not terms:
            raise ValueError("ReSample needs at least one measurement term for its hard data consistency")
        self.terms = tuple(terms)
        self.config = ReSampleConfig() if config is None else config

    def active(self, step: int, n_steps: int) -> bool:
        """Whether step ``step`` (0-based, of ``n_steps``) gets hard consistency."""
        last = step == n_steps - 1
        return last or (step >= self.config.start_fraction * n_steps and step % self.config.every == 0)

    def optimise(self, z: torch.Tensor, context: GuidanceState) -> torch.Tensor:
        r""":math:`\arg\min_z \sum_k L_k(D(z))` by AdamW from ``z``, per-sample losses summed."""
        z = z.detach().clone().requires_grad_(True)
        optimizer = torch.optim.AdamW([z], lr=self.config.lr, weight_decay=0.0)
        start = None
        with torch.enable_grad():
            for _ in range(self.config.iterations):
                state = GuidanceState(
                    x=z, denoised=z, sigma=context.sigma, step=context.step, n_steps=context.n_steps,
                    prior=context.prior, decode=context.decode, denoise=context.denoise,
                    generator=context.generator, through_denoiser=False, field_space=context.field_space,
                )
                loss = sum(term.loss(state).sum() for term in self.terms)
                value = float(loss.detach())
                start = value if start is None else start
                if value <= self.config.tolerance * start:
                    break
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return z.detach()

    def __call__(self, x: torch.Tensor, sigma: float, sigma_next: float, context: GuidanceState) -> torch.Tensor:
        """Hard consistency and resampling of the state ``x`` at ``sigma_next`` (reached from ``sigma``)."""
        if not self.active(context.step, context.n_steps):
            return x
        if sigma_next <= 0:
            return self.optimise(x, context)
        with torch.no_grad():
            anchor = context.denoise(x, sigma_next)
        z = self.optimise(anchor, context)
        gamma2 = self.config.resampling * sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
        mean = (gamma2 * z + sigma_next**2 * x) / (gamma2 + sigma_next**2)
        std = math.sqrt(gamma2 * sigma_next**2 / (gamma2 + sigma_next**2))
        noise = torch.randn(x.shape, generator=context.generator, dtype=x.dtype, device=context.generator.device)
        return mean + std * noise.to(x.device)
