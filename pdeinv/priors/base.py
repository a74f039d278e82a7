r"""The prior contract shared by every denoiser in pdeinv.

A prior works on *normalised* fields: per channel ``c``,

.. math:: x_\text{physical} = \mu_c + s_c \, x_\text{normalised},

and its ``denoise(x, sigma)`` returns the posterior mean :math:`E[x_0 \mid x_0 + \sigma n]`,
:math:`n \sim N(0, I)`, of a normalised field ``x`` of shape ``(B, C, S, S)``.
The posterior sampler (``pdeinv.sampling``) relies only on this class's attributes.

Every prior is a ``deepinv.models.Denoiser``: ``prior(x, sigma)`` is ``denoise`` in the same
*normalised* units (``x`` and ``sigma`` both in units of the per-channel ``std``), in the dtype of
``x`` (float32 or float64). deepinv's diffusion samplers (``DPS``, ``DiffPIR``) clip their
estimates to the image range :math:`[-1, 1]` or :math:`[0, 1]`; :meth:`FieldPrior.image_range`
gives the same prior in that convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from deepinv.models import Denoiser

from pdeinv.operators.base import check_field


def sigma_column(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``sigma`` as a ``(B, 1, 1, 1)`` tensor matching ``x``'s batch, device and dtype.

    Parameters
    ----------
    sigma : float or torch.Tensor
        A positive scalar, or one noise level per sample, shape ``(B,)``.
    x : torch.Tensor
        The field ``(B, C, S, S)`` the noise level belongs to.

    Raises
    ------
    ValueError
        If ``sigma`` is not positive and finite, or its shape is not ``()``, ``(1,)`` or ``(B,)``.
    """
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] not in (1, x.shape[0])):
        raise ValueError(
            f"sigma must be a float or a tensor of shape (batch,) = ({x.shape[0]},), got shape {tuple(s.shape)}"
        )
    if not torch.isfinite(s).all() or (s <= 0).any():
        raise ValueError("sigma must be positive and finite; use a small value such as 1e-3 instead of 0")
    return s.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)


def denoise_in_dtype(prior: FieldPrior, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """``prior.denoise`` of ``x`` computed in the prior's dtype and returned in ``x``'s; ``sigma`` scalar, ``(B,)`` or ``(B, 1, 1, 1)``."""
    dtype = prior.mean.dtype
    level = torch.as_tensor(sigma, dtype=dtype, device=x.device)
    level = level.reshape(-1) if level.numel() > 1 else level.reshape(())
    return prior.denoise(x.to(dtype), level).to(x.dtype)


class FieldPrior(Denoiser):
    r"""Base class of a prior on normalised ``(B, C, S, S)`` fields.

    Parameters
    ----------
    channels : sequence of str
        Channel names, e.g. ``("source", "solution")``.
    mean, std : sequence of float or torch.Tensor, optional
        Per-channel normalisation, physical = ``mean + std * normalised``; defaults 0 and 1.
    sigma_data : float
        Standard deviation of the normalised data, :math:`\sigma_\text{data}` of EDM.
    resolution : int
        Grid size ``S`` the prior was built or trained at.
    card : dict, optional
        Provenance and quality figures (see :mod:`pdeinv.priors.checkpoint`).

    Attributes
    ----------
    resolution_free : bool
        ``True`` when the denoiser is defined on functions and may be evaluated at any grid size
        (a function-space network), ``False`` when it is tied to ``resolution``.
    is_gaussian : bool
        ``True`` when the prior is itself Gaussian: :meth:`denoise` is linear in ``x`` and
        :meth:`gaussian_jvp` is its exact Jacobian (no network).
    """

    resolution_free = False
    is_gaussian = False

    def __init__(
        self,
        channels: Sequence[str],
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
        sigma_data: float = 1.0,
        resolution: int = 64,
        card: dict | None = None,
    ):
        super().__init__()
        self.channels = tuple(channels)
        n = len(self.channels)
        mean = torch.zeros(n, device="cpu") if mean is None else torch.as_tensor(mean, dtype=torch.float32, device="cpu").reshape(-1)
        std = torch.ones(n, device="cpu") if std is None else torch.as_tensor(std, dtype=torch.float32, device="cpu").reshape(-1)
        if mean.numel() != n or std.numel() != n:
            raise ValueError(
                f"mean and std need one value per channel ({n}: {self.channels}), got {mean.numel()} and {std.numel()}"
            )
        if (std <= 0).any():
            raise ValueError(f"std must be positive per channel, got {std.tolist()}")
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.sigma_data = float(sigma_data)
        self.resolution = int(resolution)
        self.card = dict(card or {})

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_field(x, channels=len(self.channels))
        shape = (1, -1, 1, 1)
        return self.mean.to(x).reshape(shape), self.std.to(x).reshape(shape)

    def to_physical(self, x: torch.Tensor) -> torch.Tensor:
        """Map a normalised field ``(B, C, S, S)`` to physical units: ``mean + std * x``."""
        mean, std = self._stats(x)
        return mean + std * x

    def to_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Map a physical field ``(B, C, S, S)`` to normalised units: ``(x - mean) / std``."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Posterior mean :math:`E[x_0 \mid x_0 + \sigma n = x]` of a normalised field ``(B, C, S, S)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement denoise(x, sigma)")

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor, *args, **kwargs) -> torch.Tensor:
        r"""deepinv's ``Denoiser`` call: :meth:`denoise` of a normalised ``(B, C, S, S)`` field in ``x``'s dtype.

        Parameters
        ----------
        x : torch.Tensor
            Noisy normalised field :math:`x_0 + \sigma n`, float32 or float64.
        sigma : float or torch.Tensor
            Noise standard deviation in normalised units: a scalar or one per sample (``(B,)``, or
            deepinv's ``(B, 1, 1, 1)``).
        """
        return denoise_in_dtype(self, x, sigma)

    def image_range(self, scale: float | None = None) -> ImageRangeDenoiser:
        """This prior in deepinv's image convention :math:`[-1, 1]`, for ``deepinv.sampling.DPS`` (see :class:`ImageRangeDenoiser`)."""
        return ImageRangeDenoiser(self, scale)

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor | None:
        r""":math:`J_G v` for the Jacobian :math:`J_G` of the prior's Gaussian part, or ``None`` if it has none.

        :math:`\sigma^2 J_G = \operatorname{Cov}[x_0 \mid x_\sigma]` under that Gaussian, so
        Tweedie-covariance guidance can use it instead of differentiating the network ``M`` times.
        ``v`` is a normalised field direction ``(B, C, S, S)``; exact for a Gaussian prior.
        """
        return None


class ImageRangeDenoiser(Denoiser):
    r"""A :class:`FieldPrior` in deepinv's image range: normalised fields :math:`z` shown as :math:`x = z / c`.

    deepinv's diffusion samplers clip denoised estimates to :math:`[-1, 1]`; with the default
    :math:`c = 4\sigma_\text{data}` (a 4-sigma range) a normalised field rarely reaches the clip.
    :math:`D_x(x, s) = D_z(c\,x, c\,s) / c`; :meth:`to_physical` maps :math:`x` back to physical
    units, :math:`\mu + s_c\, c\, x` per channel.

    Parameters
    ----------
    prior : FieldPrior
        The prior.
    scale : float, optional
        :math:`c`; default :math:`4\sigma_\text{data}`.
    """

    def __init__(self, prior: FieldPrior, scale: float | None = None):
        super().__init__()
        self.prior = prior
        self.scale = 4.0 * float(prior.sigma_data) if scale is None else float(scale)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Denoise ``x`` ``(B, C, S, S)`` at noise level ``sigma`` (both in image-range units)."""
        level = self.scale * torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return denoise_in_dtype(self.prior, self.scale * x, level) / self.scale

    def to_physical(self, x: torch.Tensor) -> torch.Tensor:
        """Image-range field ``(B, C, S, S)`` to physical units."""
        return self.prior.to_physical(self.scale * x)

    def from_physical(self, x: torch.Tensor) -> torch.Tensor:
        """Physical field ``(B, C, S, S)`` to the image range."""
        return self.prior.to_normalized(x) / self.scale
