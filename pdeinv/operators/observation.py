r"""Point sensors: observe every channel of a field at ``M`` points.

A measurement is a weighted sum of grid values, :math:`y_{bcm} = \sum_s w_{ms}\, x_{bc}[s]`,
with the flat grid index :math:`s = iS + j` of :math:`(x_i, y_j)`:

- on-grid points ``indices`` ``(M, 2)`` read one value each (:math:`w = 1`);
- off-grid points ``coords`` ``(M, 2)`` in :math:`[0, 1]^2` are interpolated bilinearly from the
  four corners of the grid cell that contains them. On the vertex grid
  :math:`x_i = i / (S-1)` the cell is :math:`[x_{i_0}, x_{i_0+1}]`; on the periodic grid
  :math:`x_i = i / S` the last cell wraps from :math:`x_{S-1}` to :math:`x_0 \equiv 1`.
  With local offsets :math:`t_x, t_y \in [0, 1]` the weights are
  :math:`(1-t_x)(1-t_y),\ (1-t_x)t_y,\ t_x(1-t_y),\ t_x t_y`, so functions
  :math:`c_0 + c_1 x + c_2 y + c_3 xy` are reproduced exactly.

The adjoint scatters each measurement back with the same weights,
:math:`(A^\top y)_{bc}[s] = \sum_m w_{ms}\, y_{bcm}`.
"""

from __future__ import annotations


import torch
from deepinv.physics import ComposedLinearPhysics, GaussianNoise, LinearPhysics

from pdeinv.operators.base import check_field, check_noise_level
from pdeinv.operators.symmetry import trivial_group

GRIDS = ("vertex", "periodic")
DENSE_GRAM_LIMIT = 4096  # measured values up to which the norm of sensor * operator is computed exactly


def _as_point_array(points, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(points)
    if tensor.ndim != 2 or tensor.shape[1] != 2 or tensor.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (M, 2) with M >= 1 (one (x, y) row per point), got {tuple(tensor.shape)}"
        )
    return tensor


def _reject_duplicates(rows: torch.Tensor, name: str) -> None:
    if torch.unique(rows, dim=0).shape[0] != rows.shape[0]:
        raise ValueError(f"{name} contains duplicate points; pass each sensor location once")


def _on_grid_stencil(indices, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat grid indices ``(M, 1)`` and unit weights for on-grid points ``(i, j)``."""
    points = _as_point_array(indices, "indices")
    if points.is_floating_point() or points.is_complex() or points.dtype == torch.bool:
        raise ValueError(
            f"indices must be integer grid indices (i, j), got dtype {points.dtype}; "
            "pass off-grid locations in [0, 1]^2 as coords= instead"
        )
    points = points.to(torch.long)
    if points.min() < 0 or points.max() >= resolution:
        raise ValueError(
            f"indices must lie in [0, {resolution - 1}] for resolution {resolution}, "
            f"got values from {int(points.min())} to {int(points.max())}"
        )
    _reject_duplicates(points, "indices")
    flat = points[:, 0] * resolution + points[:, 1]
    return flat[:, None], torch.ones(points.shape[0], 1, dtype=torch.float64, device="cpu")


def _cell_positions(coordinate: torch.Tensor, resolution: int, grid: str) -> tuple[torch.Tensor, ...]:
    """Lower corner index, upper corner index and local offset in ``[0, 1]`` along one axis."""
    if grid == "vertex":
        position = coordinate * (resolution - 1)
        lower = torch.floor(position).clamp(max=resolution - 2)
        return lower.long(), lower.long() + 1, position - lower
    position = coordinate * resolution
    lower = torch.floor(position)
    return lower.long() % resolution, (lower.long() + 1) % resolution, position - lower


def _bilinear_stencil(coords, resolution: int, grid: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(M, 4)`` and bilinear weights ``(M, 4)`` of off-grid points in ``[0, 1]^2``."""
    points = _as_point_array(coords, "coords")
    if not points.is_floating_point():
        raise ValueError(
            f"coords must be floating-point locations in [0, 1]^2, got dtype {points.dtype}; "
            "pass integer grid points as indices= instead"
        )
    points = points.to(torch.float64)
    if not torch.isfinite(points).all() or points.min() < 0 or points.max() > 1:
        raise ValueError(
            f"coords must lie in [0, 1]^2 (the unit square), got values from {float(points.min())} "
            f"to {float(points.max())}"
        )
    _reject_duplicates(torch.remainder(points, 1.0) if grid == "periodic" else points, "coords")
    i0, i1, tx = _cell_positions(points[:, 0], resolution, grid)
    j0, j1, ty = _cell_positions(points[:, 1], resolution, grid)
    flat = torch.stack((i0 * resolution + j0, i0 * resolution + j1, i1 * resolution + j0, i1 * resolution + j1), -1)
    weights = torch.stack(((1 - tx) * (1 - ty), (1 - tx) * ty, tx * (1 - ty), tx * ty), -1)
    return flat, weights


class PointObservation(LinearPhysics):
    r"""Observe a field at ``M`` points: :math:`(B, C, S, S) \to (B, C, M)`, optionally with Gaussian noise.

    Parameters
    ----------
    resolution : int
        Grid points per side ``S`` of the observed fields.
    indices : array-like of int, shape (M, 2), optional
        On-grid points ``(i, j)``, ``0 <= i, j < S``, read exactly. Give exactly one of
        ``indices`` and ``coords``.
    coords : array-like of float, shape (M, 2), optional
        Off-grid points ``(x, y)`` in :math:`[0, 1]^2`, interpolated bilinearly.
    grid : {"vertex", "periodic"}
        Grid of the fields, used to place ``coords``: ``x_i = i/(S-1)`` (Helmholtz/Poisson) or
        ``x_i = i/S`` with periodic wrap (Navier-Stokes).
    noise_level : float
        Standard deviation of the additive Gaussian noise of ``physics(x)`` (deepinv
        ``GaussianNoise``), in the units of the field; ``0`` means exact measurements.
    rng : torch.Generator, optional
        Generator of the measurement noise (reproducible noise).
    device : str or torch.device
        Where the sensor's buffers live; inputs on another device are handled too.

    Raises
    ------
    ValueError
        On a missing/duplicated choice of ``indices``/``coords``, a wrong shape or dtype,
        out-of-range or duplicate points, an unknown ``grid`` or a negative ``noise_level``.

    Attributes
    ----------
    coordinates : torch.Tensor
        Physical locations :math:`(x, y) \in [0, 1]^2` of the points, float64 ``(M, 2)`` on CPU.
    n_points : int
        Number of points ``M``.

    Notes
    -----
    ``A_adjoint`` is the exact transpose (scatter-add with the interpolation weights).
    ``symmetries`` is the trivial group: a fixed sensor layout breaks every grid symmetry.
    Compose with a field operator as ``PointObservation(...) * Helmholtz(...)``, which
    observes :math:`u = A(a)` at the points.

    Examples
    --------
    Read two grid points of a 4 x 4 field; the adjoint puts the values back in place:

    >>> import torch
    >>> from pdeinv.operators import PointObservation
    >>> sensor = PointObservation(4, indices=[[0, 1], [2, 3]])
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> sensor.A(x)
    tensor([[[ 1., 11.]]])
    >>> sensor.A_adjoint(sensor.A(x))[0, 0]
    tensor([[ 0.,  1.,  0.,  0.],
            [ 0.,  0.,  0.,  0.],
            [ 0.,  0.,  0., 11.],
            [ 0.,  0.,  0.,  0.]])
    """

    def __init__(
        self,
        resolution: int,
        indices=None,
        coords=None,
        grid: str = "vertex",
        noise_level: float = 0.0,
        rng: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        noise_level = check_noise_level(noise_level)
        if (indices is None) == (coords is None):
            raise ValueError("give exactly one of indices= (on-grid (i, j) points) and coords= (points in [0, 1]^2)")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"resolution must be an int S >= 2 (grid points per side), got {resolution!r}")
        noise_model = GaussianNoise(sigma=noise_level, rng=rng) if noise_level > 0 else None
        super().__init__(noise_model=noise_model, device=device)
        self.resolution = resolution
        self.grid = grid
        self.on_grid = indices is not None
        if self.on_grid:
            flat, weights = _on_grid_stencil(indices, resolution)
            spacing = 1.0 / (resolution - 1 if grid == "vertex" else resolution)
            self.coordinates = torch.as_tensor(indices).cpu().to(torch.float64) * spacing
        else:
            flat, weights = _bilinear_stencil(coords, resolution, grid)
            self.coordinates = torch.as_tensor(coords).cpu().to(torch.float64)
        self.register_buffer("flat_index", flat.to(device))
        self.register_buffer("weights", weights.to(device))
        self.n_points = flat.shape[0]
        self.symmetries = trivial_group()

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Values at the points, :math:`y_{bcm} = \sum_s w_{ms} x_{bc}[s]`.

        Parameters
        ----------
        x : torch.Tensor
            Field ``(B, C, S, S)``.
        **kwargs
            Accepted for deepinv's calling convention; unused.

        Returns
        -------
        torch.Tensor
            Measurements ``(B, C, M)``, same dtype and device as ``x``.
        """
        check_field(x, resolution=self.resolution, name="x")
        index = self.flat_index.to(x.device)
        weights = self.weights.to(device=x.device, dtype=x.dtype)
        return (x.flatten(-2)[..., index] * weights).sum(-1)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Exact transpose: scatter-add, :math:`(A^\top y)_{bc}[s] = \sum_m w_{ms} y_{bcm}`.

        Parameters
        ----------
        y : torch.Tensor
            Measurements ``(B, C, M)``.

        Returns
        -------
        torch.Tensor
            Field ``(B, C, S, S)``, zero away from the points' cells.
        """
        if not isinstance(y, torch.Tensor) or y.ndim != 3 or y.shape[-1] != self.n_points or not y.is_floating_point():
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"measurements must be a float tensor of shape (batch, channels, {self.n_points}), got {shape}"
            )
        index = self.flat_index.to(y.device)
        contributions = (y[..., None] * self.weights.to(device=y.device, dtype=y.dtype)).flatten(-2)
        out = y.new_zeros(*y.shape[:2], self.resolution**2).index_add(-1, index.flatten(), contributions)
        return out.unflatten(-1, (self.resolution, self.resolution))

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Pseudo-inverse: the adjoint for on-grid points (:math:`AA^\top = I`), least squares otherwise.

        Parameters
        ----------
        y : torch.Tensor
            Measurements ``(B, C, M)``.
        **kwargs
            Passed to deepinv's least-squares solver for off-grid points.

        Returns
        -------
        torch.Tensor
            Minimum-norm field ``(B, C, S, S)`` reproducing ``y``.
        """
        if self.on_grid:
            return self.A_adjoint(y)
        return super().A_dagger(y, **kwargs)

    @property
    def noise_level(self) -> float:
        """Standard deviation of the sensor's Gaussian noise (field units); 0 for exact measurements."""
        model = self.noise_model
        return float(model.sigma) if isinstance(model, GaussianNoise) else 0.0

    def __mul__(self, other):
        r"""``sensor * operator``: observe :math:`A(x)` at the points, as an :class:`ObservedOperator` when linear."""
        if isinstance(other, LinearPhysics):
            return ObservedOperator(other, self)
        return super().__mul__(other)

    def extra_repr(self) -> str:
        kind = "indices" if self.on_grid else f"coords on the {self.grid} grid"
        return f"resolution={self.resolution}, n_points={self.n_points} ({kind})"


class ObservedOperator(ComposedLinearPhysics):
    r"""A linear operator :math:`A` followed by a point sensor :math:`P` (``sensor * operator``), with its exact norm.

    deepinv's power method stops on an absolute change of :math:`\|PA\|_2^2` below its
    ``tol`` (1e-3), which for a PDE solution operator (:math:`\|PA\|_2^2 \sim 10^{-4}`) is at once
    and gives a step size far too large. Here :math:`\|PA\|_2^2 = \lambda_\max(G)` with the Gram
    matrix :math:`G = P A A^\top P^\top` of the measurement space, built from one adjoint per
    measured value (up to ``DENSE_GRAM_LIMIT`` values), else a power method with a *relative*
    tolerance. The noise model is the sensor's, as in deepinv's composition.
    """

    def compute_sqnorm(self, x0: torch.Tensor, *, max_iter: int = 1000, tol: float = 1e-6, **kwargs) -> torch.Tensor:
        r""":math:`\|PA\|_2^2` (exact up to ``DENSE_GRAM_LIMIT`` measured values).

        Parameters
        ----------
        x0 : torch.Tensor
            An unbatched field ``(C, S, S)`` (or batched ``(1, C, S, S)``) with the dtype and device of
            the iterates (its values are ignored).
        max_iter, tol : int, float
            Iterations and relative tolerance of the power method (more measured values only).
        """
        x = x0 if x0.ndim == 4 else x0[None]
        shape = self.A(torch.zeros_like(x[:1])).shape[1:]
        size = shape.numel()
        if size <= DENSE_GRAM_LIMIT:
            unit = torch.eye(size, dtype=x.dtype, device=x.device).reshape(size, *shape)
            rows = self.A_adjoint(unit).flatten(1)
            return torch.linalg.eigvalsh(rows @ rows.T)[-1]
        v = torch.randn_like(x[:1])
        estimate = torch.zeros((), dtype=x.dtype, device=x.device)
        for _ in range(max_iter):
            v = v / v.norm()
            w = self.A_adjoint_A(v)
            previous, estimate = estimate, (v * w).sum()
            if (estimate - previous).abs() <= tol * estimate.abs():
                break
            v = w
        return estimate

    def compute_norm(self, x0: torch.Tensor, squared: bool = True, **kwargs) -> torch.Tensor:
        r""":math:`\|PA\|_2^2` (``squared=True``, deepinv's default) or :math:`\|PA\|_2`; see :meth:`compute_sqnorm`."""
        if squared not in (True, False):
            raise ValueError(f"squared must be True or False, got {squared!r}")
        value = self.compute_sqnorm(x0, **kwargs)
        return value if squared else value.sqrt()


def random_points(n_points: int, resolution: int, seed: int, interior_only: bool = False) -> torch.Tensor:
    """Distinct random on-grid points, a pure function of ``seed``.

    Parameters
    ----------
    n_points : int
        Number of points ``M``.
    resolution : int
        Grid points per side ``S``.
    seed : int
        Seed of a local ``torch.Generator`` (the global RNG is untouched).
    interior_only : bool
        Draw only from the ``(S-2)^2`` interior points (``1 <= i, j <= S-2``).

    Returns
    -------
    torch.LongTensor
        ``(M, 2)`` indices ``(i, j)``, no two equal, for ``PointObservation(indices=...)``.

    Raises
    ------
    ValueError
        If ``n_points`` is not in ``[1, number of available points]``.

    Examples
    --------
    >>> from pdeinv.operators import random_points
    >>> points = random_points(123, 64, seed=0)
    >>> points.shape
    torch.Size([123, 2])
    >>> bool((points == random_points(123, 64, seed=0)).all())
    True
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 3:
        raise ValueError(f"resolution must be an int S >= 3, got {resolution!r}")
    side = resolution - 2 if interior_only else resolution
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 1 <= n_points <= side**2:
        raise ValueError(
            f"n_points must be an int in [1, {side**2}] ({side} x {side} candidate points), got {n_points!r}"
        )
    generator = torch.Generator().manual_seed(int(seed))
    flat = torch.randperm(side**2, generator=generator, device="cpu")[:n_points]
    offset = 1 if interior_only else 0
    return torch.stack((flat // side + offset, flat % side + offset), -1)
