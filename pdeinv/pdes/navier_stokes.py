r"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit torus: :math:`w_0 \mapsto w_T`."""

from __future__ import annotations

from pdeinv.pdes.spec import PDESpec, register_pde

NS_RTOL = 1e-3  # the stored final vorticity is float32 after ~10^4 time steps


def _operator(resolution: int, settings: dict):
    from pdeinv.operators.navier_stokes import NavierStokes2D

    return NavierStokes2D(resolution, viscosity=settings["viscosity"], time=settings["time"], dt=settings["dt"])


def _vorticity_field(resolution: int):
    from pdeinv.datasets.grf import ns_vorticity_grf

    return ns_vorticity_grf(resolution)


def _solves(operator) -> bool:
    from pdeinv.operators.navier_stokes import NavierStokes2D

    return isinstance(operator, NavierStokes2D)


def _symmetries(resolution: int):
    from pdeinv.operators.navier_stokes import NavierStokes2D

    return NavierStokes2D(resolution).symmetries


NAVIER_STOKES = register_pde(
    PDESpec(
        name="navier-stokes",
        channels=("vorticity[0]", "vorticity[-1]"),
        grid="periodic",
        operator=_operator,
        input_field=_vorticity_field,
        default_prior="ns-joint",
        data_rtol=NS_RTOL,
        solves=_solves,
        symmetries=_symmetries,
        defaults={"viscosity": 1e-3, "time": 1.0, "dt": 1e-4},
        min_resolution=4,
        max_check_samples=2,  # one check at 128 x 128 takes ~10 s on one CPU core
    )
)
