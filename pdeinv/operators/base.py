"""Input validation shared by every pdeinv operator, and the opt-in finiteness checks.

Fields are ``(batch, channels, S, S)`` float32 or float64 tensors; ``field[..., i, j]`` is the
value at grid point ``(x_i, y_j)``, so dimension ``-2`` is ``x`` and dimension ``-1`` is ``y``.

Scanning every input and output for NaN costs a pass over the data, which tight sampling loops
should not pay, so it is off by default: :class:`check_finite` switches it on for every
:func:`check_field` call (operators' and priors' inputs) and every :func:`check_output` call
(the PDE operators' outputs), either for the rest of the process or within a ``with`` block.
"""

from __future__ import annotations

import math

import torch

from pdeinv.errors import NonFiniteError

_SUPPORTED_DTYPES = (torch.float32, torch.float64)
_finite_checks = False


class check_finite:
    """Switch the NaN / inf checks of :func:`check_field` and :func:`check_output` on or off.

    Called, it sets the mode for the rest of the process; used as a context manager, it sets
    the mode inside the block and restores the previous one on exit (like
    :class:`torch.set_grad_enabled`). Off by default.

    Parameters
    ----------
    mode : bool
        ``True`` to reject non-finite inputs and outputs with :class:`~pdeinv.errors.NonFiniteError`.

    Examples
    --------
    >>> import torch
    >>> from pdeinv.operators import Helmholtz, check_finite
    >>> a = torch.full((1, 1, 9, 9), float("nan"))
    >>> with check_finite(True):
    ...     Helmholtz(9).A(a)
    Traceback (most recent call last):
    ...
    pdeinv.errors.NonFiniteError: Helmholtz.A: a holds 81 NaN or infinite value(s) of 81, first at index (0, 0, 0, 0)
    """

    def __init__(self, mode: bool = True):
        global _finite_checks
        self.previous = _finite_checks
        _finite_checks = bool(mode)

    def __enter__(self) -> check_finite:
        return self

    def __exit__(self, *exc) -> None:
        global _finite_checks
        _finite_checks = self.previous


def finite_checks_enabled() -> bool:
    """Whether :class:`check_finite` is on."""
    return _finite_checks


def _raise_non_finite(x: torch.Tensor, what: str, hint: str = "") -> None:
    bad = ~torch.isfinite(x)
    first = tuple(int(i) for i in bad.nonzero()[0])
    raise NonFiniteError(
        f"{what} holds {int(bad.sum())} NaN or infinite value(s) of {x.numel()}, first at index {first}{hint}"
    )


def check_output(y: torch.Tensor, owner: str, name: str = "the output") -> torch.Tensor:
    """Return ``y``, or raise :class:`~pdeinv.errors.NonFiniteError` if checks are on and it is not finite.

    Parameters
    ----------
    y : torch.Tensor
        An operator's output.
    owner : str
        The operator and method, e.g. ``"Helmholtz.A"``, named in the message.
    name : str
        What ``y`` is.
    """
    if _finite_checks and not torch.isfinite(y).all():
        _raise_non_finite(y, f"{owner}: {name}", " although its input was finite")
    return y


def check_field(
    x: torch.Tensor,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    name: str = "x",
    finite: bool = False,
    owner: str | None = None,
) -> None:
    """Raise a ValueError naming the problem when ``x`` is not a valid field.

    Parameters
    ----------
    x : torch.Tensor
        Candidate field, expected shape ``(batch, channels, S, S)``.
    resolution : int, optional
        Expected grid size ``S``; ``None`` accepts any square grid.
    channels : int, optional
        Expected channel count; ``None`` accepts any.
    name : str
        Name of the argument, used in the error message.
    finite : bool
        Also reject NaN and infinite values (always done while :class:`check_finite` is on).
    owner : str, optional
        The operator and method checking, e.g. ``"Helmholtz.A"``, prefixed to the message.

    Raises
    ------
    ValueError
        If ``x`` is not a float32/float64 tensor of the expected rank or shape.
    NonFiniteError
        If ``x`` holds NaN or infinite values and ``finite`` or :class:`check_finite` is on.
    """
    if owner is not None:
        name = f"{owner}: {name}"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, channels, S, S), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (batch, channels, S, S) (4 dimensions), got {tuple(x.shape)}; "
            "add the missing axes with x[None] or x[:, None]"
        )
    if x.dtype not in _SUPPORTED_DTYPES:
        kind = "complex" if x.is_complex() else "half precision" if x.is_floating_point() else "not floating point"
        raise ValueError(
            f"{name} must be a real floating-point tensor (float32 or float64), got dtype {x.dtype} ({kind}); "
            + ("pass the real and imaginary parts as separate fields" if x.is_complex() else "convert it with .float()")
        )
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be on a square S x S grid, got spatial shape {tuple(x.shape[-2:])}")
    if resolution is not None and x.shape[-1] != resolution:
        raise ValueError(
            f"{name} has resolution {x.shape[-1]} x {x.shape[-2]}, but this operator was built for "
            f"{resolution} x {resolution}; build the operator with resolution={x.shape[-1]} or resample the field"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    if (finite or _finite_checks) and not torch.isfinite(x).all():
        _raise_non_finite(x, name)


def check_noise_level(noise_level: float) -> float:
    """Return ``noise_level`` as a float after checking it is a finite standard deviation ``>= 0``.

    Raises
    ------
    ValueError
        If it is not a real number, is negative, NaN or infinite.
    """
    numeric = isinstance(noise_level, (int, float)) and not isinstance(noise_level, bool)
    if not numeric or not math.isfinite(noise_level) or noise_level < 0:
        raise ValueError(f"noise_level must be a finite standard deviation >= 0, got {noise_level!r}")
    return float(noise_level)
