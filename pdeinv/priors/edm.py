r"""EDM preconditioning and training loss (Karras et al. 2022, "Elucidating the design space").

A backbone :math:`F_\theta(x_\text{in}, c_\text{noise})` becomes the denoiser

.. math::

    D(x, \sigma) = c_\text{skip}(\sigma)\, x + c_\text{out}(\sigma)\,
                   F_\theta\big(c_\text{in}(\sigma)\, x,\; c_\text{noise}(\sigma)\big),

    c_\text{skip} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\quad
    c_\text{out} = \frac{\sigma \sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_\text{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_\text{noise} = \tfrac14 \ln \sigma,

With a fitted Gaussian base :math:`G(x, \sigma)` (the per-mode Wiener denoiser of
:mod:`pdeinv.priors.spectral_gaussian`) the skip path is replaced by it,

.. math:: D(x, \sigma) = G(x, \sigma) + c_\text{out}(\sigma)\,
          F_\theta\big(c_\text{in}(\sigma)\, x,\; c_\text{noise}(\sigma)\big),

so the network learns only what the best linear (Gaussian) denoiser misses; with the backbone's
zero-initialised output layer training starts from :math:`D = G`.
With ``residual="posterior"`` the scalar :math:`c_\text{out}` becomes the base's posterior
standard deviation per mode, :math:`R_\sigma` with :math:`R_\sigma^2 = \operatorname{Cov}_G[x_0 \mid x]`,

.. math:: D(x, \sigma) = G(x, \sigma) + R_\sigma\,
          F_\theta\big(c_\text{in}(\sigma)\, x,\; c_\text{noise}(\sigma)\big),

which is :math:`c_\text{out}` for white data and otherwise gives every mode the network's output
in units of what the base leaves uncertain there: a mode the data barely excite (the fine scales of
a viscous flow) cannot receive more than its own posterior spread.

Both are trained with :math:`\ln \sigma \sim N(P_\text{mean}, P_\text{std}^2)` and the weighted loss
:math:`\lambda(\sigma) \lVert D(x_0 + \sigma n, \sigma) - x_0 \rVert^2`,
:math:`\lambda(\sigma) = (\sigma^2 + \sigma_d^2) / (\sigma \sigma_d)^2`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pdeinv.operators.base import check_field
from pdeinv.priors.base import FieldPrior, sigma_column


RESIDUALS = ("edm", "posterior")


@dataclass(frozen=True)
class EDMConfig:
    """Preconditioning and training-noise parameters.

    Parameters
    ----------
    sigma_data : float
        Standard deviation of the normalised data (1.0 for per-channel standardised fields).
    p_mean, p_std : float
        Mean and standard deviation of :math:`\\ln \\sigma` during training.
    """

    sigma_data: float = 1.0
    p_mean: float = -1.2
    p_std: float = 1.2


@dataclass(frozen=True)
class EDMCoefficients:
    """The four preconditioning coefficients, each shaped like the ``sigma`` they came from."""

    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> EDMCoefficients:
    r"""Preconditioning coefficients :math:`c_\text{skip}, c_\text{out}, c_\text{in}, c_\text{noise}` at ``sigma``."""
    total = sigma**2 + sigma_data**2
    return EDMCoefficients(
        c_skip=sigma_data**2 / total,
        c_out=sigma * sigma_data / total.sqrt(),
        c_in=total.rsqrt(),
        c_noise=sigma.log() / 4,
    )


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    r"""Loss weight :math:`\lambda(\sigma) = (\sigma^2 + \sigma_d^2) / (\sigma \sigma_d)^2`."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_training_sigma(n: int, config: EDMConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw ``n`` noise levels with :math:`\ln \sigma \sim N(P_\text{mean}, P_\text{std}^2)`, shape ``(n,)``."""
    return (config.p_mean + config.p_std * torch.randn(n, generator=generator)).exp()


def edm_loss(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    sigma_data: float,
) -> torch.Tensor:
    r"""Mean weighted denoising loss :math:`\lambda(\sigma) (D(x_0 + \sigma n, \sigma) - x_0)^2` over all entries.

    Parameters
    ----------
    denoiser : callable
        ``D(x, sigma)`` (an :class:`EDMDenoiser`, possibly wrapped in DistributedDataParallel).
    x0 : torch.Tensor
        Clean normalised fields ``(B, C, S, S)``.
    sigma : torch.Tensor
        Noise levels ``(B,)``.
    noise : torch.Tensor
        Standard normal draws shaped like ``x0``.
    sigma_data : float
        :math:`\sigma_d` of the loss weight.
    """
    s = sigma.reshape(-1, 1, 1, 1)
    residual = denoiser(x0 + s * noise, sigma) - x0
    return (edm_loss_weight(s, sigma_data) * residual.float() ** 2).mean()


class EDMDenoiser(FieldPrior):
    r"""A backbone :math:`F(x_\text{in}, c_\text{noise})` preconditioned into the EDM denoiser :math:`D(x, \sigma)`.

    Parameters
    ----------
    backbone : nn.Module
        Called as ``backbone(x_in, c_noise)`` with ``x_in`` of shape ``(B, C, S, S)`` and
        ``c_noise`` of shape ``(B,)``; returns ``(B, C, S, S)``.
    config : EDMConfig
        :math:`\sigma_d` and the training-noise distribution.
    channels : sequence of str
        Channel names.
    mean, std : sequence of float, optional
        Per-channel normalisation (physical = mean + std * normalised).
    resolution : int
        Training resolution ``S``.
    card : dict, optional
        Provenance (see :mod:`pdeinv.priors.checkpoint`).
    base : nn.Module, optional
        Gaussian base ``G(x, sigma)`` replacing the skip path (module docstring); it must be
        resolution-free for the prior to be.
    residual : {"edm", "posterior"}
        Scale of the network's output: EDM's :math:`c_\text{out}`, or the base's per-mode posterior
        standard deviation ``base.posterior_sqrt`` (needs a base).

    Attributes
    ----------
    autocast_dtype : torch.dtype or None
        Mixed precision for the backbone alone on CUDA (e.g. ``torch.bfloat16``): the network runs
        under ``torch.autocast`` and its output is cast back, while the preconditioning, the
        Gaussian base and all guidance stay in the field's dtype. ``None`` (default) or a CPU
        field: full precision.

    Raises
    ------
    ValueError
        For an unknown ``residual``, or ``"posterior"`` without a base.
    """

    def __init__(
        self,
        backbone: nn.Module,
        config: EDMConfig = EDMConfig(),
        *,
        channels: Sequence[str],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        resolution: int = 64,
        card: dict | None = None,
        base: nn.Module | None = None,
        residual: str = "edm",
    ):
        super().__init__(channels, mean, std, config.sigma_data, resolution, card)
        if residual not in RESIDUALS:
            raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
        if residual == "posterior" and base is None:
            raise ValueError(
                "residual='posterior' scales the network by the Gaussian base's posterior std; it needs a base"
            )
        self.residual = residual
        self.autocast_dtype: torch.dtype | None = None
        self.backbone = backbone
        self.config = config
        self.base = base
        parts = (backbone,) if base is None else (backbone, base)
        self.resolution_free = all(getattr(part, "resolution_free", False) for part in parts)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``D(x, sigma)`` for a normalised noisy field ``(B, C, S, S)`` and ``sigma`` float or ``(B,)``."""
        s = sigma_column(sigma, x)
        c = edm_coefficients(s, self.sigma_data)
        mixed = self.autocast_dtype is not None and x.device.type == "cuda"
        with torch.autocast("cuda", dtype=self.autocast_dtype or torch.bfloat16, enabled=mixed):
            out = self.backbone(c.c_in * x, c.c_noise.reshape(-1))
        out = out.to(x.dtype)
        skip = c.c_skip * x if self.base is None else self.base(x, s.reshape(-1))
        if self.residual == "posterior":
            return skip + self.base.posterior_sqrt(out, s.reshape(-1))
        return skip + c.c_out * out

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor | None:
        r""":math:`W_\sigma v`, the Jacobian of the Gaussian base (``None`` without one)."""
        return None if self.base is None else self.base.linear(v, sigma)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Posterior-mean estimate :math:`E[x_0 \mid x]`; validates ``x`` then applies :meth:`forward`."""
        check_field(x, channels=len(self.channels), name="x")
        return self(x, sigma)


class GaussianPart(FieldPrior):
    r"""The fitted Gaussian base of an :class:`EDMDenoiser` as a prior on its own (the network switched off).

    :math:`D(x, \sigma) = G(x, \sigma)`, the per-mode Wiener denoiser fitted to the training data,
    with the same normalisation, channels and card. For data that are themselves Gaussian (the
    Helmholtz sources of the benchmark protocol) this is close to the exact prior, and comparing
    it with the full network measures what the network adds.

    Raises
    ------
    ValueError
        If the denoiser was trained without a Gaussian base.
    """

    resolution_free = True
    is_gaussian = True

    def __init__(self, denoiser: EDMDenoiser):
        if denoiser.base is None:
            raise ValueError("this prior was trained without a Gaussian base (--gaussian-base none); it has no Gaussian part")
        super().__init__(denoiser.channels, denoiser.mean, denoiser.std, denoiser.sigma_data, denoiser.resolution,
                         denoiser.card)
        self.base = denoiser.base

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S) -> (B, C, S, S)``: the Wiener estimate of the fitted base."""
        check_field(x, channels=len(self.channels), name="x")
        return self.base(x, sigma_column(sigma, x).reshape(-1))

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor:
        """The base's filter, exactly the Jacobian of :meth:`denoise`."""
        return self.base.linear(v, sigma)


class GaussianAboveLevel(FieldPrior):
    r"""A trained prior whose network is replaced by its fitted Gaussian part at high noise levels.

    .. math::

        D(x, \sigma) = \begin{cases} G(x, \sigma) & \sigma \ge \sigma_s \\
                                      D_\theta(x, \sigma) & \sigma < \sigma_s \end{cases}

    with :math:`G` the per-mode Wiener denoiser of :class:`GaussianPart`. As :math:`\sigma` grows the
    posterior mean of any law with finite second moments tends to the Wiener filter of its mean and
    covariance, so above some level the network adds nothing that :math:`G` lacks, and levels there
    cost no network evaluation. Where that level lies is a measured property of each prior and task.

    Parameters
    ----------
    denoiser : EDMDenoiser
        A prior trained with a Gaussian base.
    level : float
        :math:`\sigma_s > 0` (normalised units).

    Attributes
    ----------
    network_calls, gaussian_calls : int
        Evaluations of the network and of the Gaussian part so far (a batch mixing levels on both sides
        counts once in each).
    """

    def __init__(self, denoiser: EDMDenoiser, level: float):
        if not level > 0:
            raise ValueError(f"the switching level must be a noise level > 0, got {level!r}")
        super().__init__(denoiser.channels, denoiser.mean, denoiser.std, denoiser.sigma_data, denoiser.resolution,
                         denoiser.card)
        self.network, self.gaussian = denoiser, GaussianPart(denoiser)
        self.resolution_free = denoiser.resolution_free
        self.level = float(level)
        self.network_calls = self.gaussian_calls = 0

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S) -> (B, C, S, S)``: the Gaussian part where ``sigma >= level``, the network elsewhere."""
        sigmas = sigma_column(sigma, x).reshape(-1)
        high = sigmas >= self.level
        if bool(high.all()):
            self.gaussian_calls += 1
            return self.gaussian.denoise(x, sigma)
        self.network_calls += 1
        out = self.network.denoise(x, sigma)
        if not bool(high.any()):
            return out
        self.gaussian_calls += 1
        return torch.where(high.reshape(-1, 1, 1, 1), self.gaussian.denoise(x, sigma), out)

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor:
        """The Gaussian part's filter (the network's own Gaussian part below the level too)."""
        return self.gaussian.gaussian_jvp(v, sigma)

    @property
    def network_share(self) -> float:
        """Fraction of the evaluations so far that ran the network (1 before any)."""
        total = self.network_calls + self.gaussian_calls
        return 1.0 if total == 0 else self.network_calls / total


def gaussian_above(prior, level: float):
    r"""``prior`` with its fitted Gaussian part at the noise levels ``>= level`` and its network below
    (:class:`GaussianAboveLevel`), keeping an operator-consistent wrapper (``prior.with_prior``) if it has one.

    Parameters
    ----------
    prior : EDMDenoiser or OperatorConsistentPrior
        A trained prior with a Gaussian base, as :func:`pdeinv.priors.load` returns it.
    level : float
        The switching noise level :math:`\sigma_s > 0` (normalised units).
    """
    return _inside_wrapper(prior, lambda network: GaussianAboveLevel(network, level))


def gaussian_part(prior):
    """``prior``'s fitted Gaussian base alone (:class:`GaussianPart`), keeping an operator-consistent
    wrapper (``prior.with_prior``) if it has one."""
    return _inside_wrapper(prior, GaussianPart)


def _inside_wrapper(prior, replace: Callable):
    """``replace(prior)``, or for a wrapper with ``prior.prior`` and ``with_prior`` the same wrapper around
    ``replace(prior.prior)``."""
    inner = getattr(prior, "prior", None)
    if inner is not None and hasattr(prior, "with_prior"):
        return prior.with_prior(replace(inner))
    return replace(prior)
