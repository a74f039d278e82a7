r"""Batched (preconditioned) conjugate gradients for symmetric positive-definite operators on fields.

Solves :math:`H v = b` independently for every sample of a batch ``b`` of shape ``(B, ...)``;
inner products are taken per sample over all other dimensions, so each sample may carry its
own operator (e.g. its own noise level in :math:`H = C + \sigma^2 I`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CGConfig:
    """Stopping rule: relative residual :math:`\\lVert b - Hv\\rVert / \\lVert b\\rVert \\le` ``tol``
    for every sample, at most ``max_iter`` iterations. The tolerance used is never below 50 machine
    epsilons of the working dtype (6e-6 in float32), which float arithmetic could not certify."""

    tol: float = 1e-6
    max_iter: int = 2000


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


def conjugate_gradient(
    operator: Operator, b: torch.Tensor, config: CGConfig = CGConfig(), preconditioner: Operator | None = None
) -> torch.Tensor:
    """Solve ``operator(v) = b`` per sample by (preconditioned) conjugate gradients.

    Parameters
    ----------
    operator : callable
        Symmetric positive-definite map on tensors shaped like ``b``, acting per sample.
    b : torch.Tensor
        Right-hand sides ``(B, ...)``.
    config : CGConfig
        Tolerance and iteration cap.
    preconditioner : callable, optional
        Symmetric positive-definite approximation of the inverse of ``operator``.

    Raises
    ------
    RuntimeError
        If some sample has not converged after ``config.max_iter`` iterations.
    """
    tol = max(config.tol, 50 * torch.finfo(b.dtype).eps)
    precondition = preconditioner or (lambda r: r)
    v = torch.zeros_like(b)
    r = b.clone()
    z = precondition(r)
    p = z.clone()
    rz = _dot(r, z)
    b_norm = _dot(b, b).sqrt().clamp_min(torch.finfo(b.dtype).tiny)
    for _ in range(config.max_iter):
        if (_dot(r, r).sqrt() / b_norm).max() <= tol:
            return v
        hp = operator(p)
        alpha = rz / _dot(p, hp).clamp_min(torch.finfo(b.dtype).tiny)
        v = v + alpha * p
        r = r - alpha * hp
        z = precondition(r)
        rz_next = _dot(r, z)
        p = z + (rz_next / rz.clamp_min(torch.finfo(b.dtype).tiny)) * p
        rz = rz_next
    residual = float((_dot(r, r).sqrt() / b_norm).max())
    if residual <= tol:
        return v
    raise RuntimeError(
        f"conjugate gradients did not reach relative residual {tol:g} in {config.max_iter} iterations "
        f"(reached {residual:.3g}); raise CGConfig.max_iter or the tolerance, or use a larger sigma"
    )
