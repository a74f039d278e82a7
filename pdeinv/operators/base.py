"""Input validation shared by every pdeinv operator.

Fields are ``(batch, channels, S, S)`` floating-point tensors; ``field[..., i, j]`` is the
value at grid point ``(x_i, y_j)``, so dimension ``-2`` is ``x`` and dimension ``-1`` is ``y``.
"""

from __future__ import annotations

import math

import torch


def check_field(
    x: torch.Tensor,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    name: str = "x",
    finite: bool = False,
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
        Also reject NaN and infinite values.

    Raises
    ------
    ValueError
        If ``x`` is not a real floating tensor of the expected rank, shape or values.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, channels, S, S), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (batch, channels, S, S) (4 dimensions), got {tuple(x.shape)}; "
            "add the missing axes with x[None] or x[:, None]"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point tensor (float32 or float64), got dtype {x.dtype}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be on a square S x S grid, got spatial shape {tuple(x.shape[-2:])}")
    if resolution is not None and x.shape[-1] != resolution:
        raise ValueError(
            f"{name} has resolution {x.shape[-1]} x {x.shape[-2]}, but this operator was built for "
            f"{resolution} x {resolution}; build the operator with resolution={x.shape[-1]} or resample the field"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    if finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


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
