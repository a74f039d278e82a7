r"""Exact Gaussian priors: closed-form denoisers of Gaussian random fields and of linear PDEs driven by them.

Model
    :math:`a \sim N(0, C)` on an ``S x S`` grid (a :class:`pdeinv.datasets.GaussianRandomField`),
    and ``K`` channels :math:`x_c = L_c a / s_c` for linear maps :math:`L_c` (the identity for
    the field itself, the PDE solution map :math:`A` for the solution channel), each normalised
    by :math:`s_c^2 = \operatorname{tr}(L_c C L_c^\top) / N`, the mean exact pointwise variance
    (so ``mean = 0`` and ``sigma_data = 1``). Write :math:`G a = (L_c a / s_c)_c`.

Denoiser
    With :math:`C = B B^\top` (``B = grf.covariance_sqrt``) and :math:`y = G a + \sigma n`,

    .. math::

        E[a \mid y] = B \xi, \qquad
        (\sigma^2 I + B^\top G^\top G B)\, \xi = B^\top G^\top y, \qquad
        E[x \mid y] = G B \xi,

    an ``N x N`` symmetric positive-definite solve (conjugate gradients, preconditioned by the
    exact diagonal of :math:`B^\top G^\top G B` in the GRF's eigenbasis, computed once). For a
    single identity channel and a covariance diagonal in that basis this is the closed form
    :math:`E[x \mid y] = C (C + s^2 \sigma^2 I)^{-1} y` applied with ``apply_spectral``.

    A boundary-zeroed field (the Helmholtz source) has the covariance :math:`M C_0 M`, which no fast
    transform diagonalises, so its denoiser is the iterative solve, or (``solver="eigen"``) a dense
    eigendecomposition :math:`B^\top G^\top G B = V \operatorname{diag}(\kappa) V^\top`, formed once
    from the ``N`` columns of the normal operator, after which

    .. math::

        E[x \mid y] = G B V \operatorname{diag}\big(1 / (\kappa + \sigma^2)\big) V^\top B^\top G^\top y

    for every :math:`\sigma` at the cost of two dense products, and the Tweedie covariance of point
    measurements :math:`H D_\sigma H^\top = Z \operatorname{diag}(\kappa / (\kappa + \sigma^2)) Z^\top`,
    :math:`Z = H W`, is one ``M x R x M`` product per level (:meth:`LinearGaussianPrior.gaussian_spectrum`,
    the eigenvectors of :math:`\Sigma` being :math:`W = G B V \operatorname{diag}(\kappa^{-1/2})`).
    The dense matrix has ``N = S^2`` rows: 2 GiB in float64 at 128 x 128 (about 9 GiB peak while
    factorised, minutes on a 2-core CPU), so ``"eigen"`` is refused above ``EIGEN_MAX_UNKNOWNS``.

    The denoiser is computed in float64 whatever the input's dtype (in float32 the solve's attainable
    residual leaves errors of a sizeable fraction of the posterior spread at the smallest noise levels).
    The denoiser :math:`D_\sigma` is linear and symmetric
    (:math:`D_\sigma = \Sigma (\Sigma + \sigma^2 I)^{-1}` with :math:`\Sigma = G C G^\top`), so its
    vector-Jacobian product is :math:`D_\sigma` itself: gradients through it are one more denoising,
    not a backward pass through the solver's iterations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from pdeinv.operators.base import check_field
from pdeinv.priors.base import FieldPrior, sigma_column
from pdeinv.priors.cg import CGConfig, conjugate_gradient

LinearMap = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]

SOLVERS = ("cg", "eigen")
EIGEN_MAX_UNKNOWNS = 128 * 128
EIGEN_RELATIVE_FLOOR = 1e-12
r"""Eigenvalues :math:`\kappa` below this fraction of the largest are the null space of the boundary
mask (``4S - 4`` of them, at rounding level) and are dropped."""


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


IDENTITY_MAP: LinearMap = (_identity, _identity)


def operator_map(operator) -> LinearMap:
    """A deepinv ``LinearPhysics`` as a ``(forward, adjoint)`` pair (``operator.A``, ``operator.A_adjoint``)."""
    return (operator.A, operator.A_adjoint)


def _unit_chunks(size: int, chunk: int):
    """Yield ``(index slice, e_k)``: the unit vectors of the ``size x size`` grid in chunks, ``(n, 1, S, S)``
    float64 on the CPU."""
    n = size * size
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        units = torch.zeros(stop - start, n, dtype=torch.float64, device="cpu")
        units[torch.arange(stop - start, device="cpu"), torch.arange(start, stop, device="cpu")] = 1.0
        yield slice(start, stop), units.reshape(-1, 1, size, size)


def _basis_columns(grf, chunk: int):
    """Yield ``(index slice, B v_k)`` for chunks of the eigenbasis, ``B v_k`` shaped ``(n, 1, S, S)`` float64."""
    for index, units in _unit_chunks(grf.resolution, chunk):
        yield index, grf.synthesize(units)


def channel_statistics(grf, maps: Sequence[LinearMap], chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact pointwise variances and basis norms of the channels :math:`L_c a`.

    Sums over the orthonormal eigenbasis :math:`v_k` with :math:`w_k = L_c B v_k`:
    ``variance[c] = sum_k w_k**2`` (the diagonal of :math:`L_c C L_c^\top`) and
    ``norms[c, k] = ||w_k||^2``. Needs a real (``"cosine"``) GRF basis.

    Returns
    -------
    variance : torch.Tensor
        ``(K, S, S)`` float64, physical units.
    norms : torch.Tensor
        ``(K, S, S)`` float64, indexed like the GRF's eigenvalues.
    """
    size = grf.resolution
    variance = torch.zeros(len(maps), size, size, dtype=torch.float64, device="cpu")
    norms = torch.zeros(len(maps), size * size, dtype=torch.float64, device="cpu")
    for index, columns in _basis_columns(grf, chunk):
        for c, (forward, _) in enumerate(maps):
            w = forward(columns)
            variance[c] += (w**2).sum(dim=(0, 1))
            norms[c, index] = (w**2).sum(dim=(1, 2, 3))
    return variance, norms.reshape(len(maps), size, size)


class _SymmetricLinearMap(torch.autograd.Function):
    """``apply(x)`` for a linear map that equals its transpose: the backward pass applies the same map."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.linear_map = apply
        return apply(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.linear_map(grad), None


class LinearGaussianPrior(FieldPrior):
    r"""Exact denoiser of channels :math:`x_c = L_c a / s_c`, :math:`a \sim N(0, C)` (module docstring).

    Parameters
    ----------
    grf : pdeinv.datasets.GaussianRandomField
        Law of :math:`a`.
    maps : sequence of (forward, adjoint)
        The linear maps :math:`L_c` and their adjoints, acting on ``(B, 1, S, S)`` fields.
    channels : sequence of str
        Channel names.
    cg : CGConfig
        Conjugate-gradient settings.
    solver : {"cg", "eigen"}
        How the normal equations are solved when there is no closed form: conjugate gradients at each
        call, or the dense eigendecomposition formed at the first call (module docstring; at most
        ``EIGEN_MAX_UNKNOWNS`` grid points).
    """

    is_gaussian = True

    def __init__(
        self, grf, maps: Sequence[LinearMap], channels: Sequence[str], cg: CGConfig = CGConfig(), solver: str = "cg"
    ):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if solver == "eigen" and grf.resolution**2 > EIGEN_MAX_UNKNOWNS:
            raise ValueError(
                f"solver='eigen' forms a dense {grf.resolution**2} x {grf.resolution**2} matrix; at most "
                f"{EIGEN_MAX_UNKNOWNS} grid points (128 x 128) are supported, use solver='cg'"
            )
        if len(maps) != len(channels):
            raise ValueError(f"need one linear map per channel, got {len(maps)} maps for channels {tuple(channels)}")
        closed_form = len(maps) == 1 and maps[0] is IDENTITY_MAP and not grf.zero_boundary
        if not closed_form and grf.basis != "cosine":
            raise ValueError(
                "a GRF with the complex 'periodic' basis is supported only alone (GaussianPrior, no boundary mask); "
                "use a 'cosine'-basis GRF for linear maps of a field"
            )
        if closed_form:
            variance, norms = grf.variance(dtype=torch.float64)[None], None
        else:
            variance, norms = channel_statistics(grf, maps)
        std = variance.mean(dim=(1, 2)).sqrt()
        super().__init__(channels, [0.0] * len(channels), std, sigma_data=1.0, resolution=grf.resolution)
        self.grf = grf
        self.maps = tuple(maps)
        self.cg, self.solver = cg, solver
        self._eigen: tuple[torch.Tensor, torch.Tensor] | None = None
        self.variances = variance
        self.diagonal = None if closed_form else (norms / std[:, None, None] ** 2).sum(0)
        self.card = {"prior": "gaussian", "grf": dataclasses.asdict(grf), "channels": list(channels),
                     "std": std.tolist()}

    def _scales(self, like: torch.Tensor) -> torch.Tensor:
        return self.std.to(dtype=like.dtype, device=like.device)

    def _forward_map(self, a: torch.Tensor) -> torch.Tensor:
        """:math:`G a`, ``(B, 1, S, S) -> (B, K, S, S)``."""
        s = self._scales(a)
        return torch.cat([forward(a) / s[c] for c, (forward, _) in enumerate(self.maps)], dim=1)

    def _adjoint_map(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`G^\\top v`, ``(B, K, S, S) -> (B, 1, S, S)``."""
        s = self._scales(v)
        return sum(adjoint(v[:, c : c + 1]) / s[c] for c, (_, adjoint) in enumerate(self.maps))

    def _sqrt_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`B^\\top x`: ``covariance_sqrt`` is :math:`M C_0^{1/2}` with a zeroed boundary, so its transpose
        is :math:`C_0^{1/2} M`, the unmasked square root after the mask."""
        if not self.grf.zero_boundary:
            return self.grf.covariance_sqrt(x)
        mask = torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
        mask[1:-1, 1:-1] = 1.0
        return dataclasses.replace(self.grf, zero_boundary=False).covariance_sqrt(mask * x)

    def _spectral(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Multiply the eigenbasis coefficients of ``x`` by ``values`` (no boundary mask)."""
        return dataclasses.replace(self.grf, zero_boundary=False).apply_spectral(x, lambda lam: values)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`E[x_0 \mid x_0 + \sigma n = x]` for normalised ``x`` of shape ``(B, K, S, S)``.

        Computed in float64 and returned in ``x``'s dtype; differentiable in ``x`` (its Jacobian is the
        denoiser itself, module docstring), not in ``sigma``.
        """
        check_field(x, resolution=self.resolution, channels=len(self.channels), name="x")
        if isinstance(sigma, torch.Tensor) and sigma.requires_grad:
            raise ValueError("the exact Gaussian denoiser is not differentiable in sigma; pass sigma.detach()")
        s2 = sigma_column(sigma, x).detach().double() ** 2
        return _SymmetricLinearMap.apply(x, lambda v: self._posterior_mean(v.double(), s2).to(v.dtype))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """deepinv's call: :meth:`denoise` of ``x`` in its own dtype (not rounded to the float32 buffers' first)."""
        level = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        return self.denoise(x, level.reshape(-1) if level.numel() > 1 else level.reshape(()))

    def _posterior_mean(self, x: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """The denoiser of the module docstring on float64 ``x`` ``(B, K, S, S)``, noise variances ``s2`` ``(B, 1, 1, 1)``."""
        if self.diagonal is None:
            s = float(self.std[0])
            return self.grf.apply_spectral(x * s, lambda lam: lam / (lam + s2 * s * s)) / s
        if self.solver == "eigen":
            vectors, values = self._eigenbasis(x.device)
            coordinates = self._sqrt_adjoint(self._adjoint_map(x)).flatten(1) @ vectors
            xi = (coordinates / (values + s2.reshape(-1, 1))) @ vectors.T
            return self._forward_map(self.grf.covariance_sqrt(xi.reshape(-1, 1, *x.shape[-2:])))
        sqrt, sqrt_t = self.grf.covariance_sqrt, self._sqrt_adjoint
        diagonal = self.diagonal.to(dtype=x.dtype, device=x.device)

        def normal_operator(xi: torch.Tensor) -> torch.Tensor:
            return s2 * xi + sqrt_t(self._adjoint_map(self._forward_map(sqrt(xi))))

        xi = conjugate_gradient(
            normal_operator, sqrt_t(self._adjoint_map(x)), self.cg, lambda r: self._spectral(r, 1.0 / (s2 + diagonal))
        )
        return self._forward_map(sqrt(xi))

    def _normal_columns(self, chunk: int = 512):
        r"""Yield ``(index slice, columns)`` of :math:`B^\top G^\top G B`, float64 ``(n, N)`` (CPU)."""
        for index, units in _unit_chunks(self.grf.resolution, chunk):
            columns = self._sqrt_adjoint(self._adjoint_map(self._forward_map(self.grf.covariance_sqrt(units))))
            yield index, columns.flatten(1)

    def _eigenbasis(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(V, \kappa)` of :math:`B^\top G^\top G B` without its null space, ``(N, R)``, ``(R,)`` float64.

        Formed once, from the columns of the normal operator on the CPU, then kept on ``device``.
        """
        if self._eigen is None:
            n = self.grf.resolution**2
            normal = torch.empty(n, n, dtype=torch.float64, device="cpu")
            for index, columns in self._normal_columns():
                normal[index] = columns
            normal = 0.5 * (normal + normal.T)
            values, vectors = torch.linalg.eigh(normal)
            del normal
            kept = values > EIGEN_RELATIVE_FLOOR * values[-1]
            self._eigen = (vectors[:, kept].contiguous(), values[kept].contiguous())
        vectors, values = self._eigen
        if vectors.device != device:
            self._eigen = (vectors.to(device), values.to(device))
        return self._eigen

    def gaussian_spectrum(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""Coordinates :math:`W^\top v` ``(B, R)`` and variances :math:`\kappa` ``(R,)``, float64, with
        :math:`D_\sigma = W \operatorname{diag}(\kappa / (\kappa + \sigma^2)) W^\top` (module docstring);
        ``None`` unless ``solver="eigen"`` (the closed form and CG have no stored eigenbasis)."""
        if self.solver != "eigen" or self.diagonal is None:
            return None
        check_field(v, resolution=self.resolution, channels=len(self.channels), name="v")
        vectors, values = self._eigenbasis(v.device)
        coordinates = self._sqrt_adjoint(self._adjoint_map(v.double())).flatten(1) @ vectors
        return coordinates / values.sqrt(), values

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor:
        """:math:`J v`: the zero-mean exact denoiser is linear, so its Jacobian is itself."""
        return self.denoise(v, sigma)

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Exact normalised samples ``(n, K, S, S)``: :math:`G a`, :math:`a \\sim N(0, C)`."""
        return self._forward_map(self.grf.sample(n, generator, dtype=dtype))


class GaussianPrior(LinearGaussianPrior):
    """Exact prior of one Gaussian random field ``grf`` (channel ``channel``).

    Closed form in the GRF's eigenbasis when its covariance is diagonal there; preconditioned
    conjugate gradients for a zeroed boundary (e.g. :func:`pdeinv.datasets.helmholtz_source_grf`).
    """

    def __init__(self, grf, channel: str = "field", cg: CGConfig = CGConfig(), solver: str = "cg"):
        super().__init__(grf, [IDENTITY_MAP], [channel], cg, solver)


class JointGaussianPrior(LinearGaussianPrior):
    """Exact prior of the joint (input, solution) field ``(a, A a)``, ``a ~ grf``, of a linear PDE.

    Parameters
    ----------
    grf : pdeinv.datasets.GaussianRandomField
        Law of the input (a ``"cosine"``-basis field, e.g. the Helmholtz source).
    operator : deepinv LinearPhysics
        The solution map with ``A`` and ``A_adjoint``, e.g. ``pdeinv.operators.helmholtz.Helmholtz(S)``.
    channels : tuple of str
        Names of the input and solution channels.
    cg : CGConfig
        Conjugate-gradient settings.
    solver : {"cg", "eigen"}
        See :class:`LinearGaussianPrior`.
    """

    def __init__(
        self, grf, operator, channels: tuple[str, str] = ("source", "solution"), cg: CGConfig = CGConfig(),
        solver: str = "cg",
    ):
        if getattr(operator, "resolution", grf.resolution) != grf.resolution:
            raise ValueError(
                f"operator resolution {operator.resolution} differs from the GRF's {grf.resolution}; build both at one S"
            )
        super().__init__(grf, [IDENTITY_MAP, operator_map(operator)], channels, cg, solver)
        self.operator = operator


def helmholtz_joint_prior(
    resolution: int, k: float = 1.0, cg: CGConfig = CGConfig(), solver: str = "cg"
) -> JointGaussianPrior:
    """The exact prior of the Helmholtz (``k = 1``) or Poisson (``k = 0``) benchmark pairs (source, solution).

    The source is :func:`pdeinv.datasets.helmholtz_source_grf` and the solution its exact discrete solve,
    so this Gaussian is the true law of the generated data at grid size ``resolution``: an oracle prior.
    """
    from pdeinv.datasets import helmholtz_source_grf
    from pdeinv.operators.helmholtz import Helmholtz

    return JointGaussianPrior(helmholtz_source_grf(resolution), Helmholtz(resolution, k=k), cg=cg, solver=solver)
