r"""The discrete Darcy-flow solution operator :math:`a \mapsto u` on the unit square.

Equation and grid
-----------------
On the vertex grid with ``S`` points per side, :math:`x_i = i / (S - 1)`, spacing
:math:`h = 1 / (S - 1)` (``field[..., i, j]`` at :math:`(x_i, y_j)`), the pressure :math:`u` solves

.. math:: -\nabla \cdot (a \nabla u) = f \ \text{in } (0, 1)^2, \qquad u = 0 \ \text{on the boundary},

with permeability :math:`a > 0` and forcing :math:`f` (default :math:`f = 1`, the FNO /
DiffusionPDE Darcy problem).

Discretisation
--------------
Five-point flux (finite-volume) form at every interior node :math:`(i, j)`:

.. math:: -\frac{1}{h^2} \Big[ a_{i+\frac12,j} (u_{i+1,j} - u_{ij}) - a_{i-\frac12,j} (u_{ij} - u_{i-1,j})
          + a_{i,j+\frac12} (u_{i,j+1} - u_{ij}) - a_{i,j-\frac12} (u_{ij} - u_{i,j-1}) \Big] = f_{ij},

where each face coefficient is the arithmetic mean of its two nodes,
:math:`a_{i+\frac12,j} = (a_{ij} + a_{i+1,j}) / 2`, and :math:`u = 0` at the boundary nodes. For
smooth :math:`a` and :math:`u` the truncation error is :math:`O(h^2)` (the arithmetic mean is a
second-order approximation of :math:`a` at the face midpoint and the flux difference is centred),
so the discrete solution converges at second order in the maximum norm. For the binary
permeability of the benchmark the coefficient jumps across the interfaces and the scheme is
first order there, as every scheme of this type is.

Written as :math:`K(a)\,u = f` on the :math:`(S-2)^2` interior unknowns, :math:`K(a)` is
symmetric, positive definite for :math:`a > 0`, and linear in :math:`a`:

.. math:: v^\top K(a)\, u = \sum_{\text{faces } (p, q)} \frac{a_p + a_q}{2 h^2}\,(v_q - v_p)(u_q - u_p)

(``u``, ``v`` extended by zero to the boundary). The values of :math:`a` on the boundary enter
through the faces between boundary and interior nodes.

Solver and gradient
-------------------
:meth:`Darcy.A` assembles :math:`K(a)` for every sample and factorises it with a sparse LU
(SuperLU, minimum-degree ordering of :math:`K + K^\top`, symmetric mode without pivoting, which
is stable for a symmetric positive definite matrix) in float64. The map is nonlinear in
:math:`a`; for a loss :math:`L(u)` the adjoint state :math:`u^* = K^{-1} \partial L / \partial u`
(one more solve with the same factors, :math:`K` being symmetric) gives

.. math:: \frac{\partial L}{\partial a_n} = -\,u^{*\top} \frac{\partial K}{\partial a_n} u
          = -\sum_{\text{faces } (p, q) \ni n} \frac{1}{2 h^2} (u^*_q - u^*_p)(u_q - u_p).
"""

from __future__ import annotations

import deepinv as dinv
import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch
import torch.nn.functional as F

from pdeinv.operators.base import check_field
from pdeinv.operators.symmetry import SymmetryGroup, dihedral_group
from pdeinv.pdes.darcy import DARCY_FORCING

PERMC_SPEC = "MMD_AT_PLUS_A"


def _interior_index(resolution: int) -> np.ndarray:
    """``(S, S)`` int array: the unknown's number at each interior node, -1 on the boundary."""
    index = -np.ones((resolution, resolution), dtype=np.int64)
    n = resolution - 2
    index[1:-1, 1:-1] = np.arange(n * n).reshape(n, n)
    return index


def darcy_matrix(a: np.ndarray, spacing: float) -> sparse.csc_matrix:
    r"""The interior matrix :math:`K(a)` of the flux form (module docstring), ``(S-2)^2`` square, CSC.

    Parameters
    ----------
    a : numpy.ndarray
        Permeability at the ``S x S`` grid nodes (boundary included), float64, positive.
    spacing : float
        Grid spacing ``h``.

    Returns
    -------
    scipy.sparse.csc_matrix
        Symmetric :math:`K(a)`, unknowns numbered row-major over the interior nodes.
    """
    index = _interior_index(a.shape[-1])
    rows, cols, values = [], [], []
    for axis in (0, 1):
        first = [slice(None), slice(None)]
        second = [slice(None), slice(None)]
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        p, q = index[tuple(first)].ravel(), index[tuple(second)].ravel()
        c = 0.5 * (a[tuple(first)] + a[tuple(second)]).ravel() / spacing**2
        for r, s, sign in ((p, p, 1.0), (q, q, 1.0), (p, q, -1.0), (q, p, -1.0)):
            keep = (r >= 0) & (s >= 0)
            rows.append(r[keep])
            cols.append(s[keep])
            values.append(sign * c[keep])
    n = (a.shape[-1] - 2) ** 2
    matrix = sparse.coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return matrix.tocsc()


def face_sensitivity(v: torch.Tensor, u: torch.Tensor, spacing: float) -> torch.Tensor:
    r""":math:`\partial (v^\top K(a) u) / \partial a_n` at every node, for fields zero on the boundary.

    Parameters
    ----------
    v, u : torch.Tensor
        ``(..., S, S)`` fields that vanish on the boundary.
    spacing : float
        Grid spacing ``h``.

    Returns
    -------
    torch.Tensor
        ``(..., S, S)``: :math:`\sum_{\text{faces } (p,q) \ni n} (v_q - v_p)(u_q - u_p) / (2h^2)`.
    """
    fx = (v[..., 1:, :] - v[..., :-1, :]) * (u[..., 1:, :] - u[..., :-1, :])
    fy = (v[..., :, 1:] - v[..., :, :-1]) * (u[..., :, 1:] - u[..., :, :-1])
    total = fx.new_zeros(fx.shape[:-2] + (fy.shape[-2], fx.shape[-1]))
    total[..., :-1, :] += fx
    total[..., 1:, :] += fx
    total[..., :, :-1] += fy
    total[..., :, 1:] += fy
    return total / (2.0 * spacing**2)


def flux_divergence(a: torch.Tensor, u: torch.Tensor, spacing: float) -> torch.Tensor:
    r""":math:`-\nabla_h \cdot (a \nabla_h u)` of the flux form at the interior nodes, ``(..., S-2, S-2)``.

    The boundary values of ``u`` enter the stencil of the adjacent interior nodes as Dirichlet
    data. Differentiable in both ``a`` and ``u``.
    """
    ax = 0.5 * (a[..., 1:, :] + a[..., :-1, :])
    ay = 0.5 * (a[..., :, 1:] + a[..., :, :-1])
    flux_x = ax * (u[..., 1:, :] - u[..., :-1, :])
    flux_y = ay * (u[..., :, 1:] - u[..., :, :-1])
    divergence = (flux_x[..., 1:, 1:-1] - flux_x[..., :-1, 1:-1]) + (flux_y[..., 1:-1, 1:] - flux_y[..., 1:-1, :-1])
    return -divergence / spacing**2


class _DarcySolve(torch.autograd.Function):
    """``u = A(a)`` with the adjoint-state gradient (module docstring); one factorisation per sample."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, operator: Darcy) -> torch.Tensor:
        u, factors = operator._solve(a, keep_factors=True)
        ctx.operator, ctx.factors = operator, factors
        ctx.save_for_backward(u)
        return u

    @staticmethod
    def backward(ctx, grad_u: torch.Tensor):
        (u,) = ctx.saved_tensors
        grad_a = ctx.operator._pull_back(ctx.factors, u, grad_u[None])[0]
        return grad_a, None


class Darcy(dinv.physics.Physics):
    r"""Solution operator :math:`A: a \mapsto u` of :math:`-\nabla \cdot (a \nabla u) = f`, :math:`u|_{\partial\Omega} = 0`.

    See the module docstring for the discretisation (second order for smooth coefficients), the
    sparse direct solver and the adjoint gradient.

    Parameters
    ----------
    resolution : int
        Grid points per side ``S`` (boundary included), ``S >= 3``; spacing ``h = 1/(S-1)``.
    forcing : float or torch.Tensor
        :math:`f`: a constant (default 1) or an ``(S, S)`` tensor of nodal values (only the
        interior values enter).
    noise_model : deepinv.physics.NoiseModel, optional
        Noise added by ``physics(a)``; ``None`` means no noise.

    Notes
    -----
    Fields are ``(B, C, S, S)`` float32/float64 tensors on any device; every channel is solved
    independently in float64 on the CPU and the result has the input's dtype and device. The
    permeability must be finite and positive (a ``ValueError`` names the offending minimum).
    ``symmetries`` is D4 for a constant forcing (the flux stencil, the arithmetic face mean and
    the boundary condition are invariant under the rotations and reflections of the square);
    for a forcing tensor it is the subgroup of D4 that fixes the forcing.
    """

    def __init__(self, resolution: int, forcing: float | torch.Tensor = DARCY_FORCING, noise_model=None):
        super().__init__(noise_model=noise_model)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 3:
            raise ValueError(
                f"resolution must be an int S >= 3 (grid points per side, boundary included), got {resolution!r}"
            )
        self.resolution = resolution
        self.spacing = 1.0 / (resolution - 1)
        self.forcing = self._forcing_field(forcing)
        self.symmetries = self._symmetry_group()

    def _forcing_field(self, forcing) -> np.ndarray:
        """The interior forcing values ``(S-2, S-2)`` float64."""
        s = self.resolution
        if isinstance(forcing, torch.Tensor):
            if tuple(forcing.shape) != (s, s) or not torch.isfinite(forcing).all():
                raise ValueError(f"forcing must be a finite ({s}, {s}) tensor, got shape {tuple(forcing.shape)}")
            return forcing.detach().to(torch.float64).cpu().numpy()[1:-1, 1:-1].copy()
        if isinstance(forcing, bool) or not isinstance(forcing, (int, float)) or not np.isfinite(forcing):
            raise ValueError(f"forcing must be a finite number or an ({s}, {s}) tensor, got {forcing!r}")
        return np.full((s - 2, s - 2), float(forcing))

    def _symmetry_group(self) -> SymmetryGroup:
        d4 = dihedral_group()
        f = torch.from_numpy(self.forcing)[None, None]
        fixed = [g for g in d4 if torch.equal(g(f), f)]
        if len(fixed) == len(d4):
            return d4
        return SymmetryGroup("D4-forcing", fixed, "rotations and reflections of the square that fix the forcing")

    def _check_permeability(self, a: torch.Tensor) -> None:
        check_field(a, resolution=self.resolution, name="a", finite=True)
        smallest = float(a.detach().min())
        if smallest <= 0:
            raise ValueError(
                f"permeability a must be positive everywhere, got minimum {smallest:.6g}; "
                "map the field to a positive range (e.g. threshold it to {3, 12}) before solving"
            )

    def _solve(self, a: torch.Tensor, keep_factors: bool = False):
        """Solve every ``(sample, channel)``; return ``u`` (input dtype/device) and the LU factors if asked."""
        values = a.detach().to(torch.float64).cpu().numpy()
        batch = values.reshape(-1, self.resolution, self.resolution)
        u = np.zeros_like(batch)
        factors = []
        for n, permeability in enumerate(batch):
            lu = sparse_linalg.splu(
                darcy_matrix(permeability, self.spacing),
                permc_spec=PERMC_SPEC,
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
            u[n, 1:-1, 1:-1] = lu.solve(self.forcing.ravel()).reshape(self.forcing.shape)
            if keep_factors:
                factors.append(lu)
        u = torch.from_numpy(u.reshape(values.shape)).to(device=a.device, dtype=a.dtype)
        return u, factors

    def _apply_factors(self, factors, rhs: np.ndarray) -> np.ndarray:
        """Solve ``K x = rhs`` with stored factors, one per sample; return ``x`` zero-padded to ``S``.

        ``rhs`` is ``(n, K, S-2, S-2)``, the ``K`` right-hand sides of each factor solved together;
        the result is ``(n, K, S, S)``.
        """
        n, k, interior = rhs.shape[0], rhs.shape[1], rhs.shape[-2:]
        out = np.zeros((n, k, self.resolution, self.resolution))
        for sample, lu in enumerate(factors):
            solved = lu.solve(np.ascontiguousarray(rhs[sample].reshape(k, -1).T))
            out[sample, :, 1:-1, 1:-1] = solved.T.reshape(k, *interior)
        return out

    def jacobian_adjoint(self, x: torch.Tensor, cotangents: torch.Tensor) -> torch.Tensor:
        r"""The adjoint of the solve's Jacobian at ``x`` applied to several cotangents, :math:`J(a)^\top w_k`.

        :math:`J(a)^\top w = -\sum_{\text{faces } (p, q) \ni n} (v_q - v_p)(u_q - u_p) / (2h^2)` with
        :math:`v = K(a)^{-1} w` (module docstring): one factorisation per sample and channel, all
        ``K`` cotangents solved with it together, where ``K`` calls of :func:`torch.autograd.grad`
        would repeat the back-substitution one right-hand side at a time.

        Parameters
        ----------
        x : torch.Tensor
            Permeability :math:`a > 0` at which the solve is linearised, ``(B, C, S, S)``.
        cotangents : torch.Tensor
            :math:`w_k` on the pressure, ``(K, B, C, S, S)`` (only interior values enter).

        Returns
        -------
        torch.Tensor
            ``(K, B, C, S, S)``, the gradients of :math:`w_k^\top A(a)` with respect to :math:`a`, in
            ``x``'s dtype and device.
        """
        self._check_permeability(x)
        if cotangents.ndim != 5 or tuple(cotangents.shape[1:]) != tuple(x.shape):
            raise ValueError(
                f"cotangents must have shape (K, *x.shape) = (K, {', '.join(map(str, x.shape))}), "
                f"got {tuple(cotangents.shape)}"
            )
        u, factors = self._solve(x.detach().to(torch.float64), keep_factors=True)
        return self._pull_back(factors, u, cotangents).to(device=x.device, dtype=x.dtype)

    def _pull_back(self, factors, u: torch.Tensor, cotangents: torch.Tensor) -> torch.Tensor:
        r"""The adjoint-state gradients :math:`J(a)^\top w_k` of cotangents ``(K, B, C, S, S)`` (module docstring).

        ``factors`` are the ``B C`` factorisations of :meth:`_solve` at the pressures ``u``
        ``(B, C, S, S)``; every factor solves its ``K`` right-hand sides together. Returns
        ``(K, B, C, S, S)`` in ``u``'s dtype and device.
        """
        b, c, s = u.shape[0], u.shape[1], self.resolution
        rhs = cotangents.detach().to(torch.float64).cpu().permute(1, 2, 0, 3, 4).reshape(b * c, -1, s, s)
        adjoint = torch.from_numpy(self._apply_factors(factors, rhs[..., 1:-1, 1:-1].numpy()))
        state = u.detach().to(torch.float64).cpu().reshape(b * c, 1, s, s)
        sensitivity = -face_sensitivity(adjoint, state, self.spacing)
        return sensitivity.reshape(b, c, -1, s, s).permute(2, 0, 1, 3, 4).to(device=u.device, dtype=u.dtype)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Solve :math:`-\nabla_h \cdot (a \nabla_h u) = f` with :math:`u = 0` on the boundary.

        Parameters
        ----------
        x : torch.Tensor
            Permeability :math:`a > 0`, shape ``(B, C, S, S)`` (dimensionless on the unit square).
        **kwargs
            Accepted for deepinv's calling convention; unused.

        Returns
        -------
        torch.Tensor
            Pressure :math:`u`, shape ``(B, C, S, S)``, zero on the boundary, in the input's dtype
            and device. Differentiable in ``x`` through the adjoint solve.
        """
        self._check_permeability(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _DarcySolve.apply(x, self)
        return self._solve(x)[0]

    def residual(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""PDE residual :math:`-\nabla_h \cdot (a \nabla_h u) - f` on the interior, zero on the boundary.

        Differentiable in both arguments (physics guidance); zero to rounding for ``u = A(a)``.

        Parameters
        ----------
        a : torch.Tensor
            Permeability, ``(B, C, S, S)``.
        u : torch.Tensor
            Candidate pressure, same shape; its boundary values act as Dirichlet data.

        Returns
        -------
        torch.Tensor
            ``(B, C, S, S)``, in the units of ``f``.
        """
        check_field(a, resolution=self.resolution, name="a")
        check_field(u, resolution=self.resolution, name="u")
        if a.shape != u.shape:
            raise ValueError(f"a and u must have the same shape, got {tuple(a.shape)} and {tuple(u.shape)}")
        forcing = torch.as_tensor(self.forcing, dtype=u.dtype, device=u.device)
        return F.pad(flux_divergence(a, u, self.spacing) - forcing, (1, 1, 1, 1))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"
