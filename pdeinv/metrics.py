r"""The error measure of every pdeinv table: the per-sample relative :math:`L^2` error.

.. math:: e_i = \frac{\|\hat x_i - x_i\|_2}{\|x_i\|_2}

over all values of sample ``i`` (channels and grid points), a fraction (not a percentage).
"""

from __future__ import annotations

import numpy as np
import torch

from pdeinv.errors import UsageError


def relative_l2(estimate: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> torch.Tensor:
    r"""Per-sample :math:`\|\hat x - x\|_2 / \|x\|_2` of ``(n, ...)`` tensors or arrays, ``(n,)``.

    Computed in float64 (float32 inputs are promoted; differentiable, so usable as a loss).

    Raises
    ------
    UsageError
        If the shapes differ or a sample of ``truth`` is zero everywhere (the error is undefined).

    Examples
    --------
    >>> import torch
    >>> from pdeinv.metrics import relative_l2
    >>> truth = torch.ones(2, 1, 4, 4)
    >>> relative_l2(1.1 * truth, truth)
    tensor([0.1000, 0.1000], dtype=torch.float64)
    """
    estimate, truth = torch.as_tensor(estimate), torch.as_tensor(truth)
    if estimate.shape != truth.shape or truth.ndim < 1:
        raise UsageError(
            f"estimate and truth must have the same shape (n, ...), got {tuple(estimate.shape)} and {tuple(truth.shape)}"
        )
    dtype = torch.promote_types(truth.dtype, torch.float64)
    truth = truth.to(dtype).reshape(truth.shape[0], -1)
    norm = truth.norm(dim=1)
    if bool((norm == 0).any()):
        raise UsageError("a true field is zero everywhere, so its relative L2 error is undefined")
    return (estimate.to(dtype).reshape(truth.shape) - truth).norm(dim=1) / norm
