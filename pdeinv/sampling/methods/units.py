r"""From a publication's units to the sampler's: noise levels, per-step weights, data scales, grids.

The sampler runs the EDM probability flow on the prior's normalised fields (or standardised
latents), :math:`x = x_0 + \sigma n`, on the EDM grid :math:`\sigma_0 > \dots > \sigma_{N-1} > 0`.
Publications state their step sizes on other grids and other data scales; the functions here
are the only place those are converted.

**Variance-preserving (DDPM/DDIM) steps.** A DDPM state is :math:`x^{VP}_t = \sqrt{\bar\alpha_t}\,
x^{VE}` with :math:`\sigma_t^2 = (1 - \bar\alpha_t)/\bar\alpha_t`, so a guidance step taken in VP
coordinates, :math:`\Delta x^{VP} = -\zeta \nabla_{x^{VP}} L`, is in the sampler's coordinates

.. math:: \Delta x^{VE} = \frac{\Delta x^{VP}}{\sqrt{\bar\alpha_t}}
          = -\frac{\zeta}{\bar\alpha_t} \nabla_{x^{VE}} L = -\zeta (1 + \sigma_t^2) \nabla_{x^{VE}} L.

A linear-flow step (Align & Invert, :math:`x^{F}_t = (1-t) x^{VE}`, :math:`\sigma = t/(1-t)`)
likewise gives :math:`\Delta x^{VE} = -\eta (1 + \sigma)^2 \nabla_{x^{VE}} L`.

**Onto the EDM grid.** A publication's per-step weights :math:`v_t` on its own noise levels
:math:`s_t` are summed over the levels each EDM step covers,

.. math:: w_i = \sum_{t:\ \sigma_{i+1} < s_t \le \sigma_i} v_t \qquad (\sigma_N = 0),

so the guidance accumulated between two noise levels is the publication's; steps above
:math:`\sigma_0` (before the EDM sampler starts) are not taken.

**Data scales.** If a publication's state is :math:`x_p = x / c_x` and its residual
:math:`r_p = r / c_r` (:math:`c` the ratio of the sampler's unit to the publication's), a step
:math:`\Delta x_p = -\zeta \nabla_{x_p} \|r_p\|` is :math:`\Delta x = -\zeta\,(c_x^2/c_r) \nabla_x \|r\|`,
and the publication's noise level :math:`s` is :math:`c_x s` here.

**Grids.** A step :math:`w \nabla_x L` on an :math:`S \times S` grid moves the field, in function
space, by :math:`w/S^2` times a resolution-free amount (the denoiser spreads a point's gradient
over a correlation area of :math:`\propto S^2` pixels), and a norm loss over :math:`M` values
grows like :math:`\sqrt M`. A weight published for :math:`(S_p, M_p)` is used at :math:`(S, M)` as

.. math:: w = w_p \Big(\frac{S}{S_p}\Big)^2 \Big(\frac{M_p}{M}\Big)^{q},

:math:`q = 1/2` for a norm :math:`\|r\|`, :math:`q = 0` for a mean over the points (MSE, RMS, mean Huber).
"""

from __future__ import annotations

import math

import torch

DDPM_STEPS = 1000
DDPM_BETAS = (1e-4, 0.02)
GRID_EXPONENTS = {"norm": 0.5, "mean": 0.0}


def ddpm_alpha_bars(steps: int = DDPM_STEPS, betas: tuple[float, float] = DDPM_BETAS) -> torch.Tensor:
    r""":math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`, :math:`t = 1..T`, linear :math:`\beta`; ``(T,)``."""
    beta = torch.linspace(betas[0], betas[1], steps, dtype=torch.float64)
    return torch.cumprod(1.0 - beta, dim=0)


def ddpm_sigmas(steps: int = DDPM_STEPS, betas: tuple[float, float] = DDPM_BETAS, stride: int = 1) -> torch.Tensor:
    r"""Levels :math:`\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}` a DDPM/DDIM sampler visits, ``(T/stride,)``.

    ``stride`` > 1 is a DDIM sampler on every ``stride``-th DDPM level (ReSample: 500 of 1000).
    """
    alpha_bar = ddpm_alpha_bars(steps, betas)[stride - 1 :: stride]
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def flow_sigmas(steps: int) -> torch.Tensor:
    r"""Levels :math:`t/(1-t)` of a linear flow's Euler steps, ``t = linspace(1, 0, steps + 1)`` without 1 and 0."""
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[1:-1]
    return t / (1.0 - t)


def onto_edm_grid(levels: torch.Tensor, weights: torch.Tensor, edm: torch.Tensor) -> tuple[float, ...]:
    r"""Sum per-step weights ``weights`` at noise levels ``levels`` over the EDM intervals ``(edm[i+1], edm[i]]``.

    Parameters
    ----------
    levels, weights : torch.Tensor
        ``(T,)``: a publication's noise levels (already in the sampler's units) and its weight at each.
    edm : torch.Tensor
        The sampler's ``(N + 1,)`` noise levels, decreasing, last 0.

    Returns
    -------
    tuple of float
        ``N`` weights, one per EDM step.
    """
    edm = edm.to(torch.float64)
    out = []
    for high, low in zip(edm[:-1].tolist(), edm[1:].tolist()):
        inside = (levels > low) & (levels <= high)
        out.append(float(weights[inside].sum()))
    return tuple(out)


def vp_step_weights(
    zeta: float, edm: torch.Tensor, level_unit: float = 1.0, steps: int = DDPM_STEPS, stride: int = 1,
    alpha_bar_power: float = 0.0, betas: tuple[float, float] = DDPM_BETAS,
) -> tuple[float, ...]:
    r"""EDM per-step weights of a VP guidance step :math:`\zeta\,\bar\alpha_t^{p}\,\nabla_{x^{VP}} L` (module doc).

    Each VP step contributes :math:`\zeta \bar\alpha_t^{p} (1 + \sigma_t^2)` to the EDM step covering
    :math:`c_x \sigma_t`; the caller multiplies by :func:`step_scale` for the data units.

    Parameters
    ----------
    zeta : float
        The publication's step (DPS ``scale``, PSLD's :math:`\omega` and :math:`\gamma`, ReSample's ``scale``).
    edm : torch.Tensor
        The sampler's noise levels ``(N + 1,)``.
    level_unit : float
        :math:`c_x`, the sampler's unit over the publication's.
    steps, stride, betas
        The publication's DDPM schedule and the stride of its sampler (DDIM on every ``stride``-th level).
    alpha_bar_power : float
        :math:`p` (ReSample's step is :math:`\zeta\bar\alpha_t`: 1).
    """
    alpha_bar = ddpm_alpha_bars(steps, betas)[stride - 1 :: stride]
    sigma = ((1.0 - alpha_bar) / alpha_bar).sqrt()
    weights = zeta * alpha_bar**alpha_bar_power / alpha_bar
    return onto_edm_grid(level_unit * sigma, weights, edm)


def flow_step_weights(eta: float, paper_steps: int, edm: torch.Tensor, level_unit: float = 1.0) -> tuple[float, ...]:
    r"""EDM per-step weights of a linear-flow step :math:`\eta \nabla_{x^F} L / \max(\sigma, 1)` (Align & Invert).

    Each flow step contributes :math:`\eta (1 + \sigma)^2 / \max(\sigma, 1)` to the EDM step covering
    :math:`c_x \sigma` (``level_unit`` is :math:`c_x`).
    """
    sigma = flow_sigmas(paper_steps)
    weights = eta * (1.0 + sigma) ** 2 / sigma.clamp(min=1.0)
    return onto_edm_grid(level_unit * sigma, weights, edm)


def step_scale(state_unit: float, residual_unit: float) -> float:
    r""":math:`c_x^2 / c_r`: the factor on a publication's step whose state is ``x / c_x`` and residual ``r / c_r``."""
    if not (state_unit > 0 and residual_unit > 0):
        raise ValueError(f"unit ratios must be positive, got state {state_unit}, residual {residual_unit}")
    return state_unit**2 / residual_unit


def grid_factor(resolution: int, points: int, paper_resolution: int, paper_points: int, loss: str) -> float:
    r""":math:`(S/S_p)^2 (M_p/M)^q` (module docstring), ``loss`` ``"norm"`` or ``"mean"``."""
    if loss not in GRID_EXPONENTS:
        raise ValueError(f"loss must be one of {tuple(GRID_EXPONENTS)}, got {loss!r}")
    if min(resolution, points, paper_resolution, paper_points) < 1:
        raise ValueError("resolutions and point counts must be positive")
    return (resolution / paper_resolution) ** 2 * (paper_points / points) ** GRID_EXPONENTS[loss]


def check_positive(**values: float) -> None:
    """Raise a ValueError naming every parameter that is not a finite positive number."""
    bad = [f"{name}={value!r}" for name, value in values.items() if not (math.isfinite(value) and value > 0)]
    if bad:
        raise ValueError(f"need finite positive values, got {', '.join(bad)}")


def published_weights_missing(paper: str, key: tuple[str | None, str], table: dict, config: str) -> str:
    """The message for a task a paper publishes no weights for, naming those it does and the fix."""
    known = ", ".join(f"{pde} {kind}" for pde, kind in table)
    return (
        f"{paper} publishes weights for {known}, not for {key[0] or 'a problem without a known PDE'} {key[1]}; "
        f"pass solve(..., config={config}(...)) with the weights to use"
    )
