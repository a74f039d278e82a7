r"""Darcy flow :math:`-\nabla\cdot(a \nabla u) = 1` with binary permeability, zero Dirichlet boundary, vertex grid."""

from __future__ import annotations

from pdeinv.pdes.spec import PDESpec, register_pde


def _operator(resolution: int, settings: dict):
    from pdeinv.operators.darcy import Darcy

    return Darcy(resolution)


def _solves(operator) -> bool:
    from pdeinv.operators.darcy import Darcy

    return isinstance(operator, Darcy)


def _level_set_field(resolution: int):
    from pdeinv.datasets.grf import darcy_level_set_grf

    return darcy_level_set_grf(resolution)


def _d4(resolution: int):
    from pdeinv.operators.symmetry import dihedral_group

    return dihedral_group()


DARCY = register_pde(
    PDESpec(
        name="darcy",
        channels=("permeability", "pressure"),
        grid="vertex",
        operator=_operator,
        input_field=None,  # binary permeability: no Gaussian input distribution
        default_prior="darcy-joint",
        data_rtol=1e-6,
        solves=_solves,
        symmetries=_d4,
        data_field=_level_set_field,
    )
)
