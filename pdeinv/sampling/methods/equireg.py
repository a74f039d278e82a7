r"""The ``+equireg`` suffixes: EquiReg's penalty inside a diffusion method's own loss.

EquiReg (Tolooshams, Chandrashekar et al. 2025) adds :math:`\alpha\,\|\rho(g) f(\hat x_0) - f(g\cdot\hat x_0)\|`
to the solver's data loss, so the penalty's step is :math:`\alpha` times the solver's own step
(:class:`~pdeinv.sampling.equireg.EquiRegTerm` with ``preset.step.scaled(alpha)``). Published:
:math:`\alpha = 0.01`, the norm, one random element per step of ``hflip`` or of ``rot90`` drawn from
the quarter turns :math:`k \in \{1, 3\}`. For PDE fields the feature map is the prior's denoiser at
a fixed small noise level, :math:`f = D(\cdot, \sigma_f)` (a non-equivariant network trained on
symmetric data: small error on the data manifold); it maps fields to fields, so :math:`\rho(g) = g`.

Groups: ``"paper"`` uses the published elements that are symmetries of the operator (on the
square's Dirichlet problems: the horizontal flip and both quarter turns), and the operator's own
elements where none is (forced Navier-Stokes, whose flips and quarter turns are not symmetries);
``"operator"`` all of the operator's elements; ``"d4"`` the square's eight (the ablation for an
operator whose true group is another one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pdeinv.operators.symmetry import SymmetryGroup, Transform, dihedral_group
from pdeinv.sampling.equireg import EQUIREG_REDUCTIONS, EquiRegTerm
from pdeinv.sampling.methods.registry import register_modifier
from pdeinv.sampling.problem import InverseProblem, MethodOptions
from pdeinv.sampling.terms import EQUIREG_WEIGHT

PAPER_ELEMENTS = (("flip", -1),), (("rot90", 1),), (("rot90", 3),)  # hflip; rot90 with k in {1, 3}
GROUPS = ("paper", "operator", "d4")


@dataclass(frozen=True)
class EquiRegConfig:
    r"""EquiReg's parameters.

    Parameters
    ----------
    alpha : float
        :math:`\alpha`, relative to the solver's step (``equi_alpha``, 0.01).
    group : {"paper", "operator", "d4"}
        Which elements :math:`g` are drawn from (module docstring).
    feature_sigma : float
        :math:`\sigma_f` of the feature map :math:`f = D(\cdot, \sigma_f)`, in units of the prior's
        :math:`\sigma_\text{data}`.
    reduction : {"norm", "sqnorm", "mse"}
        Size of the error (``norm``).
    """

    alpha: float = EQUIREG_WEIGHT
    group: str = "paper"
    feature_sigma: float = 0.05
    reduction: str = "norm"

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"alpha must be positive, got {self.alpha!r}")
        if self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {self.group!r}")
        if self.reduction not in EQUIREG_REDUCTIONS:
            raise ValueError(f"reduction must be one of {EQUIREG_REDUCTIONS}, got {self.reduction!r}")
        if not self.feature_sigma > 0:
            raise ValueError(f"feature_sigma must be positive, got {self.feature_sigma!r}")

    def elements(self, problem: InverseProblem) -> tuple[SymmetryGroup, tuple[Transform, ...]]:
        """The group and the elements drawn from on ``problem`` (module docstring)."""
        if self.group == "d4":
            group = dihedral_group()
            return group, group.non_trivial()
        group = problem.operator.symmetries
        own = group.non_trivial()
        if self.group == "operator":
            return group, own
        published = tuple(g for g in own if g.ops in PAPER_ELEMENTS and g.output_ops in (None, g.ops))
        return group, published or own

    def terms(self, preset, problem: InverseProblem, options: MethodOptions, y):
        """The EquiReg term riding on ``preset``'s step."""
        prior = options.prior
        if getattr(getattr(prior, "space", None), "field_space", True) is False:
            raise ValueError("+equireg acts on fields; use a field-space prior (the group does not act on latents)")
        group, elements = self.elements(problem)
        sigma_f = self.feature_sigma * float(prior.sigma_data)

        def feature_map(x, state):
            return state.denoise(x, sigma_f)

        return [
            EquiRegTerm(
                group, feature_map, elements=elements, schedule=preset.step.scaled(self.alpha),
                reduction=self.reduction, output_channels=(problem.output_channel,),
                generator=torch.Generator().manual_seed(options.seed),
            )
        ]


@register_modifier("+equireg", EquiRegConfig)
def equireg(problem: InverseProblem, options: MethodOptions, base: str) -> EquiRegConfig:
    """EquiReg with the published elements (``alpha`` from ``options.equireg_weight``)."""
    return EquiRegConfig(alpha=options.equireg_weight)


@register_modifier("+equireg-d4", EquiRegConfig)
def equireg_d4(problem: InverseProblem, options: MethodOptions, base: str) -> EquiRegConfig:
    """EquiReg on the square's eight symmetries."""
    return EquiRegConfig(alpha=options.equireg_weight, group="d4")
