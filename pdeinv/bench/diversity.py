r"""Diversity of a set of posterior samples (particles) of one measurement.

For samples :math:`s_1, \dots, s_K` (``K >= 2``) of one field, flattened:

- mean pairwise relative distance
  :math:`\frac{1}{K(K-1)} \sum_{i \ne j} \|s_i - s_j\|_2 \,/\, \bar n`, with
  :math:`\bar n = \frac1K \sum_i \|s_i\|_2` (0 for identical samples; higher is more diverse);
- mean pairwise cosine similarity
  :math:`\frac{1}{K(K-1)} \sum_{i \ne j} \frac{\langle s_i, s_j\rangle}{\|s_i\| \|s_j\|}`
  (1 for identical samples; lower is more diverse), RLSD's diversity measure with the field
  itself as the feature (RLSD uses DINO features of images).
"""

from __future__ import annotations

import torch


def _check(samples: torch.Tensor) -> torch.Tensor:
    if not isinstance(samples, torch.Tensor) or samples.ndim < 3 or samples.shape[1] < 2:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"samples must be (n, K, ...) with K >= 2 samples per measurement, got {shape}")
    return samples.double().flatten(2)


def pairwise_relative_distance(samples: torch.Tensor) -> torch.Tensor:
    """Mean pairwise relative distance per measurement (module docstring): ``(n, K, ...)`` -> ``(n,)``."""
    flat = _check(samples)
    k = flat.shape[1]
    distances = torch.cdist(flat, flat)
    scale = flat.norm(dim=2).mean(1)
    return distances.sum((1, 2)) / (k * (k - 1)) / scale


def pairwise_cosine(samples: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity per measurement (module docstring): ``(n, K, ...)`` -> ``(n,)``."""
    flat = _check(samples)
    k = flat.shape[1]
    unit = flat / flat.norm(dim=2, keepdim=True)
    similarity = unit @ unit.transpose(1, 2)
    off_diagonal = similarity.sum((1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(1)
    return off_diagonal / (k * (k - 1))
