r"""The RBF kernel between particles and its median-heuristic bandwidth.

Particles come in ``G`` groups of ``N`` (one group per measurement); the kernel acts within a
group. For features :math:`f_i \in \mathbb R^F` of the particles of one group,
:math:`k_{ij} = \exp(-\|f_i - f_j\|^2 / h_i)` with one of two bandwidths:

- ``"per-particle"`` (RLSD's code): :math:`h_i = \operatorname{median}_{j \ne i} \|f_i - f_j\|^2 / \log(N - 1)`,
  each particle's own median distance to its :math:`N - 1` neighbours. At :math:`N = 2` the
  logarithm is 0, the bandwidth infinite and the kernel 1: the repulsion vanishes, so this
  bandwidth needs :math:`N \ge 3` (refused otherwise, instead of silently doing nothing).
- ``"pooled"``: SVGD's median heuristic over the group's pairs with :math:`\log(N + 1)` instead of
  :math:`\log N`, :math:`h = \operatorname{median}_{i<j} \|f_i - f_j\|^2 / \log(N + 1)`; finite for
  every :math:`N \ge 2` (at :math:`N = 2`, :math:`k_{12} = 1/3`).

The bandwidth is held fixed under differentiation (as in SVGD and RLSD's code). The repulsion
potential of particle :math:`i` is :math:`\log \sum_{j \ne i} k_{ij}` with the other particles held
fixed (the particle-guidance form), so descending it moves :math:`f_i` away from its neighbours:

.. math:: \nabla_{f_i} \log \sum_{j \ne i} k_{ij}
    = -\frac{2}{h_i} \sum_{j \ne i} \frac{k_{ij}}{\sum_{l \ne i} k_{il}} (f_i - f_j).
"""

from __future__ import annotations

import math

import torch

MIN_BANDWIDTH = 1e-12


def check_features(features: torch.Tensor, particles: int, per_group: int) -> torch.Tensor:
    """Return ``features`` ``(G * N, F)`` as ``(G, N, F)``, or raise a ValueError naming the mismatch.

    Parameters
    ----------
    features : torch.Tensor
        One feature vector per particle, ``(particles, F)``.
    particles : int
        Total number of particles ``G * N``.
    per_group : int
        Particles per group ``N`` (>= 2 for a kernel between particles).
    """
    if per_group < 2:
        raise ValueError(
            f"repulsion needs at least 2 particles per measurement, got {per_group}; "
            "use samples >= 2 or set the repulsion weight to 0"
        )
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(
            f"features must be a 2-D tensor (particles, F) with one row per particle, got {shape}; "
            "flatten each particle's features to one vector"
        )
    if features.shape[0] != particles or features.shape[1] < 1:
        raise ValueError(
            f"features have shape {tuple(features.shape)} but there are {particles} particles "
            f"({particles // per_group} measurements x {per_group}); the feature map must return "
            f"({particles}, F) with F >= 1"
        )
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values; check the feature map and the particles")
    return features.reshape(particles // per_group, per_group, -1)


def squared_distances(features: torch.Tensor, others: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`\|f_i - g_j\|^2` within each group: ``(G, N, F)`` x ``(G, N, F)`` -> ``(G, N, N)``."""
    others = features if others is None else others
    return (features[:, :, None, :] - others[:, None, :, :]).pow(2).sum(-1)


BANDWIDTHS = ("per-particle", "pooled")


def median_bandwidth(distances: torch.Tensor, kind: str = "pooled") -> torch.Tensor:
    r"""Median-heuristic bandwidth of squared distances ``(G, N, N)`` (module docstring), detached, >= 1e-12.

    ``"pooled"``: :math:`\text{median}_{i<j} d_{ij}^2 / \log(N + 1)` per group, ``(G, 1, 1)``;
    ``"per-particle"``: :math:`\text{median}_{j \ne i} d_{ij}^2 / \log(N - 1)` per particle, ``(G, N, 1)``.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or ``"per-particle"`` with fewer than 3 particles per group.
    """
    n = distances.shape[-1]
    if kind == "pooled":
        upper = torch.triu_indices(n, n, offset=1, device=distances.device)
        median = distances.detach()[:, upper[0], upper[1]].median(dim=1).values
        return (median / math.log(n + 1)).clamp_min(MIN_BANDWIDTH)[:, None, None]
    if kind != "per-particle":
        raise ValueError(f"unknown bandwidth {kind!r}; choose one of {BANDWIDTHS}")
    if n < 3:
        raise ValueError(
            f"the per-particle bandwidth median/log(N - 1) needs N >= 3 particles per measurement, got {n} "
            "(at N = 2 it is infinite and the repulsion vanishes); use samples >= 3 or bandwidth='pooled'"
        )
    off = ~torch.eye(n, dtype=torch.bool, device=distances.device)
    neighbours = distances.detach().sqrt()[:, off].reshape(distances.shape[0], n, n - 1)
    median = neighbours.median(dim=-1).values ** 2
    return (median / math.log(n - 1)).clamp_min(MIN_BANDWIDTH)[..., None]


def log_kernel_sum(features: torch.Tensor, bandwidth: str = "pooled") -> torch.Tensor:
    r"""Repulsion potential :math:`\log \sum_{j \ne i} k_{ij}` per particle, ``(G, N, F)`` -> ``(G, N)``.

    Differentiable in :math:`f_i` with the neighbours :math:`f_j` and the bandwidth held fixed.
    """
    scale = median_bandwidth(squared_distances(features), bandwidth)
    distances = squared_distances(features, features.detach())
    n = features.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    logits = (-distances / scale).masked_fill(eye, float("-inf"))
    return torch.logsumexp(logits, dim=-1)


def kernel_matrix(features: torch.Tensor, bandwidth: str = "pooled") -> torch.Tensor:
    """The RBF kernel :math:`k_{ij}` ``(G, N, N)`` of features ``(G, N, F)`` with the median bandwidth."""
    distances = squared_distances(features)
    return torch.exp(-distances / median_bandwidth(distances, bandwidth))
