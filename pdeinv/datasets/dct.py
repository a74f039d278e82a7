"""The orthonormal type-II discrete cosine transform in torch (matrix form).

For a length-``S`` signal ``x``,

    X_k = w_k sum_{i=0}^{S-1} x_i cos(pi k (2 i + 1) / (2 S)),   w_0 = sqrt(1/S), w_k = sqrt(2/S),

which is MATLAB's ``dct`` and ``scipy.fft.dct(..., norm="ortho")``. The matrix ``D`` with rows
``D[k, i] = w_k cos(pi k (2 i + 1) / (2 S))`` is orthogonal, so the inverse (MATLAB's ``idct``)
is ``D^T``. The 2-D transforms act on the last two axes: ``dct2(x) = D x D^T``. The matrix form
costs ``O(S^3)`` per field, which is cheap for ``S <= 256`` and differentiable on any device.
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=16)
def dct_matrix(size: int, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` of shape ``(size, size)``, ``D[k, i]`` as in the module doc.

    The result is cached per ``(size, dtype, device)``; treat it as read-only.
    """
    if size < 1:
        raise ValueError(f"the DCT size must be a positive integer, got {size}")
    k = torch.arange(size, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * k * (2 * i + 1) / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] = math.sqrt(1.0 / size)
    return matrix.to(dtype=dtype, device=device)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes of ``x`` (shape ``(..., S, S)``)."""
    d = dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device)
    return d @ x @ d.T


def idct2(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (orthonormal DCT-III) over the last two axes of ``c``."""
    d = dct_matrix(c.shape[-1], dtype=c.dtype, device=c.device)
    return d.T @ c @ d
