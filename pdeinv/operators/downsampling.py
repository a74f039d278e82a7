r"""Super-resolution forward model: anti-aliased decimation of a periodic field.

.. math:: y[k, l] = (h \circledast x)[f k, f l] + \sigma \varepsilon_{kl}, \qquad k, l = 0, \dots, S/f - 1,

where :math:`h` is the isotropic Gaussian anti-alias filter of :func:`~pdeinv.operators.blur.gaussian_kernel`
with standard deviation :math:`f / 2` grid points by default (so the coarse Nyquist mode
:math:`\pi / f` is attenuated by :math:`e^{-\pi^2 / 8} \approx 0.29`), applied circularly. The
kept samples ``i = 0, f, 2f, ...`` are the cell grid :math:`X_k = k / (S/f)` of the coarse
resolution ``S / f``. The adjoint places ``y`` back on those samples (zeros elsewhere) and applies
:math:`h^\top = h`.

deepinv's :class:`~deepinv.physics.Downsampling` is not used: its spatial filter is float32 only
and its adjoint with a fixed image size fixes the channel count, while fields here may be float64
with any number of channels.
"""

from __future__ import annotations

import torch
from deepinv.physics import LinearPhysics

from pdeinv.operators._imaging import (
    check_positive,
    check_resolution,
    choose_shift_stride,
    gaussian_noise,
    lattice_translations,
)
from pdeinv.operators.base import check_field
from pdeinv.operators.blur import CircularBlur, gaussian_kernel
from pdeinv.operators.symmetry import SymmetryGroup, Transform


class Downsampling(LinearPhysics):
    r"""Gaussian anti-aliasing followed by keeping every ``factor``-th sample along both axes.

    ``symmetries``: circular shifts of the input by multiples of ``shift_stride`` (itself a
    multiple of ``factor``); a shift by :math:`(a f, b f)` of the input shifts the output by
    :math:`(a, b)` (:math:`g'` = shift by :math:`1/f` of :math:`g`).

    Parameters
    ----------
    resolution : int
        Fine grid size ``S``; inputs ``(B, C, S, S)``, outputs ``(B, C, S/f, S/f)``.
    factor : int
        Decimation factor ``f`` >= 1, a divisor of ``S`` (4 for 4x super-resolution).
    antialias_sigma_px : float, optional
        Standard deviation of the Gaussian anti-alias filter in fine grid points; default ``f / 2``.
    noise_level : float
        Standard deviation :math:`\sigma` of the Gaussian noise added to ``y``.
    shift_stride : int, optional
        Stride of the declared input translations; default: at most 8 shifts per axis.
    rng : torch.Generator, optional
        Generator for the noise.
    """

    def __init__(
        self,
        resolution: int,
        factor: int = 4,
        antialias_sigma_px: float | None = None,
        noise_level: float = 0.0,
        shift_stride: int | None = None,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        _check_factor(factor, resolution)
        sigma = factor / 2 if antialias_sigma_px is None else check_positive(antialias_sigma_px, "antialias_sigma_px")
        super().__init__(noise_model=gaussian_noise(noise_level, rng))
        self.resolution, self.factor, self.noise_level = resolution, factor, float(noise_level)
        self.antialias = CircularBlur(resolution, gaussian_kernel(sigma), shift_stride=resolution)
        self.shift_stride = choose_shift_stride(resolution, shift_stride, multiple_of=factor)
        self.symmetries = self._symmetries()

    @property
    def output_resolution(self) -> int:
        """Coarse grid size ``S / f``."""
        return self.resolution // self.factor

    def _symmetries(self) -> SymmetryGroup:
        elements = []
        for g in lattice_translations(self.resolution, self.shift_stride):
            dx, dy = sum(op[1] for op in g.ops), sum(op[2] for op in g.ops)
            coarse = (("roll", dx // self.factor, dy // self.factor),) if g.ops else ()
            elements.append(Transform(g.name, g.ops, coarse))
        return SymmetryGroup(
            f"shifts(stride={self.shift_stride}) -> coarse shifts",
            elements,
            f"shifting the input by multiples of {self.factor} shifts the output by 1/{self.factor} of that",
        )

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Coarse field ``(B, C, S/f, S/f)`` of a fine field ``x`` ``(B, C, S, S)``, without noise."""
        check_field(x, resolution=self.resolution, name="x")
        f = self.factor
        return self.antialias.A(x)[..., ::f, ::f]

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """Adjoint: zero-filled upsampling of ``y`` ``(B, C, S/f, S/f)`` followed by the filter."""
        check_field(y, resolution=self.output_resolution, name="y")
        f = self.factor
        fine = y.new_zeros(y.shape[:2] + (self.resolution, self.resolution))
        fine[..., ::f, ::f] = y
        return self.antialias.A_adjoint(fine)


def _check_factor(factor: int, resolution: int) -> None:
    valid = isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1
    if not valid or resolution % factor:
        raise ValueError(
            f"factor must be a positive integer dividing the resolution {resolution}, got {factor!r}; "
            "choose a divisor (e.g. 2 or 4) or resample the field to a multiple of the factor"
        )
