r"""PSLD's gluing term (Rout et al. 2023): keep the latent estimate a fixed point of encode-after-paste.

With :math:`\hat z_0` the denoised latent, :math:`D, E` the autoencoder, :math:`A` the linear sensor
acting on the observed channel (physical units) and :math:`y` the measurements, PSLD adds

.. math:: \gamma\, \big\lVert E\big(A^\top y + (I - A^\top A)\, D(\hat z_0)\big) - \hat z_0 \big\rVert_2

to the Latent-DPS loss :math:`\omega \lVert y - A(D(\hat z_0)) \rVert_2` (both norms
non-squared): the decoded estimate, with its measured part replaced by the measurements, must
encode back to the same latent. Only the observed channel is pasted; the others are kept.
"""

from __future__ import annotations

import torch

from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import GuidanceState, Term, channel_index


class GluingTerm(Term):
    """PSLD's gluing loss ``(B,)`` (module docstring).

    Parameters
    ----------
    sensor : deepinv.physics.LinearPhysics
        Linear sensor with ``A`` and ``A_adjoint`` on the observed channel ``(B, 1, S, S)``.
    y : torch.Tensor
        Measurements (physical units), batch 1 or ``B``.
    channel : str
        The prior's channel the sensor observes.
    space : pdeinv.latent.space.LatentSpace
        The latent space (its ``encode`` is :math:`E`).
    schedule : GuidanceSchedule, optional
        Weight :math:`\\gamma` and schedule.

    Raises
    ------
    ValueError
        If the sensor has no adjoint (PSLD needs a linear sensor) or the space has no encoder.
    """

    name = "gluing"

    def __init__(self, sensor, y: torch.Tensor, channel: str, space, schedule: GuidanceSchedule | None = None):
        super().__init__(schedule, None)
        if not callable(getattr(sensor, "A_adjoint", None)):
            raise ValueError(
                f"PSLD's gluing term needs a linear sensor with A_adjoint; {type(sensor).__name__} has none. "
                "Use latent-dps or resample for non-linear measurements"
            )
        if getattr(space, "field_space", True):
            raise ValueError("PSLD's gluing term needs a latent space (a latent prior such as ns-latent)")
        self.sensor, self.y, self.channel, self.space = sensor, y, channel, space

    def glued(self, state: GuidanceState) -> torch.Tensor:
        r"""The normalised field with the observed channel replaced by :math:`A^\top y + (I - A^\top A) f`."""
        prior = state.prior
        c = channel_index(prior.channels, self.channel)
        physical = state.physical
        f = physical[:, [c]]
        y = self.y.to(f)
        pasted = self.sensor.A_adjoint(y.expand(f.shape[0], *y.shape[1:])) + f - self.sensor.A_adjoint(self.sensor.A(f))
        physical = torch.cat([physical[:, :c], pasted, physical[:, c + 1 :]], dim=1)
        return prior.to_normalized(physical)

    def loss(self, state: GuidanceState) -> torch.Tensor:
        residual = self.space.encode(self.glued(state)) - state.denoised
        return torch.linalg.vector_norm(residual.flatten(1), dim=1)
