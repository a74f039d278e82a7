"""One place per PDE: :class:`PDESpec` and the registry (``register_pde``, ``get_pde``, ``pde_names``).

Importing this package registers helmholtz, poisson, darcy and navier-stokes; it is torch-free.
"""

# registration order, hence pde_names(): helmholtz, poisson, darcy, navier-stokes
from pdeinv.pdes import helmholtz, darcy, navier_stokes  # noqa: F401, I001
from pdeinv.pdes.spec import PDESpec, get_pde, pde_names, pde_of, register_pde, solve_estimate

__all__ = ["PDESpec", "get_pde", "pde_names", "pde_of", "register_pde", "solve_estimate"]
