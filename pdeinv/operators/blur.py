r"""Circular blurs of fields: isotropic Gaussian and linear motion blur.

A blur is the circular convolution of every channel of a field with a kernel :math:`k`,

.. math:: (A x)[i, j] = \sum_{|n_1|, |n_2| \le r} k[n_1, n_2]\, x[(i - n_1) \bmod S, (j - n_2) \bmod S],

computed by FFT (deepinv's :class:`~deepinv.physics.BlurFFT`: periodic boundary, exact adjoint
:math:`A^\top` = convolution with :math:`k[-n]`). Kernels are ``(2r+1, 2r+1)`` arrays centred on
their middle entry; the Gaussian and motion kernels sum to one and are point-symmetric
(:math:`k[-n] = k[n]`), so those blurs are self-adjoint. Lengths are in grid points (pixels); on
the periodic cell grid :math:`x_i = i / S` one pixel is :math:`1 / S`.
"""

from __future__ import annotations

import math

import torch
from deepinv.physics import BlurFFT

from pdeinv.operators._imaging import (
    check_positive,
    check_resolution,
    choose_shift_stride,
    gaussian_noise,
    lattice_translations,
    periodic_dihedral_group,
    point_reflection_group,
)
from pdeinv.operators.base import check_field
from pdeinv.operators.symmetry import SymmetryGroup

GAUSSIAN_TRUNCATION = 4.0
MOTION_SAMPLES_PER_PIXEL = 8


def gaussian_kernel(sigma_px: float) -> torch.Tensor:
    r"""Truncated, normalised isotropic Gaussian kernel.

    .. math:: k[n_1, n_2] = \frac{w[n_1]\, w[n_2]}{\left(\sum_{|n| \le r} w[n]\right)^2},
        \qquad w[n] = e^{-n^2 / (2 \sigma^2)}, \quad |n_1|, |n_2| \le r = \lceil 4 \sigma \rceil.

    Its DFT on an ``S``-periodic grid is separable and real: a Fourier mode
    :math:`\cos(2\pi (m_1 i + m_2 j) / S)` is multiplied by :math:`\hat w(m_1)\, \hat w(m_2)`,
    :math:`\hat w(m) = \sum_{|n| \le r} w[n] \cos(2\pi m n / S) / \sum_{|n| \le r} w[n]`.

    Parameters
    ----------
    sigma_px : float
        Standard deviation in grid points, > 0.

    Returns
    -------
    torch.Tensor
        Kernel ``(2r+1, 2r+1)``, float64.
    """
    sigma = check_positive(sigma_px, "sigma_px")
    radius = math.ceil(GAUSSIAN_TRUNCATION * sigma)
    n = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-(n**2) / (2 * sigma**2))
    w = w / w.sum()
    return torch.outer(w, w)


def motion_kernel(length_px: float, angle_deg: float) -> torch.Tensor:
    r"""Uniform linear motion kernel: a segment of length :math:`L` through the origin.

    The segment :math:`\{t e : |t| \le L/2\}`, :math:`e = (\cos\theta, \sin\theta)` in
    ``(i, j)`` index space (:math:`\theta = 0` blurs along ``x``, dim -2; :math:`90°` along ``y``),
    is drawn onto the grid with bilinear weights and averaged along its length,

    .. math:: k[n] = \frac{1}{L} \int_{-L/2}^{L/2} \Lambda(n_1 - t\cos\theta)\, \Lambda(n_2 - t\sin\theta)\, dt,
        \qquad \Lambda(s) = \max(0, 1 - |s|),

    with the midpoint rule on :math:`N = \lceil 8 L \rceil` equal pieces (exact on each piece where
    the integrand is linear, e.g. for :math:`\theta = 0` and :math:`L` a multiple of 1/4). The samples
    are symmetric about :math:`t = 0`, so :math:`k[-n] = k[n]`.

    Parameters
    ----------
    length_px : float
        Blur length :math:`L` in grid points, > 0.
    angle_deg : float
        Direction :math:`\theta` in degrees.

    Returns
    -------
    torch.Tensor
        Kernel ``(2r+1, 2r+1)`` with :math:`r = \lfloor L/2 \rfloor + 1`, float64, summing to one.
    """
    length = check_positive(length_px, "length_px")
    if not isinstance(angle_deg, (int, float)) or isinstance(angle_deg, bool) or not math.isfinite(angle_deg):
        raise ValueError(f"angle_deg must be a finite angle in degrees, got {angle_deg!r}")
    samples = math.ceil(MOTION_SAMPLES_PER_PIXEL * length)
    t = length * ((torch.arange(samples, dtype=torch.float64) + 0.5) / samples - 0.5)
    theta = math.radians(angle_deg)
    radius = math.floor(length / 2) + 1
    return _splat_bilinear(t * math.cos(theta), t * math.sin(theta), radius) / samples


def _splat_bilinear(pi: torch.Tensor, pj: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of unit bilinear footprints of points ``(pi, pj)`` on a grid centred at index ``radius``."""
    i0, j0 = torch.floor(pi), torch.floor(pj)
    fi, fj = pi - i0, pj - j0
    kernel = torch.zeros(2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
    for di, wi in ((0, 1 - fi), (1, fi)):
        for dj, wj in ((0, 1 - fj), (1, fj)):
            rows = (i0 + di).long() + radius
            cols = (j0 + dj).long() + radius
            kernel.index_put_((rows, cols), wi * wj, accumulate=True)
    return kernel


class CircularBlur(BlurFFT):
    r"""Circular convolution of every channel of a field with a fixed kernel, plus Gaussian noise.

    :math:`y = k \circledast x + \sigma \varepsilon` on the periodic ``S x S`` grid (see the
    module docstring). Circular convolution commutes with every circular translation; the declared
    ``symmetries`` are the translations by multiples of ``shift_stride`` with :math:`g' = g`.

    Parameters
    ----------
    resolution : int
        Grid size ``S``; inputs are ``(B, C, S, S)`` with any ``C``.
    kernel : torch.Tensor
        Kernel ``(2r+1, 2r+1)`` centred on its middle entry, with ``2r+1 <= S``. It is stored, and
        its DFT computed, in float32 (relative accuracy about 1e-7 also for float64 fields), so the
        output dtype follows the input; pass fields of any float dtype rather than casting the
        operator with ``.double()`` (that drops the imaginary part of deepinv's complex phase buffer).
    noise_level : float
        Standard deviation :math:`\sigma` of the additive Gaussian noise.
    shift_stride : int, optional
        Stride of the declared translations (a divisor of ``S``); default: at most 8 shifts per axis.
    rng : torch.Generator, optional
        Generator for the noise.
    """

    def __init__(
        self,
        resolution: int,
        kernel: torch.Tensor,
        noise_level: float = 0.0,
        shift_stride: int | None = None,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        _check_kernel(kernel, resolution)
        super().__init__(
            img_size=(1, resolution, resolution),
            filter=kernel.to(torch.float32)[None, None],
            noise_model=gaussian_noise(noise_level, rng),
        )
        self.resolution = resolution
        self.noise_level = float(noise_level)
        self.shift_stride = choose_shift_stride(resolution, shift_stride)
        self.symmetries = self._symmetries()

    def _symmetries(self) -> SymmetryGroup:
        return lattice_translations(self.resolution, self.shift_stride)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Blurred field ``(B, C, S, S)`` of a field ``x`` ``(B, C, S, S)``, without noise."""
        check_field(x, resolution=self.resolution, name="x")
        return super().A(x, **kwargs)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """Adjoint: convolution of ``y`` ``(B, C, S, S)`` with the reflected kernel."""
        check_field(y, resolution=self.resolution, name="y")
        return super().A_adjoint(y, **kwargs)


def _check_kernel(kernel: torch.Tensor, resolution: int) -> None:
    if not isinstance(kernel, torch.Tensor) or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError("kernel must be a square 2-D tensor (2r+1, 2r+1) centred on its middle entry")
    if kernel.shape[0] % 2 == 0 or kernel.shape[0] > resolution:
        raise ValueError(
            f"kernel must have an odd size 2r+1 <= resolution {resolution}, got {tuple(kernel.shape)}; "
            "use a smaller blur or a finer grid"
        )


class GaussianBlur(CircularBlur):
    r"""Isotropic Gaussian blur with periodic boundaries (:func:`gaussian_kernel`).

    ``symmetries``: the product of translations by multiples of ``shift_stride`` with the periodic
    D4 about the grid point (0, 0), :math:`g' = g` (the kernel is invariant under all eight).

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    sigma_px : float
        Kernel standard deviation in grid points; needs :math:`2\lceil 4\sigma \rceil + 1 \le S`.
    noise_level, shift_stride, rng
        As in :class:`CircularBlur`.
    """

    def __init__(
        self,
        resolution: int,
        sigma_px: float,
        noise_level: float = 0.0,
        shift_stride: int | None = None,
        rng: torch.Generator | None = None,
    ):
        super().__init__(resolution, gaussian_kernel(sigma_px), noise_level, shift_stride, rng)
        self.sigma_px = float(sigma_px)

    def _symmetries(self) -> SymmetryGroup:
        return SymmetryGroup.product(
            "shifts x periodic D4",
            lattice_translations(self.resolution, self.shift_stride),
            periodic_dihedral_group(self.resolution),
            "isotropic circular blur commutes with circular shifts, rotations and reflections",
        )


class MotionBlur(CircularBlur):
    r"""Linear motion blur with periodic boundaries (:func:`motion_kernel`).

    ``symmetries``: the product of translations by multiples of ``shift_stride`` with the point
    reflection :math:`(i, j) \mapsto (-i, -j) \bmod S`, :math:`g' = g` (the segment is centred).

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    length_px : float
        Blur length in grid points; needs :math:`2(\lfloor L/2 \rfloor + 1) + 1 \le S`.
    angle_deg : float
        Direction in degrees from the ``x`` axis (dim -2) towards ``y`` (dim -1).
    noise_level, shift_stride, rng
        As in :class:`CircularBlur`.
    """

    def __init__(
        self,
        resolution: int,
        length_px: float,
        angle_deg: float = 0.0,
        noise_level: float = 0.0,
        shift_stride: int | None = None,
        rng: torch.Generator | None = None,
    ):
        super().__init__(resolution, motion_kernel(length_px, angle_deg), noise_level, shift_stride, rng)
        self.length_px, self.angle_deg = float(length_px), float(angle_deg)

    def _symmetries(self) -> SymmetryGroup:
        return SymmetryGroup.product(
            "shifts x point reflection",
            lattice_translations(self.resolution, self.shift_stride),
            point_reflection_group(self.resolution),
            "a centred segment kernel commutes with circular shifts and the point reflection",
        )
