"""What pdeinv knows about one PDE (:class:`PDESpec`) and the registry of PDEs.

Torch-free: the operator, input-field and symmetry factories of a spec import their torch-heavy
modules when called, so the command line can list and validate PDE names without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pdeinv.errors import UsageError

GRIDS = ("vertex", "periodic")


@dataclass(frozen=True)
class PDESpec:
    """One PDE: its fields, grid, operator, input distribution and defaults.

    Attributes
    ----------
    name : str
        The name used by files (``pde`` attribute), the command line and the Python API.
    channels : tuple of str
        (input, output) field names of the data files and joint priors.
    grid : {"vertex", "periodic"}
        ``"vertex"``: ``S`` points on [0, 1] including the zero boundary; ``"periodic"``: ``S``
        points on the torus.
    operator : callable
        ``(resolution, settings) -> deepinv.physics.Physics``, the input to output map on an
        ``S x S`` grid; ``settings`` is :attr:`defaults` updated by the caller's non-``None`` values.
    input_field : callable or None
        ``resolution -> GaussianRandomField``, the distribution of the inputs (for the Gaussian
        baselines); ``None`` where the input is not Gaussian (Darcy's binary permeability).
    default_prior : str
        The shipped prior (``pdeinv.priors.shipped_priors()``) the benchmark uses for this PDE.
    data_rtol : float
        Relative tolerance of ``pdeinv data check``'s ``max|output - A(input)| / max|A(input)|``.
    solves : callable
        ``operator -> bool``: whether an operator object is this PDE's operator.
    symmetries : callable
        ``resolution -> SymmetryGroup`` the operator commutes with (training-data augmentation).
    data_field : callable, optional
        ``resolution -> GaussianRandomField`` the data generator draws the inputs from where it is
        not :attr:`input_field` (Darcy: a level set, thresholded to the permeability).
    level_set_input : callable, optional
        ``level_set_field -> (level_set -> input)``, given :attr:`data_field`'s random field: a differentiable map from samples of :attr:`data_field` to inputs
        that agrees with the data's map after thresholding: the MAP baseline (``adjoint``)
        optimises a Gaussian level set through it where the input itself is not Gaussian.
    admissible_input : callable, optional
        ``input -> input``, the projection of an estimated physical input onto the operator's
        domain before a method solves the PDE with it (Darcy: the permeability clamped to its two
        values' range, since the solve needs a positive coefficient); ``None``: every input is admissible.
    descriptions : dict
        ``{field: description}`` written to generated files (default: the field name).
    constants : dict
        Fixed physical constants of the problem written to generated files' simulation
        parameters (Darcy: the forcing and the two permeability values).
    max_check_samples : int, optional
        Most pairs ``pdeinv data check`` re-solves (for an expensive solver); ``None``: no cap.
    defaults : dict
        Default physical settings (e.g. ``{"k": 1.0}``, Navier-Stokes viscosity, final time, dt).
    min_resolution : int
        Smallest grid size the solver accepts.
    """

    name: str
    channels: tuple[str, str]
    grid: str
    operator: Callable[[int, dict], object]
    input_field: Callable[[int], object] | None
    default_prior: str
    data_rtol: float
    solves: Callable[[object], bool]
    symmetries: Callable[[int], object]
    data_field: Callable[[int], object] | None = None
    level_set_input: Callable[[object], Callable] | None = None
    admissible_input: Callable[[object], object] | None = None
    descriptions: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    max_check_samples: int | None = None
    defaults: dict = field(default_factory=dict)
    min_resolution: int = 3

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"PDE {self.name!r}: grid must be one of {GRIDS}, got {self.grid!r}")
        if len(self.channels) != 2:
            raise ValueError(f"PDE {self.name!r}: channels must be (input, output), got {self.channels!r}")

    def settings(self, given: dict | None = None) -> dict:
        """:attr:`defaults` overridden by the non-``None`` entries of ``given``."""
        return {**self.defaults, **{key: value for key, value in (given or {}).items() if value is not None}}

    def build_operator(self, resolution: int, given: dict | None = None):
        """The operator at grid size ``resolution`` with :meth:`settings` of ``given``."""
        return self.operator(resolution, self.settings(given))


def square_symmetries(resolution: int):
    """D4, the symmetry group of the unit square: the ``symmetries`` of a PDE with isotropic
    coefficients, constant forcing and the same boundary condition on all four sides."""
    from pdeinv.operators.symmetry import dihedral_group

    return dihedral_group()


_REGISTRY: dict[str, PDESpec] = {}


def register_pde(spec: PDESpec) -> PDESpec:
    """Add ``spec`` to the registry (replacing a spec of the same name) and return it."""
    _REGISTRY[spec.name] = spec
    return spec


def pde_names() -> tuple[str, ...]:
    """Names of the registered PDEs, in registration order."""
    return tuple(_REGISTRY)


def get_pde(name: str) -> PDESpec:
    """The registered :class:`PDESpec` called ``name``.

    Raises
    ------
    UsageError
        A one-line message naming the known PDEs, for an unknown ``name``.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown PDE {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def pde_of(operator) -> str | None:
    """The name of the registered PDE whose operator ``operator`` is; ``None`` for any other operator."""
    return next((spec.name for spec in _REGISTRY.values() if spec.solves(operator)), None)


def solve_estimate(operator, field):
    """``operator.A(field)`` for an estimated input ``field``, first projected onto the PDE's admissible inputs.

    The projection is the registered PDE's :attr:`PDESpec.admissible_input` (Darcy: the
    permeability clamped to ``[3, 12]``); an operator of no registered PDE, or a PDE without one,
    is applied to ``field`` as it is.
    """
    admissible = _admissible_input(operator)
    return operator.A(field if admissible is None else admissible(field))


def _admissible_input(operator) -> Callable | None:
    """The projection onto the admissible inputs of the registered PDE that ``operator`` solves, if it has one."""
    pde = pde_of(operator)
    return get_pde(pde).admissible_input if pde is not None else None



def solve_estimate_adjoint(operator, field, cotangents):
    r"""The adjoint of :func:`solve_estimate`'s Jacobian at ``field``, applied to several cotangents.

    With :math:`\Pi` the elementwise projection onto the admissible inputs and :math:`A` the
    operator, returns :math:`\Pi'(a)\, A'(\Pi(a))^\top w_k` for every cotangent :math:`w_k`: the
    gradient of :math:`w_k^\top A(\Pi(a))` with respect to :math:`a` (zero where the projection
    clips). An operator with a ``jacobian_adjoint(x, cotangents)`` method (Darcy: one factorisation
    for all of them) is asked once; any other differentiable operator is differentiated once per
    cotangent.

    Parameters
    ----------
    operator : deepinv.physics.Physics
        The forward map on ``(B, C, S, S)`` inputs.
    field : torch.Tensor
        The linearisation point ``a``, ``(B, C, S, S)`` physical units.
    cotangents : torch.Tensor
        :math:`w_k` on the output, ``(K, *A(a).shape)``.

    Returns
    -------
    torch.Tensor
        ``(K, B, C, S, S)``.
    """
    import torch  # here, not at the top: the registry is read by commands that never load torch

    admissible = _admissible_input(operator)
    with torch.enable_grad():
        point = field.detach().requires_grad_(True)
        projected = point if admissible is None else admissible(point)
        if hasattr(operator, "jacobian_adjoint"):
            pulled = operator.jacobian_adjoint(projected.detach(), cotangents)
        else:
            leaf = projected.detach().requires_grad_(True)
            output = operator.A(leaf)
            pulled = torch.stack([torch.autograd.grad(output, leaf, w, retain_graph=True)[0] for w in cotangents])
        if admissible is None:
            return pulled
        slope = torch.autograd.grad(projected.sum(), point)[0]  # the elementwise projection's derivative
    return pulled * slope
