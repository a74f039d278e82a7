r"""An exact prior with several modes: a mixture of isotropic Gaussians.

.. math:: p(x_0) = \sum_{k=1}^K \pi_k\, \mathcal N(x_0;\ \mu_k,\ s^2 I),

on normalised fields ``(C, S, S)``. Its denoiser is closed-form: with
:math:`x = x_0 + \sigma n` the noisy field is a mixture with variances :math:`s^2 + \sigma^2`, so

.. math:: D(x, \sigma) = E[x_0 \mid x] = \sum_k r_k(x)\, \Big(\mu_k + \frac{s^2}{s^2 + \sigma^2}(x - \mu_k)\Big),
    \qquad r_k(x) = \operatorname{softmax}_k\Big(\log \pi_k - \frac{\|x - \mu_k\|^2}{2 (s^2 + \sigma^2)}\Big).

Its posterior under a measurement is known exactly, which makes it the reference for checking
that a particle method covers several modes (``benchmarks/bench_repulsion.py``).
"""

from __future__ import annotations

import torch

from pdeinv.priors.base import FieldPrior, sigma_column


class GaussianMixturePrior(FieldPrior):
    """Exact denoiser of a mixture of isotropic Gaussians (module docstring).

    Parameters
    ----------
    means : torch.Tensor
        Component means :math:`\\mu_k`, ``(K, C, S, S)`` normalised units.
    component_std : float
        :math:`s \\ge 0`, the standard deviation of every component (0: point masses).
    weights : torch.Tensor, optional
        Mixture weights :math:`\\pi_k` ``(K,)``, positive; normalised to sum to one. Default uniform.
    channels : sequence of str, optional
        Channel names; default ``("field", ...)`` numbered when ``C > 1``.
    """

    def __init__(self, means: torch.Tensor, component_std: float = 0.1, weights: torch.Tensor | None = None,
                 channels=None):
        if not isinstance(means, torch.Tensor) or means.ndim != 4 or means.shape[-1] != means.shape[-2]:
            raise ValueError(f"means must be a tensor (K, C, S, S), got {getattr(means, 'shape', type(means))}")
        k, c, s = means.shape[0], means.shape[1], means.shape[-1]
        weights = torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,) or (weights <= 0).any():
            raise ValueError(f"weights must be {k} positive numbers (one per component), got {weights}")
        if not component_std >= 0:
            raise ValueError(f"component_std must be >= 0, got {component_std}")
        names = channels or (("field",) if c == 1 else tuple(f"field{i}" for i in range(c)))
        super().__init__(names, resolution=s)
        self.register_buffer("means", means.clone())
        self.register_buffer("log_weights", (weights / weights.sum()).log().to(means.dtype))
        self.component_std = float(component_std)

    def responsibilities(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities :math:`r_k(x)` of noisy fields ``(B, C, S, S)``: ``(B, K)``."""
        variance = (self.component_std**2 + sigma_column(sigma, x) ** 2).reshape(-1, 1)
        distances = (x.flatten(1)[:, None, :] - self.means.to(x).flatten(1)[None]).pow(2).sum(-1)
        return torch.softmax(self.log_weights.to(x)[None] - distances / (2 * variance), dim=1)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`E[x_0 \mid x_0 + \sigma n = x]`, ``(B, C, S, S)``."""
        column = sigma_column(sigma, x)
        shrink = self.component_std**2 / (self.component_std**2 + column**2)
        r = self.responsibilities(x, sigma)
        means = self.means.to(x)
        mixed_mean = torch.einsum("bk,kcij->bcij", r, means)
        return mixed_mean + shrink * (x - mixed_mean)
