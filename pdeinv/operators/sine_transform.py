r"""The orthonormal type-I discrete sine transform (DST-I), computed with the FFT.

For a vector :math:`x_1, \dots, x_n` the orthonormal DST-I is

.. math:: \hat x_p = \sqrt{\frac{2}{n + 1}} \sum_{j=1}^{n} x_j \sin\!\left(\frac{\pi j p}{n + 1}\right),
          \qquad p = 1, \dots, n.

Its matrix is symmetric and orthogonal, so the transform is its own inverse. The sine vectors
are the eigenvectors of the second difference with homogeneous Dirichlet ends,
:math:`(x_{j-1} - 2 x_j + x_{j+1}) / h^2` with :math:`x_0 = x_{n+1} = 0`, with eigenvalues
given by :func:`second_difference_eigenvalues`. That is why it diagonalises the 5-point
Laplacian on the interior of a vertex grid.

Two evaluations, both differentiable torch operations batched over all other dimensions:

- for :math:`n \le` ``MATRIX_MAX`` a product with the cached ``n x n`` sine matrix (one GEMM, the
  fastest at the grid sizes of the benchmarks);
- beyond, in :math:`O(n \log n)` from the real FFT of :math:`x` zero-padded to length
  :math:`2(n+1)`: with :math:`Y_p = \sum_{j=1}^{n} x_j e^{-2\pi i (j-1) p / (2(n+1))}`,
  :math:`\sum_j x_j \sin(\pi j p/(n+1)) = -\operatorname{Im}(e^{-i\pi p/(n+1)} Y_p)`.
"""

from __future__ import annotations

import functools
import math

import torch

MATRIX_MAX = 256  # largest length transformed by a dense matrix product


def dst1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Orthonormal DST-I of ``x`` along one dimension.

    Parameters
    ----------
    x : torch.Tensor
        Real floating tensor of any shape; the transform runs along ``dim`` (length ``n >= 1``).
    dim : int
        Dimension to transform.

    Returns
    -------
    torch.Tensor
        :math:`\hat x_p = \sqrt{2/(n+1)} \sum_j x_j \sin(\pi j p/(n+1))`, same shape and dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not a real floating tensor or has length 0 along ``dim``.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("dst1 expects a real floating-point torch.Tensor (float32 or float64)")
    n = x.shape[dim]
    if n < 1:
        raise ValueError(f"dst1 needs at least one sample along dim {dim}, got shape {tuple(x.shape)}")
    moved = x.movedim(dim, -1)
    if n <= MATRIX_MAX:
        return (moved @ sine_matrix(n, x.dtype, x.device)).movedim(-1, dim)
    spectrum = torch.fft.rfft(moved, n=2 * (n + 1), dim=-1)[..., 1 : n + 1]
    p = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    phase = torch.polar(torch.ones_like(p), -math.pi * p / (n + 1)).to(spectrum.dtype)
    return ((spectrum * phase).imag * (-math.sqrt(2.0 / (n + 1)))).movedim(-1, dim)


@functools.lru_cache(maxsize=16)
def sine_matrix(n: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    r"""The orthonormal DST-I matrix :math:`\sqrt{2/(n+1)} \sin(\pi j p / (n+1))`, ``(n, n)``, symmetric.

    Built in float64 and cached per ``(n, dtype, device)``; treat it as read-only.
    """
    j = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    return (torch.sin(math.pi * j[:, None] * j[None, :] / (n + 1)) * math.sqrt(2.0 / (n + 1))).to(dtype)


def dst1_2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DST-I along the last two dimensions (its own inverse).

    Parameters
    ----------
    x : torch.Tensor
        Real floating tensor ``(..., n1, n2)``.

    Returns
    -------
    torch.Tensor
        The separable transform, same shape and dtype as ``x``.
    """
    if x.shape[-1] <= MATRIX_MAX and x.shape[-2] <= MATRIX_MAX and x.is_floating_point() and x.ndim >= 2:
        return sine_matrix(x.shape[-2], x.dtype, x.device) @ x @ sine_matrix(x.shape[-1], x.dtype, x.device)
    return dst1(dst1(x, dim=-1), dim=-2)


def second_difference_eigenvalues(
    n: int, spacing: float, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> torch.Tensor:
    r"""Eigenvalues of the Dirichlet second difference, in DST-I order.

    The ``n x n`` matrix :math:`\operatorname{tridiag}(1, -2, 1) / h^2` has eigenvector
    :math:`\sin(\pi j p / (n+1))` for eigenvalue

    .. math:: \lambda_p = -\frac{4}{h^2} \sin^2\!\left(\frac{\pi p}{2 (n + 1)}\right), \qquad p = 1, \dots, n.

    Parameters
    ----------
    n : int
        Number of interior points.
    spacing : float
        Grid spacing ``h``.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Shape ``(n,)``, all negative, ordered by ``p``.

    Raises
    ------
    ValueError
        If ``n < 1`` or ``spacing <= 0``.
    """
    if n < 1 or spacing <= 0:
        raise ValueError(f"need n >= 1 interior points and a positive spacing, got n={n}, spacing={spacing}")
    p = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    values = -(4.0 / spacing**2) * torch.sin(math.pi * p / (2.0 * (n + 1))) ** 2
    return values.to(dtype=dtype, device=device)
