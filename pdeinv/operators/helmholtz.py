r"""The discrete Helmholtz and Poisson solution operators on the unit square.

Grid and equation
-----------------
The vertex grid has ``S`` points per side, :math:`x_i = i / (S - 1)`, :math:`i = 0, \dots, S-1`,
spacing :math:`h = 1 / (S - 1)`; ``field[..., i, j]`` is the value at :math:`(x_i, y_j)`. On the
:math:`(S-2)^2` interior points the solution :math:`u` of

.. math:: (\Delta_h + k^2)\, u = a, \qquad
          \Delta_h u_{ij} = \frac{u_{i+1,j} + u_{i-1,j} + u_{i,j+1} + u_{i,j-1} - 4 u_{ij}}{h^2},

with :math:`u = 0` on the boundary, defines the forward map :math:`A: a \mapsto u`. The
boundary values of :math:`a` do not enter, and :math:`A(a)` is zero on the boundary.
``k = 0`` is the Poisson problem (:class:`Poisson`).

Fast exact solver
-----------------
The interior operator :math:`M = \Delta_h + k^2` (Dirichlet) is diagonalised by the 2-D
orthonormal DST-I :math:`\Phi` (symmetric, :math:`\Phi^2 = I`):
:math:`M = \Phi \operatorname{diag}(m_{pl}) \Phi` with
:math:`m_{pl} = k^2 - \mu_p - \mu_l`, :math:`\mu_p = (4/h^2) \sin^2(\pi p / (2(S-1)))`, modes
:math:`p, l = 1, \dots, S-2`. Hence :math:`u_{\text{int}} = \Phi\, (\Phi a_{\text{int}} / m)`,
exact to rounding, in :math:`O(S^2 \log S)`.

Adjoint
-------
With :math:`R` the restriction to the interior and :math:`E = R^\top` the extension by zero,
:math:`A = E M^{-1} R`. :math:`M` is symmetric, so
:math:`A^\top = R^\top M^{-\top} E^\top = E M^{-1} R = A` in the Euclidean inner product of
the full :math:`S \times S` grid: the operator is self-adjoint (boundary rows and columns are
zero) and ``A_adjoint`` is ``A``.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from deepinv.physics import LinearPhysics

from pdeinv.operators.base import check_field, check_output
from pdeinv.operators.sine_transform import dst1_2d, second_difference_eigenvalues
from pdeinv.operators.symmetry import dihedral_group

RESONANCE_TOLERANCE = 1e-6
RESONANCE_WARNING = 1e-3


class ResonanceWarning(RuntimeWarning):
    """``k^2`` is close to a Dirichlet eigenvalue: the solve is ill-conditioned (the message gives how much)."""


def interior_laplacian(u: torch.Tensor, spacing: float) -> torch.Tensor:
    r"""5-point Laplacian :math:`\Delta_h u` at the interior points of a vertex grid.

    Parameters
    ----------
    u : torch.Tensor
        Field ``(..., S, S)``; its boundary values enter the stencil of the adjacent interior points.
    spacing : float
        Grid spacing ``h``.

    Returns
    -------
    torch.Tensor
        ``(..., S-2, S-2)``: :math:`(u_{i+1,j} + u_{i-1,j} + u_{i,j+1} + u_{i,j-1} - 4u_{ij}) / h^2`.
    """
    centre = u[..., 1:-1, 1:-1]
    neighbours = u[..., 2:, 1:-1] + u[..., :-2, 1:-1] + u[..., 1:-1, 2:] + u[..., 1:-1, :-2]
    return (neighbours - 4.0 * centre) / spacing**2


def _pad_boundary(interior: torch.Tensor) -> torch.Tensor:
    """Extend an interior array ``(..., S-2, S-2)`` by a ring of zeros to ``(..., S, S)``."""
    return F.pad(interior, (1, 1, 1, 1))


def _validated_wavenumber(k: float) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k):
        raise ValueError(f"k must be a finite real wavenumber (a Python float), got {k!r}")
    return float(k)


def _validated_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 3:
        raise ValueError(
            f"resolution must be an int S >= 3 (grid points per side, boundary included), got {resolution!r}"
        )
    return int(resolution)


def _check_not_resonant(k: float, mu: torch.Tensor, spacing: float) -> None:
    r"""Raise if ``k^2`` is within a relative ``RESONANCE_TOLERANCE`` of a Dirichlet eigenvalue ``mu_j + mu_l``.

    Within a relative ``RESONANCE_WARNING`` a :class:`ResonanceWarning` gives the condition number
    :math:`\kappa = \max|m_{jl}| / \min|m_{jl}|` of :math:`M = \Delta_h + k^2`, the factor by
    which a relative error of the source may grow in the solution.
    """
    eigen = mu[:, None] + mu[None, :]
    closeness = (k**2 - eigen).abs() / eigen
    flat = int(torch.argmin(closeness))
    j, l = divmod(flat, mu.numel())
    distance = float(closeness[j, l])
    where = (
        f"k^2 = {k**2:.10g} lies within a relative {distance:.2g} of the discrete Dirichlet eigenvalue "
        f"{float(eigen[j, l]):.10g} of -Delta_h, mode (j, l) = ({j + 1}, {l + 1}) (h = {spacing:.6g})"
    )
    if distance <= RESONANCE_TOLERANCE:
        raise ValueError(
            f"k = {k!r} is resonant: {where}, so the Helmholtz problem is singular; "
            "choose a k away from this eigenvalue"
        )
    if distance <= RESONANCE_WARNING:
        symbol = (k**2 - eigen).abs()
        condition = float(symbol.max() / symbol.min())
        warnings.warn(
            f"k = {k!r} is near resonance: {where}; the solve has condition number {condition:.3g}, so errors in the "
            "source are amplified by up to that factor. Move k away from the eigenvalue for a well-posed problem",
            ResonanceWarning,
            stacklevel=3,
        )


class Helmholtz(LinearPhysics):
    r"""Solution operator :math:`A: a \mapsto u` of :math:`\Delta_h u + k^2 u = a`, :math:`u|_{\partial\Omega} = 0`.

    See the module docstring for the grid, the DST-I solver and the self-adjointness proof.

    Parameters
    ----------
    resolution : int
        Grid points per side ``S`` (boundary included), ``S >= 3``; spacing ``h = 1/(S-1)``.
    k : float
        Wavenumber (units of 1/length on the unit square); ``k = 0`` gives the Poisson problem.
    noise_model : deepinv.physics.NoiseModel, optional
        Noise added by ``physics(a)``; ``None`` means no noise.
    device : str or torch.device
        Where the operator's buffers live; inputs on another device are handled too.

    Raises
    ------
    ValueError
        If ``resolution`` or ``k`` is invalid, or ``k^2`` is within a relative ``1e-6`` of a
        discrete Dirichlet eigenvalue :math:`\mu_j + \mu_l` (the message names it and the mode ``(j, l)``).

    Warns
    -----
    ResonanceWarning
        If ``k^2`` is within a relative ``1e-3`` of such an eigenvalue; the message gives the
        condition number of the discrete operator.

    Notes
    -----
    Fields are ``(B, C, S, S)`` float32/float64 tensors; every channel is solved independently
    and the output has the input's dtype and device. ``symmetries`` is the dihedral group D4:
    the stencil and the boundary condition are invariant under the rotations and reflections
    of the square (a flip ``i -> S-1-i`` is the reflection ``x -> 1-x``).

    Examples
    --------
    Solve for a source that vanishes on the boundary, check the discrete PDE and invert:

    >>> import torch
    >>> from pdeinv.operators import Helmholtz
    >>> A = Helmholtz(32, k=1.0)
    >>> a = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    >>> a[..., 1:-1, 1:-1] = torch.randn(30, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> u = A.A(a)
    >>> u.shape
    torch.Size([1, 1, 32, 32])
    >>> bool(A.residual(a, u).abs().max() < 1e-10)
    True
    >>> bool(torch.allclose(A.A_dagger(u), a))
    True
    """

    def __init__(
        self,
        resolution: int,
        k: float = 1.0,
        noise_model=None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(noise_model=noise_model, device=device)
        self.resolution = _validated_resolution(resolution)
        self.k = _validated_wavenumber(k)
        self.spacing = 1.0 / (self.resolution - 1)
        mu = -second_difference_eigenvalues(self.resolution - 2, self.spacing)
        _check_not_resonant(self.k, mu, self.spacing)
        symbol = self.k**2 - (mu[:, None] + mu[None, :])
        self.register_buffer("inverse_symbol", (1.0 / symbol).to(device), persistent=False)
        self.symmetries = dihedral_group()

    def _solve(self, a: torch.Tensor, name: str, method: str) -> torch.Tensor:
        owner = f"{type(self).__name__}.{method}"
        check_field(a, resolution=self.resolution, name=name, owner=owner)
        inverse_symbol = self.inverse_symbol.to(device=a.device, dtype=a.dtype)
        coefficients = dst1_2d(a[..., 1:-1, 1:-1]) * inverse_symbol
        return check_output(_pad_boundary(dst1_2d(coefficients)), owner)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Solve :math:`(\Delta_h + k^2) u = a` with :math:`u = 0` on the boundary.

        Parameters
        ----------
        x : torch.Tensor
            Source :math:`a`, shape ``(B, C, S, S)``; its boundary values are ignored.
        **kwargs
            Accepted for deepinv's calling convention; unused.

        Returns
        -------
        torch.Tensor
            Solution :math:`u`, shape ``(B, C, S, S)``, zero on the boundary.
        """
        return self._solve(x, "a", "A")

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Exact adjoint :math:`A^\top = A` (self-adjoint, see the module docstring).

        Parameters
        ----------
        y : torch.Tensor
            Field ``(B, C, S, S)`` in the solution space.

        Returns
        -------
        torch.Tensor
            :math:`A^\top y`, shape ``(B, C, S, S)``, zero on the boundary.
        """
        return self._solve(y, "y", "A_adjoint")

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Moore-Penrose pseudo-inverse: apply the stencil, :math:`A^\dagger u = E\,(\Delta_h + k^2) R\, u`.

        The boundary values of ``u`` are treated as zero (the projection onto the range of
        :math:`A`), so :math:`A(A^\dagger u) = u` for every ``u`` that vanishes on the boundary
        and :math:`A^\dagger(A a) = a` on the interior.

        Parameters
        ----------
        y : torch.Tensor
            Solution field :math:`u`, shape ``(B, C, S, S)``.

        Returns
        -------
        torch.Tensor
            Source :math:`a`, shape ``(B, C, S, S)``, zero on the boundary.
        """
        check_field(y, resolution=self.resolution, name="u", owner=f"{type(self).__name__}.A_dagger")
        projected = _pad_boundary(y[..., 1:-1, 1:-1])
        interior = interior_laplacian(projected, self.spacing) + self.k**2 * projected[..., 1:-1, 1:-1]
        return _pad_boundary(interior)

    def residual(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""PDE residual :math:`\Delta_h u + k^2 u - a` on the interior, zero on the boundary.

        Differentiable in both arguments (used for physics guidance). The boundary values of
        ``u`` enter the stencil of the adjacent interior points as Dirichlet data, so the
        residual vanishes exactly when ``u`` solves the discrete problem with those boundary
        values; for ``u = A(a)`` it is zero to rounding.

        Parameters
        ----------
        a : torch.Tensor
            Source, shape ``(B, C, S, S)``.
        u : torch.Tensor
            Candidate solution, same shape as ``a``.

        Returns
        -------
        torch.Tensor
            Residual, shape ``(B, C, S, S)``, in the units of ``a``.
        """
        owner = f"{type(self).__name__}.residual"
        check_field(a, resolution=self.resolution, name="a", owner=owner)
        check_field(u, resolution=self.resolution, name="u", owner=owner)
        if a.shape != u.shape:
            raise ValueError(f"a and u must have the same shape, got {tuple(a.shape)} and {tuple(u.shape)}")
        interior = interior_laplacian(u, self.spacing) + self.k**2 * u[..., 1:-1, 1:-1] - a[..., 1:-1, 1:-1]
        return _pad_boundary(interior)

    def compute_sqnorm(self, x0: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        r"""Exact :math:`\|A^\top A\|_2 = \|A\|_2^2 = \max_{p,l} 1/m_{pl}^2` from the DST-I spectrum (module docstring).

        deepinv's power method stops on an absolute change below its ``tol`` (1e-3), before its
        first step for an operator this small (:math:`\|A\|_2^2 \approx 1/(2\pi^2 - k^2)^2`);
        the spectrum gives the value exactly, for step sizes :math:`\gamma < 2/\|A\|_2^2`.

        Parameters
        ----------
        x0 : torch.Tensor, optional
            A tensor with the dtype and device of the result (its values are ignored).
        **kwargs
            deepinv's power-method options (``max_iter``, ``tol``, ``verbose``); unused.

        Returns
        -------
        torch.Tensor
            Scalar :math:`\|A\|_2^2`, units of (source / solution)^-2.
        """
        value = self.inverse_symbol.abs().max() ** 2
        return value if x0 is None else value.to(device=x0.device, dtype=x0.dtype)

    def compute_norm(self, x0: torch.Tensor | None = None, squared: bool = True, **kwargs) -> torch.Tensor:
        r"""Exact :math:`\|A^\top A\|_2` (``squared=True``, deepinv's default) or :math:`\|A\|_2`; see :meth:`compute_sqnorm`."""
        if squared not in (True, False):
            raise ValueError(f"squared must be True or False, got {squared!r}")
        value = self.compute_sqnorm(x0)
        return value if squared else value.sqrt()

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, k={self.k}"


class Poisson(Helmholtz):
    r"""Solution operator of the Poisson problem :math:`\Delta_h u = a`, :math:`u|_{\partial\Omega} = 0`.

    :class:`Helmholtz` with ``k = 0``; never resonant since every Dirichlet eigenvalue is positive.

    Parameters
    ----------
    resolution : int
        Grid points per side ``S``, ``S >= 3``.
    noise_model : deepinv.physics.NoiseModel, optional
        Noise added by ``physics(a)``.
    device : str or torch.device
        Where the operator's buffers live.
    """

    def __init__(self, resolution: int, noise_model=None, device: torch.device | str = "cpu"):
        super().__init__(resolution, k=0.0, noise_model=noise_model, device=device)
