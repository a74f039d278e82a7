r"""Inpainting forward models: a field observed through a fixed binary mask.

.. math:: y = m \odot x + m \odot \sigma \varepsilon, \qquad m \in \{0, 1\}^{S \times S},

with the same mask on every channel (deepinv's :class:`~deepinv.physics.Inpainting`; :math:`A` is
diagonal, so :math:`A^\top = A` and :math:`A^\dagger y = m \odot y`). Unobserved entries of
``y`` are zero, noise included. The mask is a buffer (it moves with ``.to(device)`` and is saved
in ``state_dict``).

The declared ``symmetries`` are the elements :math:`g` of the square's D4 (about its centre,
:func:`~pdeinv.operators.symmetry.dihedral_group`) with :math:`g(m) = m`, computed from the mask,
with :math:`g' = g`: for those, :math:`A(g x) = m \odot g x = g(m \odot x)`.
"""

from __future__ import annotations

import torch
from deepinv.physics import Inpainting

from pdeinv.operators._imaging import check_resolution, gaussian_noise
from pdeinv.operators.base import check_field
from pdeinv.operators.symmetry import SymmetryGroup, dihedral_group


def centred_box(resolution: int, fraction: float) -> tuple[int, int, int, int]:
    r"""The centred square box ``(i0, i1, j0, j1)`` of side about ``fraction * S``.

    With margin :math:`q = \mathrm{round}((1 - \text{fraction}) S / 2)` the box is
    :math:`[q, S - q)^2`, exactly centred (side :math:`S - 2q`), hence invariant under the D4.
    """
    numeric = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not numeric or not 0 < fraction < 1:
        raise ValueError(f"box fraction must be a side fraction in (0, 1), got {fraction!r}")
    margin = round((1 - fraction) * resolution / 2)
    if not 0 < margin < resolution / 2:
        raise ValueError(
            f"box fraction {fraction} leaves an empty box or no observed border on a {resolution}-point grid; "
            "pass a fraction between 1/S and 1 - 2/S"
        )
    return margin, resolution - margin, margin, resolution - margin


def box_mask(resolution: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Mask ``(S, S)`` (float32) that is 0 on the hidden box ``[i0, i1) x [j0, j1)`` and 1 elsewhere."""
    integers = isinstance(box, (tuple, list)) and all(isinstance(b, int) and not isinstance(b, bool) for b in box)
    if not integers or len(box) != 4:
        raise ValueError(f"box must be four integers (i0, i1, j0, j1) or a side fraction in (0, 1), got {box!r}")
    i0, i1, j0, j1 = box
    if not (0 <= i0 < i1 <= resolution and 0 <= j0 < j1 <= resolution):
        raise ValueError(
            f"box {box} must satisfy 0 <= i0 < i1 <= {resolution} and 0 <= j0 < j1 <= {resolution} "
            "(half-open index ranges of the hidden region)"
        )
    if (i1 - i0, j1 - j0) == (resolution, resolution):
        raise ValueError(f"box {box} hides the whole grid; leave some points observed")
    mask = torch.ones(resolution, resolution)
    mask[i0:i1, j0:j1] = 0.0
    return mask


def random_mask(resolution: int, fraction_kept: float, generator: torch.Generator) -> torch.Tensor:
    """Mask ``(S, S)`` (float32) keeping exactly ``round(fraction_kept * S**2)`` points drawn without replacement."""
    numeric = isinstance(fraction_kept, (int, float)) and not isinstance(fraction_kept, bool)
    kept = round(fraction_kept * resolution**2) if numeric else 0
    if not numeric or not 0 < fraction_kept <= 1 or kept < 1:
        raise ValueError(
            f"fraction_kept must be in (0, 1] and keep at least one of the {resolution**2} grid points, "
            f"got {fraction_kept!r}"
        )
    mask = torch.zeros(resolution * resolution)
    mask[torch.randperm(resolution * resolution, generator=generator)[:kept]] = 1.0
    return mask.reshape(resolution, resolution)


class MaskedInpainting(Inpainting):
    r"""Observe a field through a fixed binary mask ``(S, S)``, shared by all channels.

    Parameters
    ----------
    resolution : int
        Grid size ``S``; inputs and outputs ``(B, C, S, S)`` with any ``C``.
    mask : torch.Tensor
        ``(S, S)`` tensor of zeros (hidden) and ones (observed).
    noise_level : float
        Standard deviation :math:`\sigma` of the Gaussian noise on observed entries.
    rng : torch.Generator, optional
        Generator for the noise.
    """

    def __init__(
        self,
        resolution: int,
        mask: torch.Tensor,
        noise_level: float = 0.0,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        _check_mask(mask, resolution)
        super().__init__(
            img_size=(1, resolution, resolution),
            mask=mask.to(torch.float32)[None],
            noise_model=gaussian_noise(noise_level, rng),
        )
        self.resolution, self.noise_level = resolution, float(noise_level)
        self.symmetries = _mask_symmetries(self.mask)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Masked field ``m * x`` ``(B, C, S, S)`` of a field ``x`` ``(B, C, S, S)``, without noise."""
        check_field(x, resolution=self.resolution, name="x")
        return super().A(x, **kwargs)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """Adjoint (equal to ``A``): ``m * y``."""
        check_field(y, resolution=self.resolution, name="y")
        return super().A_adjoint(y, **kwargs)


def _check_mask(mask: torch.Tensor, resolution: int) -> None:
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (resolution, resolution):
        raise ValueError(f"mask must be a tensor of shape ({resolution}, {resolution}) of zeros and ones")
    if not torch.all((mask == 0) | (mask == 1)):
        raise ValueError("mask must contain only zeros (hidden) and ones (observed)")


def _mask_symmetries(mask: torch.Tensor) -> SymmetryGroup:
    kept = [g for g in dihedral_group() if torch.equal(g(mask), mask)]
    return SymmetryGroup(
        f"D4 stabiliser of the mask ({len(kept)} of 8)", kept, "rotations and reflections that map the mask to itself"
    )


class BoxInpainting(MaskedInpainting):
    """Hide a rectangular box of the field and observe the rest.

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    box : tuple of int or float
        Hidden region as half-open index ranges ``(i0, i1, j0, j1)``, or a side fraction in
        ``(0, 1)`` for the centred square box of :func:`centred_box`. Default 0.5 (a quarter of the area).
    noise_level, rng
        As in :class:`MaskedInpainting`.
    """

    def __init__(
        self,
        resolution: int,
        box: tuple[int, int, int, int] | float = 0.5,
        noise_level: float = 0.0,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        hidden = centred_box(resolution, box) if isinstance(box, float) else box
        super().__init__(resolution, box_mask(resolution, hidden), noise_level, rng)
        self.box = tuple(hidden)


class RandomInpainting(MaskedInpainting):
    """Observe a fixed random subset of the grid points (the same for every channel and sample).

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    fraction_kept : float
        Fraction of grid points observed, in (0, 1]; exactly ``round(fraction_kept * S**2)`` are kept.
    seed : int
        Seed of the local ``torch.Generator`` that draws the mask (the global RNG is untouched).
    noise_level, rng
        As in :class:`MaskedInpainting`.
    """

    def __init__(
        self,
        resolution: int,
        fraction_kept: float,
        seed: int = 0,
        noise_level: float = 0.0,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        generator = torch.Generator().manual_seed(seed)
        super().__init__(resolution, random_mask(resolution, fraction_kept, generator), noise_level, rng)
        self.fraction_kept, self.seed = float(fraction_kept), seed
