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
from dataclasses import dataclass

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


# Particle methods (RLSD, DWGF) --------------------------------------------------------------------

SD_BETAS = (0.00085, 0.012)  # Stable Diffusion's "scaled_linear" schedule, 1000 training levels


def scaled_linear_alpha_bars(steps: int = DDPM_STEPS, betas: tuple[float, float] = SD_BETAS) -> torch.Tensor:
    r""":math:`\bar\alpha_t`, :math:`t = 0..T-1`, of the "scaled linear" schedule :math:`\beta_t = (\text{linspace}
    (\sqrt{\beta_0}, \sqrt{\beta_1}, T))^2` (Stable Diffusion), ``(T,)`` float64."""
    beta = torch.linspace(betas[0] ** 0.5, betas[1] ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - beta, dim=0)


def ddim_particle_levels(
    iterations: int, betas: tuple[float, float] = SD_BETAS, steps: int = DDPM_STEPS
) -> torch.Tensor:
    r"""The noise levels, one per iteration, that RLSD's and DWGF's code visits, ``(iterations,)`` float64.

    Both run ``DDIMScheduler.set_timesteps(K + 1)`` (``K`` iterations; the published ``num_steps = 999``
    gives 998) and take one optimiser step at each timestep but the last:
    :math:`t_k = (K - k)\lfloor T/(K+1) \rfloor + 1`, :math:`k = 0..K-1` (999, 998, ..., 2 for
    :math:`K = 998`), at level :math:`\sigma_t = \sqrt{(1 - \bar\alpha_t)/\bar\alpha_t}` (publication's
    latent units; VE form, see :func:`particle_units`).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations < steps:
        raise ValueError(f"iterations must be an integer in [1, {steps - 1}], got {iterations!r}")
    ratio = steps // (iterations + 1)
    timesteps = torch.arange(iterations, 0, -1) * ratio + 1
    alpha_bar = scaled_linear_alpha_bars(steps, betas)[timesteps]
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


@dataclass(frozen=True)
class ParticleUnits:
    r"""A particle method's publication settings in the sampler's units (:func:`particle_units`).

    Attributes
    ----------
    state_unit : float
        :math:`c_z = \sigma_\text{data}/s_z`: the sampler's state is :math:`c_z` times the publication's latent.
    image_weight : float
        :math:`(s_x/s_z)^2`: weight of a term on the data-space field (likelihood, coupling, autoencoder
        score) relative to a term on the state (score distillation, regulariser), see :func:`particle_units`.
    lr, lr_aux : float
        Adam learning rates of the state and of the data-space variable, sampler units.
    levels : tuple of float
        Noise levels, one per iteration, sampler units (``None``: the EDM grid of the configuration).
    field_unit : float
        :math:`\sigma_\text{data}/s_x`: a data-space quantity of the publication (decoder noise, initial
        spread of the data-space variable) in the sampler's units is this times the published one.
    """

    state_unit: float
    image_weight: float
    lr: float
    lr_aux: float
    levels: tuple[float, ...] | None
    field_unit: float


def particle_units(
    sigma_data: float, latent_std: float, data_std: float, lr: float, lr_aux: float, iterations: int,
    schedule: str = "ddpm", betas: tuple[float, float] = SD_BETAS,
) -> ParticleUnits:
    r"""RLSD's and DWGF's published settings in the sampler's units.

    **States.** The publications' latent :math:`z_p` has standard deviation :math:`s_z` (Stable
    Diffusion latents times 0.18215: 1), their images :math:`x_p` have :math:`s_x` (pixels in
    :math:`[-1, 1]`: 0.5); the sampler's state and fields are normalised to :math:`\sigma_\text{data}`. So
    :math:`z = c_z z_p` with :math:`c_z = \sigma_\text{data}/s_z` and :math:`x = c_x x_p` with
    :math:`c_x = \sigma_\text{data}/s_x`; a field-space prior's field is both.

    **Noise levels.** The code's VP state :math:`z^{VP}_t = \sqrt{\bar\alpha_t}\,z_p + \sqrt{1-\bar\alpha_t}\,
    \varepsilon` is :math:`\sqrt{\bar\alpha_t}` times the VE state :math:`z_p + \sigma_t \varepsilon`,
    :math:`\sigma_t^2 = (1-\bar\alpha_t)/\bar\alpha_t`; here the level is :math:`c_z \sigma_t`
    (:func:`ddim_particle_levels`).

    **Terms.** With :math:`\hat\varepsilon = \varepsilon_\theta(z^{VP}_t, t)` the code's distillation
    residual :math:`\hat\varepsilon - \varepsilon` carries the weight :math:`\sigma_t/\sqrt{\bar\alpha_t}`
    ("snr_inv"), so the surrogate's gradient is :math:`\sigma_t(\hat\varepsilon - \varepsilon) = z_p -
    D_\theta(z_{p,t})`, the denoiser residual in VE form; in the sampler's units
    :math:`(z - D_\theta(z_t))/c_z`, and a term :math:`\overline{\mathrm{sg}[g_p] \cdot z_p}` becomes
    :math:`c_z^{-2}\,\overline{\mathrm{sg}[g] \cdot z}`. A term on images, :math:`\tfrac12 \overline{(x_p - \dots)^2}`
    or :math:`\overline{x_p \cdot \mathrm{sg}[c_p]}`, becomes :math:`c_x^{-2}` times the same expression in
    the sampler's fields. Adam is invariant to a common factor of all terms, so what the
    conversion must keep is their ratio: image terms weigh :math:`c_z^2/c_x^2 = (s_x/s_z)^2` (0.25)
    relative to state terms (``image_weight``).

    **Steps.** Adam moves each coordinate by about ``lr`` in its own units: the state's rate is
    :math:`c_z\,\text{lr}`, the data-space variable's :math:`c_x\,\text{lr}_x`.

    Parameters
    ----------
    sigma_data : float
        The prior's data standard deviation (state units).
    latent_std, data_std : float
        :math:`s_z` and :math:`s_x`.
    lr, lr_aux : float
        Published Adam learning rates of the latent and of the data-space variable.
    iterations : int
        Optimiser iterations.
    schedule : {"ddpm", "edm"}
        ``"ddpm"``: the publications' levels (:func:`ddim_particle_levels`); ``"edm"``: levels left to
        the caller's EDM grid (``levels`` is ``None``).
    betas : tuple of float
        The publications' "scaled linear" beta range.
    """
    check_positive(sigma_data=sigma_data, latent_std=latent_std, data_std=data_std, lr=lr, lr_aux=lr_aux)
    if schedule not in PARTICLE_SCHEDULES:
        raise ValueError(f"schedule must be one of {PARTICLE_SCHEDULES}, got {schedule!r}")
    c_z, c_x = sigma_data / latent_std, sigma_data / data_std
    levels = None
    if schedule == "ddpm":
        levels = tuple((c_z * ddim_particle_levels(iterations, betas)).tolist())
    return ParticleUnits(c_z, (c_z / c_x) ** 2, c_z * lr, c_x * lr_aux, levels, c_x)


PARTICLE_SCHEDULES = ("ddpm", "edm")
