"""Gaussian random fields on the unit square: the (alpha, tau, sigma) Matern-like family.

A field is a zero-mean Gaussian vector on an ``S x S`` grid whose covariance matrix ``C`` is
diagonal in an orthonormal basis ``{v_k}`` of grid functions (the unitary 2-D DFT for
``basis="periodic"``, the orthonormal 2-D DCT-II for ``basis="cosine"``):

    C = sum_k lambda_k v_k v_k^*,   lambda_k = S^2 sigma^2 (omega_k^2 + tau^2)^(-alpha),   lambda_0 = 0,

with ``omega_k = 2 pi |k|`` (periodic, ``k`` the signed FFT wavenumbers) or ``omega_k = pi |k|``
(cosine, ``k = (k1, k2) >= 0`` the DCT indices). This is the continuous covariance operator
``sigma^2 (-Laplacian + tau^2)^(-alpha)`` (periodic or Neumann eigenfunctions, constant mode
removed, only the modes the grid resolves) evaluated at the grid points: the factor ``S^2``
converts the L2-normalised eigenfunctions into unit-norm grid vectors. ``lambda_k`` are the
*eigenvalues* used by :meth:`GaussianRandomField.apply_spectral`; ``sigma`` defaults to
``tau^(alpha - 1)`` (``tau^((2 alpha - d)/2)`` with ``d = 2``), the default of both anchors.

``zero_boundary=True`` multiplies the field by the mask ``M`` that is 0 on the outer ring of grid
points, so the covariance is ``M C M``, no longer diagonal in the basis.

Two presets reproduce the benchmark generators:

- :func:`ns_vorticity_grf`: the classic FNO initial vorticity, ``alpha=2.5, tau=7``, periodic grid
  ``x_i = i/S``; covariance ``7^3 (-Laplacian + 49)^(-2.5)``.
- :func:`helmholtz_source_grf`: the DiffusionPDE Helmholtz/Poisson source, ``alpha=2, tau=3``,
  cosine basis, boundary zeroed; stored on the vertex grid ``x_i = i/(S-1)``.
- :func:`darcy_level_set_grf`: the FNO / DiffusionPDE Darcy level-set field, the same series
  without the zeroed boundary; the permeability is ``12`` where it is ``>= 0`` and ``3`` elsewhere
  (:func:`darcy_permeability`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from pdeinv.datasets.dct import dct2, dct_matrix, idct2
from pdeinv.operators.base import check_field
from pdeinv.pdes.darcy import DARCY_HIGH, DARCY_LOW

BASES = ("periodic", "cosine")


@dataclass(frozen=True)
class GaussianRandomField:
    """A zero-mean Gaussian random field ``N(0, C)`` on an ``S x S`` grid (see the module doc).

    Parameters
    ----------
    resolution : int
        Grid size ``S`` (>= 2).
    alpha : float
        Smoothness exponent (> 0); larger is smoother.
    tau : float
        Inverse length scale (> 0).
    sigma : float, optional
        Amplitude; ``None`` means ``tau^(alpha - 1)``.
    basis : {"periodic", "cosine"}
        Eigenbasis of ``C``: the unitary DFT (periodic field, FNO sampler) or the orthonormal
        DCT-II (Neumann cosine series, DiffusionPDE sampler).
    zero_boundary : bool
        Set the outer ring of grid points to zero (covariance ``M C M``).

    Notes
    -----
    Sampling follows each anchor exactly. Periodic (FNO ``GaussianRF``): draw complex standard
    normal coefficients ``xi_k`` (``E|xi|^2 = 1``), multiply by ``sqrt_eig_k = S^2 sqrt(2) sigma
    (4 pi^2 |k|^2 + tau^2)^(-alpha/2)`` (``sqrt_eig_0 = 0``) and take the real part of the
    inverse FFT (with its ``1/S^2``); the real part of a non-Hermitian series has exactly the
    covariance ``C``. Cosine (DiffusionPDE ``GRF.m``): draw real ``xi_k ~ N(0, 1)`` and return
    ``idct2(s sigma (pi^2 |k|^2 + tau^2)^(-alpha/2) xi)`` with the mean coefficient set to 0;
    our reading of the scale is ``s = S``, which makes the covariance exactly ``C`` above.
    """

    resolution: int
    alpha: float
    tau: float
    sigma: float | None = None
    basis: str = "periodic"
    zero_boundary: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 2:
            raise ValueError(f"resolution must be an integer >= 2, got {self.resolution!r}")
        for name in ("alpha", "tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be positive (or None for tau^(alpha-1)), got {self.sigma!r}")
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")

    @property
    def amplitude(self) -> float:
        """``sigma``, or its default ``tau^(alpha - 1)``."""
        return float(self.tau ** (self.alpha - 1.0)) if self.sigma is None else float(self.sigma)

    def wavenumbers(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Integer wavenumbers ``(k1, k2)`` of the basis, each ``(S, S)`` float64, ``[i, j] -> (k1[i], k2[j])``.

        Periodic: the FFT ordering ``0, 1, ..., S/2 - 1, -S/2, ..., -1``; cosine: ``0, ..., S-1``.
        """
        s = self.resolution
        if self.basis == "periodic":
            k = torch.fft.fftfreq(s, d=1.0 / s, dtype=torch.float64, device=device).round()
        else:
            k = torch.arange(s, dtype=torch.float64, device=device)
        return torch.meshgrid(k, k, indexing="ij")

    def eigenvalues(self, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
        """Eigenvalues ``lambda_k`` of ``C`` in the orthonormal basis, shape ``(S, S)``, in the basis' ordering.

        ``lambda_k = S^2 sigma^2 (omega_k^2 + tau^2)^(-alpha)``, ``lambda_0 = 0`` (module doc). With
        ``zero_boundary=True`` these are the eigenvalues of the unmasked field.
        """
        k1, k2 = self.wavenumbers(device)
        omega = (2.0 if self.basis == "periodic" else 1.0) * math.pi
        lam = self.resolution**2 * self.amplitude**2 * (omega**2 * (k1**2 + k2**2) + self.tau**2) ** (-self.alpha)
        lam[0, 0] = 0.0
        return lam.to(dtype)

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` independent fields, shape ``(n, 1, S, S)``: ``synthesize(draw_coefficients(...))``.

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        generator : torch.Generator
            Source of randomness (never the global RNG); the noise is drawn on the generator's
            device, in ``dtype``.
        dtype : torch.dtype
            ``torch.float32`` (default) or ``torch.float64``.
        device : str or torch.device, optional
            Device of the result and of the transform (default: the generator's device).
        """
        xi = self.draw_coefficients(n, generator, dtype=dtype)
        return self.synthesize(xi.to(generator.device if device is None else torch.device(device)))

    def draw_coefficients(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Standard normal basis coefficients ``xi``, ``(n, 1, S, S)``, on the generator's device.

        Complex (``E|xi|^2 = 1``, complex64/complex128) for the periodic basis, real for the cosine basis.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if not isinstance(generator, torch.Generator):
            raise ValueError(
                f"generator must be a torch.Generator, got {type(generator).__name__}; use e.g. "
                "torch.Generator().manual_seed(0) or pdeinv.datasets.sample_generator(seed, index)"
            )
        if self.basis == "periodic":
            dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        shape = (n, 1, self.resolution, self.resolution)
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)

    def synthesize(self, xi: torch.Tensor) -> torch.Tensor:
        """Fields from coefficients ``xi`` of :meth:`draw_coefficients`, ``(n, 1, S, S)`` real, same device.

        Periodic: ``Re(ifft2(S sqrt(2 lambda) xi))`` (the FNO sampler, see the class notes);
        cosine: ``idct2(sqrt(lambda) xi)``; then the boundary mask if ``zero_boundary``. Each
        sample is transformed independently of the others in the batch.
        """
        expected = (1, self.resolution, self.resolution)
        if xi.ndim != 4 or tuple(xi.shape[1:]) != expected or xi.is_complex() != (self.basis == "periodic"):
            kind = "complex" if self.basis == "periodic" else "real"
            raise ValueError(
                f"xi must be {kind} coefficients of shape (n, {', '.join(map(str, expected))}) as returned by "
                f"draw_coefficients, got {'complex' if xi.is_complex() else 'real'} {tuple(xi.shape)}"
            )
        real_dtype = xi.real.dtype if xi.is_complex() else xi.dtype
        lam = self.eigenvalues(dtype=real_dtype, device=xi.device)
        if self.basis == "periodic":
            field = torch.fft.ifft2(self.resolution * torch.sqrt(2.0 * lam) * xi).real
        else:
            field = idct2(torch.sqrt(lam) * xi)
        return self._mask(field)

    def covariance(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``C`` (or ``M C M`` with ``zero_boundary``) to fields ``x`` of shape ``(B, 1, S, S)``."""
        check_field(x, resolution=self.resolution, channels=1, name="x")
        return self._mask(self._spectral(self._mask(x), lambda lam: lam))

    def covariance_sqrt(self, x: torch.Tensor) -> torch.Tensor:
        """Apply a square-root factor ``B`` of the covariance, ``B B^T = C``, to ``(B, 1, S, S)`` fields.

        ``B = C^(1/2) = sum_k sqrt(lambda_k) v_k v_k^*`` (symmetric); with ``zero_boundary`` it is
        ``M C^(1/2)``, so ``B B^T = M C M``. ``B`` applied to white noise is a sample of the field.
        """
        check_field(x, resolution=self.resolution, channels=1, name="x")
        return self._mask(self._spectral(x, torch.sqrt))

    def variance(self, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
        """Exact pointwise variance ``C_ii`` as an ``(S, S)`` tensor.

        Periodic: the constant ``sum_k lambda_k / S^2``. Cosine: ``sum_k lambda_k v_k(i)^2``,
        computed as ``(D^2)^T Lambda (D^2)`` with the DCT matrix ``D``; zero on a zeroed boundary.
        """
        lam = self.eigenvalues(dtype=torch.float64, device=device)
        if self.basis == "periodic":
            var = torch.full_like(lam, float(lam.sum()) / self.resolution**2)
        else:
            d2 = dct_matrix(self.resolution, dtype=torch.float64, device=device) ** 2
            var = d2.T @ lam @ d2
        return self._mask(var).to(dtype)

    def apply_spectral(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Apply ``sum_k fn(lambda_k) v_k v_k^*`` to fields ``x`` of shape ``(B, 1, S, S)``.

        ``fn`` maps the ``(S, S)`` eigenvalue tensor of :meth:`eigenvalues` (same dtype and device
        as ``x``) elementwise, e.g. ``lambda lam: 1 / (lam + s**2)`` gives ``(C + s^2 I)^(-1) x``.

        Raises
        ------
        ValueError
            With ``zero_boundary=True``: ``M C M`` is not diagonal in the basis.
        """
        if self.zero_boundary:
            raise ValueError(
                "apply_spectral needs a covariance diagonal in the basis, but zero_boundary=True gives M C M, "
                "which is not; use covariance() inside an iterative solver (e.g. conjugate gradients), or a "
                "GaussianRandomField with zero_boundary=False"
            )
        check_field(x, resolution=self.resolution, channels=1, name="x")
        return self._spectral(x, fn)

    def _spectral(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        scale = fn(self.eigenvalues(dtype=x.dtype, device=x.device))
        if self.basis == "periodic":
            return torch.fft.ifft2(scale * torch.fft.fft2(x, norm="ortho"), norm="ortho").real
        return idct2(scale * dct2(x))

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        if not self.zero_boundary:
            return x
        mask = torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
        mask[1:-1, 1:-1] = 1.0
        return x * mask


def ns_vorticity_grf(resolution: int) -> GaussianRandomField:
    """The FNO / DiffusionPDE Navier-Stokes initial vorticity: periodic, ``alpha=2.5, tau=7, sigma=7^1.5``.

    Covariance ``7^3 (-Laplacian + 49)^(-2.5)`` on the torus, grid ``x_i = i/S``, zero mean mode.
    """
    return GaussianRandomField(resolution, alpha=2.5, tau=7.0, basis="periodic")


def helmholtz_source_grf(resolution: int) -> GaussianRandomField:
    """The DiffusionPDE Helmholtz/Poisson source: cosine basis, ``alpha=2, tau=3, sigma=3``, boundary zeroed.

    Index ``i`` is stored at the vertex ``x_i = i/(S-1)``, as in DiffusionPDE; the cosine series
    itself is evaluated at the DCT-II points ``(i + 1/2)/S`` (the anchor's definition).

    Examples
    --------
    Sample ``i`` of a split with seed ``s`` is drawn from ``sample_generator(s, i)``:

    >>> from pdeinv.datasets import helmholtz_source_grf, sample_generator
    >>> grf = helmholtz_source_grf(64)
    >>> a = grf.sample(2, sample_generator(2, 0))
    >>> a.shape
    torch.Size([2, 1, 64, 64])
    >>> bool((a[..., 0, :] == 0).all() and (a[..., -1] == 0).all())
    True
    """
    return GaussianRandomField(resolution, alpha=2.0, tau=3.0, basis="cosine", zero_boundary=True)


def darcy_level_set_grf(resolution: int) -> GaussianRandomField:
    """The FNO / DiffusionPDE Darcy level-set field: cosine basis, ``alpha=2, tau=3, sigma=3``.

    Covariance ``9 (-Laplacian + 9)^(-2)`` with Neumann eigenfunctions (constant mode removed); the
    boundary is not zeroed. Index ``i`` is stored at the vertex ``x_i = i/(S-1)``.
    """
    return GaussianRandomField(resolution, alpha=2.0, tau=3.0, basis="cosine")


def darcy_permeability(level_set: torch.Tensor) -> torch.Tensor:
    """Binary permeability ``a = 12`` where ``level_set >= 0`` and ``3`` elsewhere, in the input's dtype.

    The values and the convention at zero follow the DiffusionPDE generator (``generate_darcy.m``);
    a continuous field is exactly zero with probability 0.
    """
    high = torch.tensor(DARCY_HIGH, dtype=level_set.dtype, device=level_set.device)
    return torch.where(level_set >= 0, high, torch.full_like(level_set, DARCY_LOW))


def smooth_darcy_permeability(level_set: torch.Tensor, width: float) -> torch.Tensor:
    r"""Differentiable stand-in of :func:`darcy_permeability`: :math:`a = 3 + 9\,\mathrm{sigmoid}(\mu / w)`.

    Equal to the binary permeability where :math:`|\mu| \gg w` and on the same side of the 7.5
    threshold everywhere (:math:`a > 7.5 \iff \mu > 0`), so a level set optimised through it
    thresholds to a binary permeability with the data's convention. ``width`` :math:`w` is in the
    level set's units.
    """
    return DARCY_LOW + (DARCY_HIGH - DARCY_LOW) * torch.sigmoid(level_set / width)

