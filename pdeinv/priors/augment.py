r"""Data augmentation by the forward operator's exact symmetry group.

If :math:`A(g a) = g A(a)` for every element ``g``, then ``(g a, g u)`` is as valid a training
pair as ``(a, u)``; the transforms act identically on all channels of a joint field. The
group comes from the PDE named in the data file's ``pde`` attribute.
"""

from __future__ import annotations

import torch

from pdeinv.operators.symmetry import SymmetryGroup
from pdeinv.pdes import get_pde, pde_names


def symmetry_group(pde: str | None, resolution: int) -> SymmetryGroup:
    """The symmetry group of the operator behind data of kind ``pde`` at grid size ``resolution``.

    The registered PDE's ``symmetries`` (:mod:`pdeinv.pdes`): Helmholtz, Poisson and Darcy
    (vertex grid, zero boundary) D4 of the square; Navier-Stokes the group declared by
    :class:`pdeinv.operators.NavierStokes2D`.

    Raises
    ------
    ValueError
        If ``pde`` is unknown, so no symmetry can be trusted.
    """
    kind = (pde or "").lower()
    if kind not in pde_names():
        raise ValueError(
            f"cannot augment data of pde={pde!r}: symmetries are known for {', '.join(pde_names())}; "
            "drop --augment-symmetries or fix the file's 'pde' attribute"
        )
    return get_pde(kind).symmetries(resolution)


def augment(x: torch.Tensor, group: SymmetryGroup, generator: torch.Generator) -> torch.Tensor:
    """Apply an independent, uniformly drawn group element (identity included) to each sample.

    Parameters
    ----------
    x : torch.Tensor
        Fields ``(B, C, S, S)``.
    group : SymmetryGroup
        Transforms acting on inputs (all channels alike).
    generator : torch.Generator
        Source of the draws (part of the resumable training state).
    """
    picks = torch.randint(len(group), (x.shape[0],), generator=generator).tolist()
    return torch.cat([group[k](x[i : i + 1]) for i, k in enumerate(picks)])
