r"""A joint prior's fields parametrised by their input: the state is :math:`a`, the field is :math:`(a, A a)`.

On a joint ``(input, output)`` prior of a PDE the output channel is a deterministic
function of the input, :math:`u = A a` (linear for Helmholtz and Poisson; for Navier-Stokes the
nonlinear, differentiable solve, whose cost ``MethodOptions.solver_dt`` sets). Particles that
carry both channels as free variables only
learn about :math:`a` from a measurement of :math:`u` at sparse points through the denoiser,
one noise level at a time. Parametrising them by the input alone,

.. math:: \mathcal D(a) = \big(a,\ \hat A a\big), \qquad
          \hat A a = \big(A(m_a + s_a a) - m_u\big) / s_u

(normalised units, :math:`m, s` the prior's per-channel mean and std), sends every measurement of
:math:`u` to the whole input field through the adjoint of (the Jacobian of) :math:`\hat A`, and every particle
is a solution of the PDE by construction. The prior still acts on the decoded joint field
(``parametrises_field``): score distillation and the particle-mixture regulariser are evaluated
on :math:`\mathcal D(a)` and differentiated through it.
"""

from __future__ import annotations

import torch

from pdeinv.priors.consistent import normalised_solve


class SolvedSpace:
    """State space of particles on a joint prior of a PDE: the normalised input channel.

    Parameters
    ----------
    operator : deepinv.physics.Physics
        :math:`A` on physical ``(B, 1, S, S)`` fields, at the grid the particles live on
        (differentiable; linear or not).
    prior : FieldPrior
        The joint prior; its ``channels`` must be exactly ``input_channel`` and ``output_channel``.
    input_channel, output_channel : str
        Names of :math:`a` and :math:`u = A a` in ``prior.channels``.

    Raises
    ------
    ValueError
        If the prior's channels are not exactly the two named ones.
    """

    field_space = True
    parametrises_field = True

    def __init__(self, operator, prior, input_channel: str, output_channel: str):
        channels = tuple(prior.channels)
        if sorted(channels) != sorted((input_channel, output_channel)):
            raise ValueError(
                f"a solved state needs a joint prior over exactly ({input_channel!r}, {output_channel!r}); "
                f"this prior models {channels}"
            )
        self.operator, self.prior = operator, prior
        self.input_index, self.output_index = channels.index(input_channel), channels.index(output_channel)

    def encode(self, field: torch.Tensor) -> torch.Tensor:
        """Normalised joint field ``(B, 2, S, S)`` to its input channel ``(B, 1, S, S)``."""
        return field[:, self.input_index : self.input_index + 1]

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """Normalised input ``(B, 1, S, S)`` to the joint field ``(B, 2, S, S)`` with output :math:`\\hat A a`."""
        i, o = self.input_index, self.output_index
        mean, std = self.prior.mean.to(state), self.prior.std.to(state)
        output = normalised_solve(self.operator, state, mean, std, i, o)
        return torch.cat([state, output] if i == 0 else [output, state], dim=1)

    def state_shape(self, channels: int, resolution: int) -> tuple[int, ...]:
        """Shape of one state, ``(1, S, S)``."""
        return (1, resolution, resolution)
