r"""Fourier phase retrieval: magnitudes of the oversampled 2-D DFT of a real field.

.. math:: y = |\mathcal{F}\, \mathrm{pad}(x)| + \sigma \varepsilon, \qquad
    (\mathcal{F} u)[k, l] = \frac{1}{P} \sum_{i, j = 0}^{P-1} u[i, j]\, e^{-2\pi i (k i + l j) / P},

where :math:`\mathrm{pad}` places the ``S x S`` field in the corner :math:`[0, S)^2` of a
``P x P`` grid of zeros, :math:`P = \mathrm{round}(\text{oversampling} \cdot S)`. :math:`\mathcal{F}`
is unitary (``norm="ortho"``), so :math:`\|A(x)\| = \|x\|`. The map is non-linear and
differentiable by autograd wherever no DFT coefficient vanishes (there the gradient of
:math:`|\cdot|` is taken as 0). The noise is added to the magnitudes, which may then be negative.

Ambiguities (the declared ``symmetries``, all with :math:`g' = \mathrm{id}`): the global sign
:math:`x \mapsto -x`, the conjugate reflection :math:`x[i, j] \mapsto x[S-1-i, S-1-j]` (for a real
field its DFT is the complex conjugate up to a phase ramp), and for ``oversampling = 1`` every
circular translation (subsampled with ``shift_stride``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Physics

from pdeinv.operators._imaging import (
    check_positive,
    check_resolution,
    choose_shift_stride,
    gaussian_noise,
    lattice_translations,
    point_reflection_group,
)
from pdeinv.operators.base import check_field
from pdeinv.operators.symmetry import SymmetryGroup, Transform, trivial_group


class FourierPhaseRetrieval(Physics):
    r"""Magnitudes of the zero-padded, unitary 2-D DFT of each channel of a field.

    Parameters
    ----------
    resolution : int
        Grid size ``S``; inputs ``(B, C, S, S)``, outputs ``(B, C, P, P)``.
    oversampling : float
        Linear oversampling ``P / S`` >= 1 (2 means a four times larger padded grid).
    noise_level : float
        Standard deviation :math:`\sigma` of the Gaussian noise added to the magnitudes.
    shift_stride : int, optional
        For ``oversampling = 1`` only (an error otherwise): stride of the declared translations;
        default: at most 8 shifts per axis.
    dagger_iterations : int
        Error-reduction iterations run by :meth:`A_dagger`.
    rng : torch.Generator, optional
        Generator for the noise.
    """

    def __init__(
        self,
        resolution: int,
        oversampling: float = 2.0,
        noise_level: float = 0.0,
        shift_stride: int | None = None,
        dagger_iterations: int = 100,
        rng: torch.Generator | None = None,
    ):
        resolution = check_resolution(resolution)
        if check_positive(oversampling, "oversampling") < 1:
            raise ValueError(
                f"oversampling must be >= 1 (padded size P = oversampling * S >= S), got {oversampling!r}; "
                "use 2.0 for the usual two-fold oversampling"
            )
        if isinstance(dagger_iterations, bool) or not isinstance(dagger_iterations, int) or dagger_iterations < 0:
            raise ValueError(f"dagger_iterations must be an integer >= 0, got {dagger_iterations!r}")
        super().__init__(noise_model=gaussian_noise(noise_level, rng))
        self.resolution, self.oversampling, self.noise_level = resolution, float(oversampling), float(noise_level)
        self.padded_resolution = round(oversampling * resolution)
        self.dagger_iterations = dagger_iterations
        unpadded = self.padded_resolution == resolution
        if shift_stride is not None and not unpadded:
            raise ValueError("shift_stride applies only to oversampling = 1 (translations are no ambiguity once padded)")
        self.shift_stride = choose_shift_stride(resolution, shift_stride) if unpadded else None
        self.symmetries = self._symmetries()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.padded_resolution - self.resolution
        return F.pad(x, (0, extra, 0, extra))

    def _crop(self, u: torch.Tensor) -> torch.Tensor:
        return u[..., : self.resolution, : self.resolution]

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Fourier magnitudes ``(B, C, P, P)`` of a field ``x`` ``(B, C, S, S)``, without noise."""
        check_field(x, resolution=self.resolution, name="x")
        return torch.fft.fft2(self._pad(x), norm="ortho").abs()

    def A_dagger(self, y: torch.Tensor, x_init: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        r"""Approximate inverse by Fienup's error reduction (alternating projections).

        Each iteration replaces the DFT magnitudes of the current estimate by ``y`` (keeping its
        phases), transforms back, and keeps the real part on the support :math:`[0, S)^2`. With a
        unitary DFT the misfit :math:`\|A(x_k) - y\|` never increases. Phase retrieval has no
        unique inverse: the result is defined up to the ambiguities in ``symmetries`` and may be a
        local solution.

        Parameters
        ----------
        y : torch.Tensor
            Magnitudes ``(B, C, P, P)``.
        x_init : torch.Tensor, optional
            Starting field ``(B, C, S, S)``; default: the zero-phase estimate
            :math:`\mathrm{Re}\,\mathcal{F}^{-1} y` restricted to the support.

        Returns
        -------
        torch.Tensor
            Field ``(B, C, S, S)``.
        """
        check_field(y, resolution=self.padded_resolution, name="y")
        if x_init is None:
            x = self._crop(torch.fft.ifft2(y, norm="ortho").real)
        else:
            check_field(x_init, resolution=self.resolution, name="x_init")
            x = x_init
        for _ in range(self.dagger_iterations):
            phases = torch.sgn(torch.fft.fft2(self._pad(x), norm="ortho"))
            x = self._crop(torch.fft.ifft2(y * phases, norm="ortho").real)
        return x

    def _symmetries(self) -> SymmetryGroup:
        if self.padded_resolution == self.resolution:
            reflection = point_reflection_group(self.resolution)[1]
            translations = lattice_translations(self.resolution, self.shift_stride)
        else:
            reflection = Transform("conjugate_reflection", (("flip", -2, -1),))
            translations = trivial_group()
        flips = [Transform("identity"), reflection]
        signs = [Transform("identity"), Transform("negate", (("negate",),))]
        elements = [_invariance(t.then(r).then(s)) for t in translations for r in flips for s in signs]
        return SymmetryGroup(
            "phase retrieval ambiguities",
            elements,
            "transforms that leave the Fourier magnitudes unchanged (g' = identity)",
        )


def _invariance(g: Transform) -> Transform:
    """The same input action with the identity on outputs (``g' = id``)."""
    return Transform(g.name, g.ops, ())
