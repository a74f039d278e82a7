r"""The prior contract shared by every denoiser in pdeinv.

A prior works on *normalised* fields: per channel ``c``,

.. math:: x_\text{physical} = \mu_c + s_c \, x_\text{normalised},

and its ``denoise(x, sigma)`` returns the posterior mean :math:`E[x_0 \mid x_0 + \sigma n]`,
:math:`n \sim N(0, I)`, of a normalised field ``x`` of shape ``(B, C, S, S)``.
The posterior sampler (``pdeinv.sampling``) relies only on this class's attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

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


class FieldPrior(nn.Module):
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
        mean = torch.zeros(n) if mean is None else torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.ones(n) if std is None else torch.as_tensor(std, dtype=torch.float32).reshape(-1)
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

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor | None:
        r""":math:`J_G v` for the Jacobian :math:`J_G` of the prior's Gaussian part, or ``None`` if it has none.

        :math:`\sigma^2 J_G = \operatorname{Cov}[x_0 \mid x_\sigma]` under that Gaussian, so
        Tweedie-covariance guidance can use it instead of differentiating the network ``M`` times.
        ``v`` is a normalised field direction ``(B, C, S, S)``; exact for a Gaussian prior.
        """
        return None
