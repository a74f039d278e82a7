"""Downsampling of stored fields to a coarser grid that keeps the grid's coordinates.

A field on ``S`` points per side becomes ``s`` points per side by ``y = P x P^T`` with a
``(s, S)`` restriction matrix ``P``:

- periodic grid (``x_i = i/S``): ``P`` picks every ``S/s``-th point (``s`` must divide ``S``), so
  the coarse point ``j`` sits at ``j/s``, exactly where it was;
- vertex grid (``x_i = i/(S-1)``): the coarse point ``j`` sits at ``j/(s-1)``. When ``s - 1``
  divides ``S - 1`` (e.g. 129 -> 65) that is every ``(S-1)/(s-1)``-th point, exactly; otherwise
  (e.g. 128 -> 64) ``P`` interpolates linearly between the two neighbouring fine points. The
  boundary points are kept exactly in both cases.
"""

from __future__ import annotations

import numpy as np
import torch


def restriction_matrix(grid: str, fine: int, coarse: int) -> np.ndarray:
    """The ``(coarse, fine)`` float64 matrix ``P`` of the module doc.

    Raises
    ------
    ValueError
        If ``coarse`` exceeds ``fine``, is below 2, or (periodic grid) does not divide ``fine``.
    """
    if isinstance(coarse, bool) or not isinstance(coarse, int) or not 2 <= coarse <= fine:
        raise ValueError(f"resolution must be an integer between 2 and the stored {fine}, got {coarse!r}")
    matrix = np.zeros((coarse, fine))
    if grid == "periodic":
        if fine % coarse:
            divisors = [d for d in range(2, fine + 1) if fine % d == 0]
            raise ValueError(
                f"a periodic field of {fine} points downsamples by an integer stride only: choose a resolution "
                f"dividing {fine}, one of {divisors}"
            )
        matrix[np.arange(coarse), np.arange(coarse) * (fine // coarse)] = 1.0
        return matrix
    for j in range(coarse):
        position = j * (fine - 1)
        left, remainder = divmod(position, coarse - 1)
        weight = remainder / (coarse - 1)
        matrix[j, left] = 1.0 - weight
        if remainder:
            matrix[j, left + 1] = weight
    return matrix


def downsample(field: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply ``P x P^T`` over the last two axes of ``field`` (``(..., S, S) -> (..., s, s)``)."""
    return matrix @ field @ matrix.T
