r"""A problem with a known multi-modal posterior, and the count of its modes a particle set covers.

Prior: a mixture (:class:`~pdeinv.priors.mixture.GaussianMixturePrior`) of :math:`K = 2^h` isotropic
Gaussians on ``1 x S x S`` fields with standard deviation :math:`s`, whose means agree everywhere
except on ``h`` hidden pixels, where they take the values :math:`\pm a` (every sign pattern once):

.. math:: \mu_b = a \sum_{m=1}^{h} b_m e_{p_m}, \qquad b \in \{-1, 1\}^h.

Measurement: the other pixels, :math:`y = M x + \sigma_y n` (inpainting mask :math:`M`). Every
component gives :math:`y` the same likelihood, so the exact posterior is again the mixture of the
:math:`K` components, with equal weights: :math:`K` equally likely modes, which no data can
separate. A particle set *covers* mode :math:`b` when some particle lies closest to :math:`\mu_b`
on the hidden pixels; a method that explores the posterior covers :math:`\min(N, K)` modes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from pdeinv.operators.inpainting import MaskedInpainting
from pdeinv.priors.mixture import GaussianMixturePrior
from pdeinv.sampling.problem import InverseProblem


@dataclass(frozen=True)
class AmbiguousMixture:
    """Settings of the ambiguous mixture problem (module docstring).

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    hidden : int
        Number of hidden pixels ``h``; :math:`K = 2^h` modes.
    amplitude : float
        :math:`a`, half the distance between the modes along each hidden pixel.
    component_std : float
        :math:`s`.
    noise_std : float
        :math:`\\sigma_y`.
    """

    resolution: int = 4
    hidden: int = 2
    amplitude: float = 1.0
    component_std: float = 0.1
    noise_std: float = 0.01

    @property
    def hidden_pixels(self) -> torch.Tensor:
        """Flat indices of the hidden pixels: the first ``h`` of the diagonal."""
        return torch.arange(self.hidden, device="cpu") * (self.resolution + 1)

    def means(self) -> torch.Tensor:
        """Component means ``(K, 1, S, S)`` float64."""
        signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=self.hidden)), dtype=torch.float64, device="cpu")
        means = torch.zeros(len(signs), self.resolution**2, dtype=torch.float64, device="cpu")
        means[:, self.hidden_pixels] = self.amplitude * signs
        return means.reshape(-1, 1, self.resolution, self.resolution)

    def prior(self) -> GaussianMixturePrior:
        """The mixture prior (channel ``"field"``)."""
        return GaussianMixturePrior(self.means(), self.component_std)

    def problem(self, n: int, generator: torch.Generator) -> InverseProblem:
        """``n`` measurements of fields drawn from the prior (the operator is the identity: observed = target)."""
        s = self.resolution
        mask = torch.ones(s * s, device="cpu")
        mask[self.hidden_pixels] = 0.0
        sensor = MaskedInpainting(s, mask.reshape(s, s))
        means = self.means()
        components = torch.randint(len(means), (n,), generator=generator, device=generator.device).cpu()
        spread = torch.randn(n, 1, s, s, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        fields = means[components] + self.component_std * spread
        noise = torch.randn(fields.shape, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        noise = self.noise_std * noise
        y = sensor.A(fields + noise)
        return InverseProblem(
            operator=None,
            sensor=sensor,
            measurements=y,
            observed="output",
            target="output",
            input_channel="none",
            output_channel="field",
            pde=None,
            noise_std=self.noise_std,
            grid="periodic",
        )

    def modes_covered(self, samples: torch.Tensor) -> torch.Tensor:
        """Number of distinct modes nearest to the samples ``(n, N, 1, S, S)`` of each measurement, ``(n,)``."""
        hidden = samples.flatten(2)[..., self.hidden_pixels].double()
        centres = self.means().flatten(1)[:, self.hidden_pixels]
        nearest = torch.cdist(hidden, centres[None].expand(len(hidden), -1, -1)).argmin(-1)
        return torch.tensor([len(torch.unique(row)) for row in nearest], device="cpu")
