r"""Fourier symbols on the periodic unit square, for real FFTs (``torch.fft.rfft2``).

The grid is the periodic cell grid :math:`x_i = i/S`, :math:`y_j = j/S`, ``i, j = 0..S-1``,
with dimension ``-2`` the ``x`` index and ``-1`` the ``y`` index. A field ``w`` of shape
``(..., S, S)`` has the half spectrum ``rfft2(w)`` of shape ``(..., S, S//2 + 1)``, in which
row ``p`` carries the integer wavenumber :math:`k_x = ` ``fftfreq(S) * S`` and column ``q``
carries :math:`k_y = q`. A mode :math:`e^{2\pi i (k_x x + k_y y)}` has

.. math:: \partial_x \mapsto 2\pi i k_x, \qquad -\Delta \mapsto 4\pi^2 (k_x^2 + k_y^2).

Every symbol returned here is a float64 or complex128 tensor of shape ``(S, S//2 + 1)``;
callers cast them once to the working dtype.
"""

from __future__ import annotations

import math

import torch


def wavenumbers(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer wavenumbers of the half spectrum, broadcast to ``(S, S//2 + 1)``.

    Parameters
    ----------
    resolution : int
        Grid size ``S`` (even).

    Returns
    -------
    kx, ky : torch.Tensor
        float64 tensors of shape ``(S, S//2 + 1)``: ``kx[p, q]`` in ``[-S/2, S/2)`` and
        ``ky[p, q] = q`` in ``[0, S/2]``.
    """
    s = resolution
    kx = (torch.fft.fftfreq(s, dtype=torch.float64, device="cpu") * s).round()
    ky = torch.arange(s // 2 + 1, dtype=torch.float64, device="cpu")
    return torch.broadcast_tensors(kx[:, None], ky[None, :])


def derivative_symbols(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Symbols :math:`2\pi i k_x` and :math:`2\pi i k_y` of the first derivatives.

    The Nyquist wavenumber :math:`|k| = S/2` is set to zero in the direction it belongs to: the
    mode :math:`\cos(\pi S x)` has the derivative :math:`-\pi S \sin(\pi S x)`, which vanishes at
    every grid point. This keeps the derivatives real and treats ``x`` and ``y`` identically,
    so transposes and reflections of the grid commute with them exactly.

    Parameters
    ----------
    resolution : int
        Grid size ``S`` (even).

    Returns
    -------
    dx, dy : torch.Tensor
        complex128 tensors of shape ``(S, S//2 + 1)``.
    """
    kx, ky = wavenumbers(resolution)
    nyquist = resolution / 2
    kx = torch.where(kx.abs() == nyquist, 0.0, kx)
    ky = torch.where(ky.abs() == nyquist, 0.0, ky)
    return 2j * math.pi * kx.to(torch.complex128), 2j * math.pi * ky.to(torch.complex128)


def neg_laplacian_symbol(resolution: int) -> torch.Tensor:
    r"""Symbol :math:`L = 4\pi^2 (k_x^2 + k_y^2)` of :math:`-\Delta`, float64 ``(S, S//2 + 1)``.

    ``L[0, 0] = 0`` (the mean mode); callers that divide by ``L`` must treat it themselves.
    """
    kx, ky = wavenumbers(resolution)
    return 4 * math.pi**2 * (kx**2 + ky**2)


def dealias_mask(resolution: int, fraction: float = 2.0 / 3.0) -> torch.Tensor:
    r"""Square de-aliasing mask: 1 where :math:`|k_x|, |k_y| \le` ``fraction`` :math:`\cdot S/2`.

    With ``fraction = 2/3`` this is Orszag's 2/3 rule for quadratic nonlinearities.

    Returns
    -------
    torch.Tensor
        float64 tensor of 0s and 1s, shape ``(S, S//2 + 1)``.
    """
    kx, ky = wavenumbers(resolution)
    cutoff = fraction * resolution / 2
    return ((kx.abs() <= cutoff) & (ky.abs() <= cutoff)).to(torch.float64)


def periodic_grid(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates ``(x, y)`` of the cell grid ``x_i = i/S``, each float64 ``(S, S)`` (``ij`` indexing)."""
    t = torch.arange(resolution, dtype=torch.float64, device="cpu") / resolution
    return torch.meshgrid(t, t, indexing="ij")
