r"""A minimal deterministic EDM sampler (Heun's 2nd-order method, Karras et al. 2022, Algorithm 1).

Noise levels :math:`\sigma_i = (\sigma_\max^{1/\rho} + \tfrac{i}{N-1}(\sigma_\min^{1/\rho} -
\sigma_\max^{1/\rho}))^\rho`, :math:`i < N`, and :math:`\sigma_N = 0`; the probability-flow ODE
:math:`dx/d\sigma = (x - D(x, \sigma)) / \sigma` is integrated from
:math:`x_0 \sim N(0, \sigma_0^2 I)` with an Euler step corrected by the trapezoidal rule
(except into :math:`\sigma_N = 0`). Used for unconditional samples (prior quality figures);
guided posterior sampling lives in :mod:`pdeinv.sampling`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HeunConfig:
    """Schedule of the Heun sampler: ``steps`` noise levels from ``sigma_max`` to ``sigma_min`` (then 0)."""

    steps: int = 32
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self):
        if self.steps < 1 or not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need steps >= 1 and 0 < sigma_min < sigma_max, got {self}")


def edm_sigmas(config: HeunConfig, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``steps + 1`` noise levels, decreasing, ending in 0."""
    i = torch.arange(config.steps, dtype=torch.float64)
    inv_rho = 1.0 / config.rho
    frac = i / max(config.steps - 1, 1)
    sigmas = (config.sigma_max**inv_rho + frac * (config.sigma_min**inv_rho - config.sigma_max**inv_rho)) ** config.rho
    return torch.cat((sigmas, torch.zeros(1, dtype=torch.float64))).to(dtype)


@torch.no_grad()
def heun_sample(
    prior,
    n: int,
    generator: torch.Generator,
    resolution: int | None = None,
    config: HeunConfig = HeunConfig(),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Draw ``n`` unconditional normalised samples ``(n, C, S, S)`` from a prior's denoiser.

    Parameters
    ----------
    prior : FieldPrior
        Any prior (``denoise``, ``channels``, ``resolution``).
    n : int
        Number of samples.
    generator : torch.Generator
        Source of the initial noise (drawn on the CPU).
    resolution : int, optional
        Grid size ``S`` (default: the prior's training resolution).
    config : HeunConfig
        Noise schedule.
    dtype, device
        Precision and device of the samples.
    """
    size = prior.resolution if resolution is None else resolution
    sigmas = edm_sigmas(config).tolist()
    shape = (n, len(prior.channels), size, size)
    x = (torch.randn(shape, generator=generator, dtype=dtype) * sigmas[0]).to(device)
    for s_cur, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - prior.denoise(x, s_cur)) / s_cur
        x_next = x + (s_next - s_cur) * d
        if s_next > 0:
            d_next = (x_next - prior.denoise(x_next, s_next)) / s_next
            x_next = x + (s_next - s_cur) * (d + d_next) / 2
        x = x_next
    return x
