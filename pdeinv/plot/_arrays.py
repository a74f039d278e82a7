"""Conversion of torch tensors, numpy arrays and xarray DataArrays to numpy fields for plotting.

Every plot reads its inputs through these helpers, so every plot follows the pdeinv grid
convention: ``field[..., i, j]`` is the value at ``(x_i, y_j)`` (dimension ``-2`` is ``x``,
dimension ``-1`` is ``y``). A DataArray is first transposed so that its ``x`` and ``y``
dimensions come last, whatever order it was stored in.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr


def to_numpy(data, name: str) -> np.ndarray:
    """``data`` as a float64 numpy array, DataArrays with ``x``, ``y`` as the last two axes.

    Parameters
    ----------
    data : torch.Tensor, numpy.ndarray, xarray.DataArray or array-like
        Real values; tensors may live on any device and may require grad.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        float64 copy (or view) of the values.

    Raises
    ------
    ValueError
        If the values are complex or not numeric.
    """
    if isinstance(data, xr.DataArray):
        if "x" in data.dims and "y" in data.dims:
            data = data.transpose(..., "x", "y")
        data = data.values
    elif isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}; plot abs() or .real explicitly")
    return array.astype(np.float64, copy=False)


def _check_square(array: np.ndarray, name: str, shapes: str) -> None:
    if array.ndim < 2 or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"{name} must have shape {shapes} on a square S x S grid, got {array.shape}")


def as_fields(data, name: str = "fields") -> np.ndarray:
    """Read a field, or a batch of fields, as a ``(B, C, S, S)`` array.

    Parameters
    ----------
    data : torch.Tensor, numpy.ndarray or xarray.DataArray
        ``(S, S)``, ``(C, S, S)`` or ``(B, C, S, S)``. A DataArray is indexed by dimension name:
        ``(x, y)``, ``(sample, x, y)`` (a batch of one channel), any other ``(dim, x, y)``
        (channels), or ``(sample, time, x, y)`` as written by ``pdeinv.datasets.open_xarray``
        (batch ``sample``, channels ``time``).
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        float64 array ``(B, C, S, S)`` with ``field[b, c, i, j]`` at ``(x_i, y_j)``.

    Raises
    ------
    ValueError
        If the shape is not one of the above.
    """
    array = to_numpy(data, name)
    shapes = "(S, S), (C, S, S) or (B, C, S, S)"
    _check_square(array, name, shapes)
    if array.ndim > 4:
        raise ValueError(f"{name} must have shape {shapes}, got {array.shape}")
    if array.ndim == 3 and isinstance(data, xr.DataArray) and data.dims[0] == "sample":
        return array[:, None]
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def as_field(data, name: str) -> np.ndarray:
    """Read exactly one single-channel field as an ``(S, S)`` array.

    Parameters
    ----------
    data : torch.Tensor, numpy.ndarray or xarray.DataArray
        ``(S, S)``, ``(1, S, S)`` or ``(1, 1, S, S)``.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        float64 array ``(S, S)`` with ``field[i, j]`` at ``(x_i, y_j)``.

    Raises
    ------
    ValueError
        If ``data`` holds more than one field or channel.
    """
    fields = as_fields(data, name)
    if fields.shape[:2] != (1, 1):
        raise ValueError(
            f"{name} must be one single-channel field (S, S), got {fields.shape[0]} field(s) with "
            f"{fields.shape[1]} channel(s); select one, e.g. x[0, 0] or x[:, [c]]"
        )
    return fields[0, 0]


def quantity_name(data, default: str = "value") -> str:
    """Name of the plotted quantity: a DataArray's CF ``long_name`` (else its name), else ``default``.

    Parameters
    ----------
    data : object
        The plotted input.
    default : str
        Name used for tensors, arrays and unnamed DataArrays.

    Returns
    -------
    str
        The quantity's name.
    """
    if isinstance(data, xr.DataArray):
        name = data.attrs.get("long_name", data.name)
        if name is not None:
            return str(name)
    return default


def unit_text(data, units: str | None = None) -> str:
    """Units for a colour-bar label: ``"[units]"``, ``"(dimensionless)"`` or ``"(a.u.)"``.

    Parameters
    ----------
    data : object
        The plotted input; a DataArray's CF ``units`` attribute is used (``"1"`` is dimensionless).
    units : str, optional
        Units given by the caller; they take precedence over the DataArray's.

    Returns
    -------
    str
        The unit text; ``"(a.u.)"`` (arbitrary units) when nothing names the units.
    """
    if units is None and isinstance(data, xr.DataArray):
        units = data.attrs.get("units")
    if units is None:
        return "(a.u.)"
    return "(dimensionless)" if str(units) == "1" else f"[{units}]"
