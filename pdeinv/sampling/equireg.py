r"""EquiReg (Tolooshams, Chandrashekar et al. 2025): the equivariance error of a feature map at the clean estimate.

With :math:`\hat x_0` the solver's denoised estimate (a normalised field), :math:`g` a group element,
:math:`\rho(g)` its action on the features and :math:`f` a fixed *manifold-preferential
equivariant* feature map (small equivariance error on the data manifold, large off it), the
penalty is

.. math:: E(\hat x_0) = \big\| \rho(g)\, f(\hat x_0) - f(g \cdot \hat x_0) \big\|,

added to the solver's own loss with a factor :math:`\alpha` and differentiated with it, so that
one step is :math:`x \leftarrow x' - \zeta \nabla_x \big(L_\text{solver} + \alpha E\big)` with the
solver's own step :math:`\zeta` (EquiReg's "add the term where the solver assembles its loss").

Group elements act on physical fields (so a sign flip respects each channel's mean): channels named
in ``output_channels`` by the transform's output action :math:`g'`, the others by :math:`g`. A
feature map that returns fields (the prior's denoiser at a fixed small noise level) has
:math:`\rho(g) = g`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from pdeinv.operators.symmetry import SymmetryGroup, Transform
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import GuidanceState, Term, reduce

EQUIREG_REDUCTIONS = ("norm", "sqnorm", "mse")


@dataclass(frozen=True)
class GroupAction:
    """How a transform acts on a prior's normalised fields: in physical units, ``g'`` on ``output_channels``."""

    prior: object
    output_channels: tuple[str, ...] = field(default=())

    def __call__(self, transform: Transform, x: torch.Tensor) -> torch.Tensor:
        physical = self.prior.to_physical(x)
        moved = [
            transform.on_output(physical[:, [i]]) if name in self.output_channels else transform(physical[:, [i]])
            for i, name in enumerate(self.prior.channels)
        ]
        return self.prior.to_normalized(torch.cat(moved, dim=1))


class EquiRegTerm(Term):
    r"""EquiReg's penalty :math:`\|\rho(g) f(\hat x_0) - f(g\,\hat x_0)\|` on the denoised estimate (module docstring).

    Parameters
    ----------
    group : SymmetryGroup
        Where the elements come from (every element used must act as a symmetry of the data).
    feature_map : callable
        :math:`f`: ``feature_map(fields, state)`` maps normalised fields ``(B, C, S, S)`` to features of
        the same shape (so :math:`\rho(g) = g`); ``state`` gives it the sampler's counted
        ``denoise`` when :math:`f` is the prior's denoiser.
    elements : sequence of Transform, optional
        The elements to draw from (EquiReg's ``sample_from``); default every non-identity element.
    schedule : GuidanceSchedule, optional
        :math:`\alpha` times the solver's step schedule.
    reduction : {"norm", "sqnorm", "mse"}
        Size of the error (EquiReg's ``norm`` by default).
    draw : {"random", "all"}
        One uniformly random element per evaluation (EquiReg), or the mean over all of them.
    output_channels : sequence of str
        Channels transformed by ``Transform.on_output``.
    generator : torch.Generator, optional
        Source of the random elements; default the sampler's. A generator of its own leaves the
        sampler's noise unchanged, so runs with and without the term are paired sample by sample.
    name : str, optional
        Name used in reports and error messages.
    """

    name = "equireg"

    def __init__(
        self,
        group: SymmetryGroup,
        feature_map: Callable[[torch.Tensor, GuidanceState], torch.Tensor],
        *,
        elements: Sequence[Transform] | None = None,
        schedule: GuidanceSchedule | None = None,
        reduction: str = "norm",
        draw: str = "random",
        output_channels: Sequence[str] = (),
        generator: torch.Generator | None = None,
        name: str | None = None,
    ):
        super().__init__(schedule, name)
        self.generator = generator
        if not isinstance(group, SymmetryGroup):
            raise ValueError(f"group must be a SymmetryGroup (an operator's .symmetries), got {type(group).__name__}")
        chosen = tuple(group.non_trivial() if elements is None else elements)
        if not chosen or any(not g.ops for g in chosen):
            raise ValueError(f"the group {group.name!r} gives no non-identity element; EquiReg would be identically 0")
        if reduction not in EQUIREG_REDUCTIONS:
            raise ValueError(f"reduction must be one of {EQUIREG_REDUCTIONS}, got {reduction!r}")
        if draw not in ("random", "all"):
            raise ValueError(f"draw must be 'random' or 'all', got {draw!r}")
        if not callable(feature_map):
            raise ValueError("feature_map must be a callable feature_map(fields, state)")
        self.group, self.elements, self.feature_map = group, chosen, feature_map
        self.reduction, self.draw, self.output_channels = reduction, draw, tuple(output_channels)

    def loss(self, state: GuidanceState) -> torch.Tensor:
        if not state.field_space:
            raise ValueError(
                "EquiRegTerm acts on fields; in a latent space the group does not act on the state. "
                "Use it with a field-space prior"
            )
        action = GroupAction(state.prior, self.output_channels)
        if self.draw == "all":
            chosen = self.elements
        else:
            generator = state.generator if self.generator is None else self.generator
            chosen = (self.elements[int(torch.randint(len(self.elements), (1,), generator=generator))],)
        clean = state.field
        features = self.feature_map(clean, state)
        errors = [
            reduce(action(g, features) - self.feature_map(action(g, clean), state), self.reduction) for g in chosen
        ]
        return torch.stack(errors).mean(0)
