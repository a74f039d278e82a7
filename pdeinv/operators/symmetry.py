r"""Symmetry groups of forward operators.

A symmetry of an operator :math:`A` is a pair of invertible maps :math:`(g, g')` with

.. math:: A(g\,x) = g'\,A(x) \quad \text{for every field } x,

where :math:`g` acts on the operator's input fields and :math:`g'` on its outputs (for a PDE
solution operator :math:`g' = g`; for Fourier phase retrieval :math:`g'` is the identity).
EquiReg draws its transforms from an operator's ``symmetries``.

Transforms act on fields of shape ``(batch, channels, S, S)`` with dimension ``-2`` the ``x``
index and ``-1`` the ``y`` index, identically on every channel. They are compositions of
primitive grid operations (circular shifts, flips, transposes, quarter turns and a sign flip),
so their inverses are exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

Op = tuple  # ("roll", dx, dy) | ("flip", dim, ...) | ("transpose",) | ("rot90", k) | ("negate",)


def _apply_op(x: torch.Tensor, op: Op) -> torch.Tensor:
    kind = op[0]
    if kind == "roll":
        return torch.roll(x, shifts=(op[1], op[2]), dims=(-2, -1))
    if kind == "flip":
        return torch.flip(x, dims=op[1:])
    if kind == "transpose":
        return x.transpose(-2, -1)
    if kind == "rot90":
        return torch.rot90(x, k=op[1], dims=(-2, -1))
    if kind == "negate":
        return -x
    raise ValueError(f"unknown grid operation {kind!r}")


def _invert_op(op: Op) -> Op:
    if op[0] == "roll":
        return ("roll", -op[1], -op[2])
    if op[0] == "rot90":
        return ("rot90", -op[1])
    return op


def _apply_ops(x: torch.Tensor, ops: tuple[Op, ...]) -> torch.Tensor:
    for op in ops:
        x = _apply_op(x, op)
    return x


@dataclass(frozen=True)
class Transform:
    """One group element: its action ``g`` on inputs and ``g'`` on outputs.

    Parameters
    ----------
    name : str
        Human-readable label, e.g. ``"rot90"`` or ``"shift(3,-3)"``.
    ops : tuple
        Primitive grid operations applied left to right to an input field.
    output_ops : tuple, optional
        Operations that realise ``g'`` on the operator's output; ``None`` means ``g' = g``.
    """

    name: str
    ops: tuple[Op, ...] = ()
    output_ops: tuple[Op, ...] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``g`` to a field ``(B, C, S, S)``."""
        return _apply_ops(x, self.ops)

    def on_output(self, y: torch.Tensor) -> torch.Tensor:
        """Apply ``g'`` to an operator output."""
        return _apply_ops(y, self.ops if self.output_ops is None else self.output_ops)

    def inverse(self) -> Transform:
        """The inverse element ``g^{-1}`` (with ``g'^{-1}`` on outputs)."""
        out = None if self.output_ops is None else tuple(_invert_op(o) for o in reversed(self.output_ops))
        return Transform(f"inv({self.name})", tuple(_invert_op(o) for o in reversed(self.ops)), out)

    def then(self, other: Transform) -> Transform:
        """The composition ``other ∘ self`` (first ``self``, then ``other``)."""
        if self.output_ops is None and other.output_ops is None:
            out = None
        else:
            out = (self.ops if self.output_ops is None else self.output_ops) + (
                other.ops if other.output_ops is None else other.output_ops
            )
        names = [n for n in (self.name, other.name) if n != "identity"] or ["identity"]
        return Transform("∘".join(reversed(names)), self.ops + other.ops, out)


IDENTITY = Transform("identity")


class SymmetryGroup:
    """A finite group of transforms that an operator commutes with.

    Parameters
    ----------
    name : str
        Name of the group, e.g. ``"D4"``.
    elements : sequence of Transform
        All group elements, the identity included.
    description : str
        Where the symmetry comes from (shown in ``repr`` and reports).
    """

    def __init__(self, name: str, elements: Sequence[Transform], description: str = ""):
        if not elements:
            raise ValueError("a symmetry group needs at least the identity element")
        self.name = name
        self.elements = tuple(elements)
        self.description = description

    def __len__(self) -> int:
        return len(self.elements)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.elements)

    def __getitem__(self, index: int) -> Transform:
        return self.elements[index]

    def __repr__(self) -> str:
        return f"SymmetryGroup({self.name!r}, order={len(self)})"

    def non_trivial(self) -> tuple[Transform, ...]:
        """All elements except those that act as the identity on inputs."""
        return tuple(g for g in self.elements if g.ops)

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        """Draw a uniformly random non-identity element (the identity if the group is trivial)."""
        choices = self.non_trivial() or self.elements
        index = int(torch.randint(len(choices), (1,), generator=generator))
        return choices[index]

    def commutation_errors(self, operator, x: torch.Tensor) -> dict[str, float]:
        r"""Relative commutation error :math:`\|A(gx) - g'A(x)\| / \|A(x)\|` of every element.

        Parameters
        ----------
        operator : callable
            The forward map ``A`` (e.g. ``physics.A``).
        x : torch.Tensor
            Test field ``(B, C, S, S)``.
        """
        y = operator(x)
        scale = torch.linalg.vector_norm(y).clamp_min(torch.finfo(y.dtype).tiny)
        return {
            g.name: float(torch.linalg.vector_norm(operator(g(x)) - g.on_output(y)) / scale) for g in self.elements
        }

    @staticmethod
    def product(name: str, first: SymmetryGroup, second: SymmetryGroup, description: str = "") -> SymmetryGroup:
        """All compositions ``h ∘ g`` with ``g`` from ``first`` and ``h`` from ``second``."""
        return SymmetryGroup(name, [g.then(h) for g in first for h in second], description)


def trivial_group() -> SymmetryGroup:
    """The group containing only the identity."""
    return SymmetryGroup("trivial", [IDENTITY], "no symmetry declared")


def dihedral_group() -> SymmetryGroup:
    """The dihedral group D4 of the square about its centre (8 elements).

    Flips reverse the index order, ``i -> S - 1 - i``, which is the reflection ``x -> 1 - x`` on
    the vertex grid ``x_i = i / (S - 1)``.
    """
    elements = [
        IDENTITY,
        Transform("rot90", (("rot90", 1),)),
        Transform("rot180", (("rot90", 2),)),
        Transform("rot270", (("rot90", 3),)),
        Transform("flip_x", (("flip", -2),)),
        Transform("flip_y", (("flip", -1),)),
        Transform("transpose", (("transpose",),)),
        Transform("anti_transpose", (("rot90", 1), ("flip", -1))),
    ]
    return SymmetryGroup("D4", elements, "rotations and reflections of the square")


def translation_group(resolution: int, step: tuple[int, int] = (1, 0), name: str | None = None) -> SymmetryGroup:
    """Cyclic group of circular shifts by multiples of ``step`` on an ``S x S`` periodic grid.

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    step : tuple of int
        Generator shift ``(dx, dy)`` in grid points.
    """
    elements, seen = [], set()
    for m in range(resolution):
        shift = ((m * step[0]) % resolution, (m * step[1]) % resolution)
        if shift in seen:
            break
        seen.add(shift)
        ops = (("roll",) + shift,) if shift != (0, 0) else ()
        elements.append(Transform(f"shift{shift}" if ops else "identity", ops))
    return SymmetryGroup(name or f"shifts{step}", elements, f"circular shifts by multiples of {step}")
