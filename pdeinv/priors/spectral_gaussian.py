r"""A Gaussian denoiser fitted to data: per-mode Wiener filtering in a fixed orthonormal basis.

Let :math:`\hat x_k = (T x)_k` be the coefficients of a normalised field ``(C, S, S)`` in an
orthonormal spectral basis :math:`T` (``"fft"``: the unitary 2-D real FFT, for periodic fields;
``"dst"``: the orthonormal DST-I of the interior of a vertex grid, for fields that vanish on the
boundary; ``"dct"``: the orthonormal DCT-II of the same interior, for such fields when their
interior is a cosine series that is cut to zero at the boundary, as DiffusionPDE's sources are).
If the coefficients of different modes are uncorrelated with per-mode channel covariance
:math:`\Sigma_k = E[\hat x_k \hat x_k^H]` (``C x C``), the posterior mean of :math:`x` given
:math:`x + \sigma n` (white noise, per-coefficient variance :math:`\sigma^2` because :math:`T`
is orthonormal) is the Wiener filter

.. math:: E[\hat x_k \mid \hat y_k] = \Sigma_k (\Sigma_k + \sigma^2 I)^{-1} \hat y_k
          = U_k \,\mathrm{diag}\!\Big(\frac{\lambda_{k}}{\lambda_{k} + \sigma^2}\Big) U_k^H \hat y_k,

with :math:`\Sigma_k = U_k \Lambda_k U_k^H`, applied to the field minus its mean
:math:`m = E[x]` (a field, not a constant: forced flows carry a deterministic part that a
zero-mean stationary model would mistake for random-phase variance). This is exact for a
stationary Gaussian field (``fft``) and, in the ``dst`` basis, for a linear Dirichlet problem
whose operator is diagonal there (Helmholtz, Poisson): the joint covariance of (source, solution)
is then rank one per mode, so every denoised estimate satisfies the PDE. For other data it is the
best *linear* denoiser of this form, and :class:`~pdeinv.priors.edm.EDMDenoiser` lets a network
learn only the rest.

Function-space convention: the covariances are stored as densities independent of the grid,
:math:`P_k = \Sigma_k / S^2` (``fft``) or :math:`\Sigma_k / (S - 1)^2` (``dst``, ``dct``), indexed by
the physical wavenumber :math:`k`. On a finer grid the modes seen in training keep their density; a
mode beyond them takes the density of the known mode in the same direction on the outermost
known shell, times :math:`(r / r_0)^{(p_c + p_d)/2}` for the channel pair ``(c, d)``, where
:math:`p_c` is the power-law exponent of channel ``c``'s spectrum fitted on the outer half of the
known shells (this keeps a rank-one :math:`\Sigma_k` rank one). The mean field is stored the same
way, as amplitudes :math:`\hat m_k / S` (``fft``) or :math:`\hat m_k / (S - 1)` (``dst``, ``dct``), and is
zero beyond the known modes.
"""

from __future__ import annotations

import torch
from torch import nn

from pdeinv.datasets.dct import dct2, idct2
from pdeinv.operators.base import check_field
from pdeinv.operators.sine_transform import dst1_2d
from pdeinv.priors.base import sigma_column

BASES = ("fft", "dst", "dct")
BASE_CHOICES = ("none", "auto") + BASES  # the training option: no base, a basis picked from the data, or one
BOUNDARY_TOLERANCE = 1e-3


def to_coefficients(x: torch.Tensor, basis: str) -> torch.Tensor:
    """``(B, C, S, S)`` field to its coefficients.

    Complex ``(B, C, S, S//2+1)`` (fft) or real ``(B, C, S-2, S-2)`` of the interior (dst, dct).
    """
    if basis == "fft":
        return torch.fft.rfft2(x, norm="ortho")
    interior = x[..., 1:-1, 1:-1]
    return dct2(interior) if basis == "dct" else dst1_2d(interior)


def from_coefficients(coefficients: torch.Tensor, basis: str, size: int) -> torch.Tensor:
    """Inverse of :func:`to_coefficients` onto an ``S x S`` grid (dst, dct: zero boundary)."""
    if basis == "fft":
        return torch.fft.irfft2(coefficients, s=(size, size), norm="ortho")
    interior = idct2(coefficients) if basis == "dct" else dst1_2d(coefficients)
    return nn.functional.pad(interior, (1, 1, 1, 1))


def wavenumbers(basis: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer wavenumbers ``(kx, ky)`` of the coefficient grid of :func:`to_coefficients`, each 2-D."""
    if basis == "fft":
        kx = torch.fft.fftfreq(size, 1.0 / size, device="cpu")
        ky = torch.arange(size // 2 + 1, dtype=kx.dtype, device="cpu")
    elif basis == "dct":
        kx = ky = torch.arange(size - 2, dtype=torch.float32, device="cpu")
    else:
        kx = ky = torch.arange(1, size - 1, dtype=torch.float32, device="cpu")
    return torch.meshgrid(kx.round().long(), ky.round().long(), indexing="ij")


def _solve_dtype(basis: str) -> torch.dtype:
    return torch.complex128 if basis == "fft" else torch.float64


def _grid_scale(basis: str, size: int) -> float:
    r"""Coefficient variance per unit density: :math:`S^2` (fft) or :math:`(S - 1)^2` (dst, dct).

    An orthonormal 2-D transform's coefficient of a smooth function grows like the square root of
    the number of points per unit area: :math:`S \hat f_k` (fft) and about :math:`2 (S - 1) \hat f_k`
    (dst, dct).
    """
    return float(size**2 if basis == "fft" else (size - 1) ** 2)


def _power_law_exponents(density: torch.Tensor, radius: torch.Tensor, r_max: float) -> torch.Tensor:
    """Per-channel exponent ``p_c`` of ``diag P(r) ~ r^p`` fitted on modes with ``r_max/2 <= r <= r_max``."""
    band = (radius >= r_max / 2) & (radius <= r_max) & (radius > 0)
    log_r = radius[band].log()
    diagonal = density.diagonal(dim1=-2, dim2=-1)[band].clamp_min(1e-30).log()
    centred = log_r - log_r.mean()
    return (centred[:, None] * (diagonal - diagonal.mean(0))).sum(0) / (centred**2).sum()


class SpectralGaussianDenoiser(nn.Module):
    r"""The per-mode Wiener denoiser of the module docstring, fitted to data with :meth:`fit`.

    Parameters
    ----------
    basis : {"fft", "dst", "dct"}
        Spectral basis.
    channels : int
        Number of field channels ``C``.
    resolution : int
        Grid size ``S_0`` the densities were estimated on.

    Attributes
    ----------
    density : torch.Tensor
        :math:`P_k`, ``(K_1, K_2, C, C)`` on the coefficient grid of ``S_0`` (complex for fft).
    offset : torch.Tensor
        Per-channel constant removed before filtering and added back, ``(C,)``: the channel mean
        (fft) or the boundary value (dst, dct: the normalised value of a physical zero).
    mean : torch.Tensor
        The mean field about ``offset`` as grid-independent amplitudes, ``(K_1, K_2, C)``.
    """

    resolution_free = True

    def __init__(self, basis: str, channels: int, resolution: int):
        super().__init__()
        if basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
        self.basis, self.channels, self.resolution = basis, int(channels), int(resolution)
        kx, _ = wavenumbers(basis, self.resolution)
        shape = tuple(kx.shape) + (self.channels, self.channels)
        dtype = torch.complex64 if basis == "fft" else torch.float32
        self.register_buffer("density", torch.zeros(shape, dtype=dtype, device="cpu"))
        self.register_buffer("offset", torch.zeros(self.channels, device="cpu"))
        self.register_buffer("mean", torch.zeros(shape[:-1], dtype=dtype, device="cpu"))
        self._spectra: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, fields: torch.Tensor, basis: str, chunk: int = 512) -> SpectralGaussianDenoiser:
        """Estimate :math:`P_k = E[\\hat x_k \\hat x_k^H] / \\text{scale}` from normalised fields ``(N, C, S, S)``.

        Raises
        ------
        ValueError
            For ``dst`` when the fields do not vanish on the boundary (use ``fft``).
        """
        check_field(fields, name="fields")
        size, channels = fields.shape[-1], fields.shape[1]
        offset = fields.double().mean(dim=(0, 2, 3)) if basis == "fft" else boundary_values(fields)
        if basis != "fft":
            _check_zero_boundary(fields - offset.reshape(1, -1, 1, 1).float())
        total, first = 0, 0
        for part in fields.split(chunk):
            centred = part.double() - offset.reshape(1, -1, 1, 1)
            c = to_coefficients(centred, basis).permute(0, 2, 3, 1)
            total = total + (c[..., :, None] * c[..., None, :].conj()).sum(0)
            first = first + c.sum(0)
        n, scale = fields.shape[0], _grid_scale(basis, size)
        mean = first / n
        covariance = total / n - mean[..., :, None] * mean[..., None, :].conj()
        model = cls(basis, channels, size)
        model.density.copy_((covariance / scale).to(model.density.dtype))
        model.mean.copy_((mean / scale**0.5).to(model.mean.dtype))
        model.offset.copy_(offset.float())
        return model

    def mean_field(self, size: int) -> torch.Tensor:
        """The data mean :math:`m` on an ``S x S`` grid, ``(1, C, S, S)``."""
        kx, ky = wavenumbers(self.basis, size)
        band = self._band()
        inside = ((kx.abs() <= band) & (ky.abs() <= band)).to(self.mean.device)
        amplitudes = self.mean[self._index(kx.to(self.mean.device), ky.to(self.mean.device))]
        coefficients = torch.where(inside[..., None], amplitudes, 0) * _grid_scale(self.basis, size) ** 0.5
        field = from_coefficients(coefficients.permute(2, 0, 1)[None], self.basis, size)
        return self.offset.reshape(1, -1, 1, 1) + field.real.to(self.offset.dtype)

    def covariance(self, size: int) -> torch.Tensor:
        r""":math:`\Sigma_k` on the coefficient grid of an ``S x S`` field, ``(K_1, K_2, C, C)``."""
        if size == self.resolution:
            return self.density * _grid_scale(self.basis, size)
        kx, ky = wavenumbers(self.basis, size)
        return self._density_at(kx.to(self.density.device), ky.to(self.density.device)) * _grid_scale(
            self.basis, size
        )

    def _density_at(self, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
        """Densities at wavenumbers ``kx, ky`` (2-D), extrapolated beyond the training band."""
        band = self._band()
        known_x, known_y = wavenumbers(self.basis, self.resolution)
        r_known = torch.hypot(known_x.double(), known_y.double()).to(kx.device)
        exponents = _power_law_exponents(self.density.real.double(), r_known, float(band))
        radius = torch.hypot(kx.double(), ky.double())
        inside = (kx.abs() <= band) & (ky.abs() <= band)
        factor = torch.where(inside, 1.0, band / radius.clamp_min(1e-12))
        nearest_x, nearest_y = (kx * factor).round().long(), (ky * factor).round().long()
        density = self.density[self._index(nearest_x, nearest_y)]
        ratio = radius / torch.hypot(nearest_x.double(), nearest_y.double()).clamp_min(1.0)
        pair = (exponents[:, None] + exponents[None, :]) / 2
        scaling = torch.where(inside, 1.0, ratio)[..., None, None] ** pair
        return density * scaling.to(density.real.dtype)

    def _band(self) -> int:
        """Largest wavenumber per axis measured without aliasing on the training grid."""
        return {"fft": self.resolution // 2 - 1, "dst": self.resolution - 2, "dct": self.resolution - 3}[self.basis]

    def _index(self, kx: torch.Tensor, ky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of wavenumbers in the stored coefficient grid."""
        if self.basis == "fft":
            n = self.resolution
            kx = kx.clamp(-(n // 2), n // 2 - 1)
            return kx % n, ky.clamp(0, n // 2)
        if self.basis == "dct":
            return kx.clamp(0, self.resolution - 3), ky.clamp(0, self.resolution - 3)
        return kx.clamp(1, self.resolution - 2) - 1, ky.clamp(1, self.resolution - 2) - 1

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Wiener estimate :math:`E[x_0 \mid x] = m + W_\sigma (x - m)`, ``(B, C, S, S) -> (B, C, S, S)``."""
        mean = self._spectrum(x.shape[-1], x.device)[2].to(x.dtype)
        return mean + self.linear(x - mean, sigma)

    def linear(self, v: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""The filter :math:`W_\sigma v`, also the Jacobian of :meth:`forward`; ``sigma`` float or ``(B,)``."""
        return self._per_mode(v, sigma, lambda values, s2: values / (values + s2))

    def posterior_sqrt(self, v: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""The square root of the posterior covariance, :math:`R_\sigma v`, ``(B, C, S, S) -> (B, C, S, S)``.

        .. math:: R_\sigma = U_k\,\mathrm{diag}\Big(\sqrt{\frac{\lambda_k \sigma^2}{\lambda_k + \sigma^2}}\Big) U_k^H,
                  \qquad R_\sigma^2 = \sigma^2 W_\sigma = \operatorname{Cov}[x_0 \mid x_\sigma],

        per mode; for white data of variance :math:`\sigma_d^2` it is EDM's
        :math:`c_\text{out} = \sigma\sigma_d / \sqrt{\sigma^2 + \sigma_d^2}`. ``sigma`` float or ``(B,)``.
        """
        return self._per_mode(v, sigma, lambda values, s2: (values * s2 / (values + s2)).sqrt())

    def spectrum(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Coordinates :math:`W^\top v` and variances :math:`\lambda` with :math:`W_\sigma = W \operatorname{diag}\big(\tfrac{\lambda}{\lambda + \sigma^2}\big) W^\top`.

        :math:`W` stacks the eigenvectors :math:`U_k` of every mode in the orthonormal basis
        :math:`T`, so :meth:`linear` is, for every :math:`\sigma`, a diagonal scaling in these
        coordinates: :math:`\langle u, W_\sigma v\rangle = \sum_n (W^\top u)_n\, g_n\, (W^\top v)_n`
        with :math:`g_n = \lambda_n / (\lambda_n + \sigma^2)`. For ``fft`` the real and imaginary
        parts of the half spectrum are separate coordinates, weighted by :math:`\sqrt 2` on the
        columns whose conjugate mode is not stored (all but :math:`k_y = 0` and, for even ``S``,
        :math:`k_y = S/2`).

        Parameters
        ----------
        v : torch.Tensor
            Normalised field directions ``(B, C, S, S)``.

        Returns
        -------
        coordinates : torch.Tensor
            float64 ``(B, N)``: ``N = K_1 K_2 C`` (dst, dct) or ``2 K_1 K_2 C`` (fft).
        variances : torch.Tensor
            float64 ``(N,)``, :math:`\lambda_n \ge 0` (normalised units squared).
        """
        check_field(v, channels=self.channels, name="v")
        size = v.shape[-1]
        values, vectors, _ = self._spectrum(size, v.device)
        coefficients = to_coefficients(v.double(), self.basis).permute(0, 2, 3, 1)
        projected = (vectors.conj().transpose(-1, -2) @ coefficients[..., None])[..., 0]
        if self.basis != "fft":
            return projected.flatten(1), values.flatten()
        weight = torch.full((projected.shape[2],), 2.0**0.5, dtype=torch.float64, device=v.device)
        weight[0] = 1.0
        if size % 2 == 0:
            weight[-1] = 1.0
        projected = projected * weight[:, None]
        coordinates = torch.stack((projected.real, projected.imag), dim=1).flatten(1)
        return coordinates, torch.cat((values.flatten(), values.flatten()))

    def _per_mode(self, v: torch.Tensor, sigma: float | torch.Tensor, gain) -> torch.Tensor:
        """:math:`U_k \\mathrm{diag}(g(\\lambda_k, \\sigma^2)) U_k^H \\hat v_k` for every mode ``k`` of ``v``."""
        check_field(v, channels=self.channels, name="v")
        size = v.shape[-1]
        s2 = sigma_column(sigma, v).double() ** 2
        values, vectors, _ = self._spectrum(size, v.device)
        coefficients = to_coefficients(v.double(), self.basis).permute(0, 2, 3, 1)
        projected = (vectors.conj().transpose(-1, -2) @ coefficients[..., None])[..., 0]
        scaled = projected * gain(values, s2)
        estimate = (vectors @ scaled[..., None])[..., 0].permute(0, 3, 1, 2)
        return from_coefficients(estimate, self.basis, size).to(v.dtype)

    def _spectrum(self, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Eigenvalues, eigenvectors of :math:`\Sigma_k` and the mean field on an ``S x S`` grid, cached.

        The cache key includes the buffers' versions, so a refit or a loaded state invalidates it.
        """
        key = (size, str(device)) + tuple((b.data_ptr(), b._version) for b in (self.density, self.mean, self.offset))
        if key not in self._spectra:
            values, vectors = torch.linalg.eigh(self.covariance(size).to(_solve_dtype(self.basis)))
            mean = self.mean_field(size).to(device)
            self._spectra = {key: (values.clamp_min(0.0).to(device), vectors.to(device), mean)}
        return self._spectra[key]

    def extra_repr(self) -> str:
        return f"basis={self.basis!r}, channels={self.channels}, resolution={self.resolution}"


def prior_spectrum(prior, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    r"""The factorisation :math:`J_\sigma = W \operatorname{diag}(\lambda / (\lambda + \sigma^2)) W^\top` of a prior's Gaussian part.

    ``(W^T v, lambda)`` as in :meth:`SpectralGaussianDenoiser.spectrum`, from the prior's own
    ``gaussian_spectrum(v)`` when it has one, else from its spectral Gaussian ``base`` (whose
    ``linear`` is then the prior's ``gaussian_jvp``); ``None`` for a prior without either.
    """
    own = getattr(prior, "gaussian_spectrum", None)
    if own is not None:
        return own(v)
    base = getattr(prior, "base", None)
    return base.spectrum(v) if isinstance(base, SpectralGaussianDenoiser) else None


def _boundary(fields: torch.Tensor) -> torch.Tensor:
    """The boundary ring of ``(N, C, S, S)`` fields, ``(N, C, 4S)``."""
    return torch.cat((fields[..., 0, :], fields[..., -1, :], fields[..., :, 0], fields[..., :, -1]), dim=-1)


def boundary_values(fields: torch.Tensor) -> torch.Tensor:
    """Mean boundary value of each channel of ``(N, C, S, S)`` fields, ``(C,)`` float64."""
    return _boundary(fields).double().mean(dim=(0, 2))


def _check_zero_boundary(fields: torch.Tensor) -> None:
    boundary = _boundary(fields).pow(2).mean().sqrt()
    interior = fields[..., 1:-1, 1:-1].pow(2).mean().sqrt()
    if boundary > BOUNDARY_TOLERANCE * interior:
        raise ValueError(
            f"the 'dst' Gaussian base needs fields that vanish on the boundary (boundary rms {float(boundary):.3g}, "
            f"interior rms {float(interior):.3g}); use basis='fft' for periodic or non-vanishing fields"
        )


def choose_basis(fields: torch.Tensor, grid: str | None) -> str:
    """``"fft"`` for a periodic grid; ``"dst"`` for a vertex grid whose fields vanish on the boundary, else ``"fft"``."""
    if grid == "periodic":
        return "fft"
    try:
        _check_zero_boundary(fields - boundary_values(fields).reshape(1, -1, 1, 1).float())
    except ValueError:
        return "fft"
    return "dst"

