r"""Pieces shared by the imaging operators (blur, inpainting, downsampling, phase retrieval).

The imaging operators act on fields on the periodic cell grid :math:`x_i = i / S`, ``(B, C, S, S)``,
identically on every channel. This module holds their argument checks, their Gaussian noise model
and the symmetry groups they are built from:

- lattice translations: circular shifts by multiples of a stride ``t`` along both axes,
  :math:`x[i, j] \mapsto x[i - a t, j - b t]` (indices mod ``S``);
- the periodic dihedral group: the eight rotations and reflections of the square about the grid
  point :math:`(0, 0)`, e.g. the reflection :math:`i \mapsto -i \bmod S`. It maps the lattice of
  translations to itself, so products with lattice translations are closed groups.
"""

from __future__ import annotations

import math

import torch
from deepinv.physics import GaussianNoise

from pdeinv.operators.base import check_noise_level
from pdeinv.operators.symmetry import SymmetryGroup, Transform, dihedral_group, translation_group

SHIFTS_PER_AXIS = 8


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` if it is an integer grid size ``S >= 2``, else raise a ValueError."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer grid size S >= 2, got {resolution!r}")
    return resolution


def check_positive(value: float, name: str) -> float:
    """Return ``value`` as a float if it is finite and strictly positive, else raise a ValueError."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def gaussian_noise(noise_level: float, rng: torch.Generator | None = None) -> GaussianNoise:
    r"""The noise model :math:`y = A(x) + \sigma \varepsilon`, :math:`\varepsilon \sim N(0, I)`.

    Parameters
    ----------
    noise_level : float
        Standard deviation :math:`\sigma \ge 0`, in the units of the measurement.
    rng : torch.Generator, optional
        Generator the noise is drawn from; ``None`` uses torch's global generator.
    """
    return GaussianNoise(sigma=check_noise_level(noise_level), rng=rng)


def choose_shift_stride(resolution: int, stride: int | None, multiple_of: int = 1) -> int:
    """Validate a translation stride, or choose the default one.

    The default is the smallest multiple of ``multiple_of`` dividing ``S`` that leaves at most
    ``SHIFTS_PER_AXIS`` (8) shifts per axis, so a translation lattice has at most 64 elements.

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    stride : int or None
        Requested stride in grid points; ``None`` picks the default.
    multiple_of : int
        The stride must be a multiple of this (e.g. the downsampling factor).
    """
    if stride is None:
        candidates = range(multiple_of, resolution + 1, multiple_of)
        return next(t for t in candidates if resolution % t == 0 and resolution // t <= SHIFTS_PER_AXIS)
    valid = isinstance(stride, int) and not isinstance(stride, bool) and stride > 0
    if not valid or resolution % stride or stride % multiple_of:
        raise ValueError(
            f"shift_stride must be a positive multiple of {multiple_of} that divides the resolution "
            f"{resolution}, got {stride!r}; pass e.g. shift_stride={resolution} (no translations) or None"
        )
    return stride


def lattice_translations(resolution: int, stride: int) -> SymmetryGroup:
    """All circular shifts ``(a * stride, b * stride)`` of an ``S x S`` grid, ``(S / stride)**2`` elements."""
    along_x = translation_group(resolution, (stride, 0))
    along_y = translation_group(resolution, (0, stride))
    return SymmetryGroup.product(
        f"shifts(stride={stride})", along_x, along_y, f"circular shifts by multiples of {stride} grid points"
    )


def _about_origin(g: Transform, resolution: int) -> Transform:
    """Turn an element of the centred D4 into the same rotation/reflection about grid point (0, 0)."""
    delta = torch.zeros(1, 1, resolution, resolution)
    delta[..., 0, 0] = 1.0
    landed = int(torch.argmax(g(delta)))
    i, j = divmod(landed, resolution)
    if (i, j) == (0, 0):
        return g
    return Transform(f"{g.name}@0", g.ops + (("roll", -i % resolution, -j % resolution),))


def periodic_dihedral_group(resolution: int) -> SymmetryGroup:
    r"""D4 about the grid point ``(0, 0)`` of the periodic grid (8 elements).

    Each element of :func:`~pdeinv.operators.symmetry.dihedral_group` (about the centre of the
    square) is followed by the circular shift that brings the grid point :math:`(0, 0)` back to
    itself; e.g. the reflection becomes :math:`i \mapsto -i \bmod S` (flip, then roll by 1).
    """
    return SymmetryGroup(
        "periodic D4",
        [_about_origin(g, resolution) for g in dihedral_group()],
        "rotations and reflections of the periodic grid about the point (0, 0)",
    )


def point_reflection_group(resolution: int) -> SymmetryGroup:
    r"""The identity and the point reflection :math:`(i, j) \mapsto (-i, -j) \bmod S` (2 elements)."""
    elements = [g for g in periodic_dihedral_group(resolution) if g.name in ("identity", "rot180@0")]
    return SymmetryGroup("point reflection", elements, "point reflection about the grid point (0, 0)")
