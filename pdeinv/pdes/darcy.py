r"""Darcy flow :math:`-\nabla\cdot(a \nabla u) = 1` with binary permeability, zero Dirichlet boundary, vertex grid."""

from __future__ import annotations

from pdeinv.pdes.spec import PDESpec, register_pde, square_symmetries

DARCY_HIGH, DARCY_LOW = 12.0, 3.0  # the permeability's two values
DARCY_THRESHOLD = 0.5 * (DARCY_HIGH + DARCY_LOW)  # the inverse metric thresholds estimates here
DARCY_FORCING = 1.0  # f of -div(a grad u) = f in the data (the FNO / DiffusionPDE setting)

LEVEL_SET_WIDTH = 0.1  # sigmoid width of the MAP baseline, in standard deviations of the level set


def _operator(resolution: int, settings: dict):
    from pdeinv.operators.darcy import Darcy

    return Darcy(resolution)


def _solves(operator) -> bool:
    from pdeinv.operators.darcy import Darcy

    return isinstance(operator, Darcy)


def _level_set_field(resolution: int):
    from pdeinv.datasets.grf import darcy_level_set_grf

    return darcy_level_set_grf(resolution)


def _smooth_permeability(level_set_field):
    """Level set to permeability through a sigmoid ``LEVEL_SET_WIDTH`` pointwise standard deviations wide."""
    from functools import partial

    from pdeinv.datasets.grf import smooth_darcy_permeability

    width = LEVEL_SET_WIDTH * float(level_set_field.variance().mean().sqrt())
    return partial(smooth_darcy_permeability, width=width)


def _clamp_permeability(permeability):
    """The permeability clamped to ``[3, 12]``, the range of the data's two values."""
    return permeability.clamp(DARCY_LOW, DARCY_HIGH)


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
        symmetries=square_symmetries,
        data_field=_level_set_field,
        level_set_input=_smooth_permeability,
        admissible_input=_clamp_permeability,
        descriptions={
            "permeability": f"permeability a of -div(a grad u) = {DARCY_FORCING:g}: {DARCY_HIGH:g} or {DARCY_LOW:g}",
            "pressure": "pressure u (0 on the boundary)",
        },
        constants={"forcing": DARCY_FORCING, "permeability_high": DARCY_HIGH, "permeability_low": DARCY_LOW},
    )
)
