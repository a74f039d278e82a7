r"""Helmholtz :math:`\Delta u + k^2 u = a` (k = 1) and Poisson (k = 0), zero Dirichlet boundary, vertex grid."""

from __future__ import annotations

from pdeinv.pdes.spec import PDESpec, register_pde, square_symmetries


def _operator(k: float):
    """The factory of the operator with wavenumber ``k``: the name fixes ``k``, a file's or caller's ``k`` does not."""

    def operator(resolution: int, settings: dict):
        from pdeinv.operators.helmholtz import Helmholtz

        return Helmholtz(resolution, k=k)

    return operator


def _source_field(resolution: int):
    from pdeinv.datasets.grf import helmholtz_source_grf

    return helmholtz_source_grf(resolution)


def _solves(k_is_zero: bool):
    def solves(operator) -> bool:
        from pdeinv.operators.helmholtz import Helmholtz

        return isinstance(operator, Helmholtz) and (operator.k == 0) == k_is_zero

    return solves


def _spec(name: str, k: float) -> PDESpec:
    return PDESpec(
        name=name,
        channels=("source", "solution"),
        grid="vertex",
        operator=_operator(k),
        input_field=_source_field,
        default_prior=f"{name}-joint",
        data_rtol=1e-6,
        solves=_solves(k == 0),
        symmetries=square_symmetries,
        defaults={"k": k},
        descriptions={"source": "source a of lap u + k^2 u = a", "solution": "solution u (0 on the boundary)"},
    )


HELMHOLTZ = register_pde(_spec("helmholtz", 1.0))
POISSON = register_pde(_spec("poisson", 0.0))
