"""``open_xarray``: a pdeinv HDF5 file as an ``xarray.Dataset`` with real dimensions and coordinates.

The file's root dimension scales become the coordinates ``sample``, ``time``, ``x``, ``y`` and
every ``/t0_fields`` field a variable ``(sample, time, x, y)``; the root attributes become the
dataset's attributes. The Well's per-variable flags ``sample_varying``, ``time_varying`` and
``dim_varying`` are dropped from the variables: the dimensions already say which axes vary, and
netCDF has no boolean attributes, so the view can be written with ``to_netcdf`` unchanged.

A file The Well writes (no root dimension scales) is read with h5py instead: each scalar field
and each vector component (``"<field>_<dim>"``) a variable ``(sample, time, x, y)``, a
time-constant field ``(sample, x, y)`` (it has no time axis), coordinates from ``/dimensions``.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import xarray as xr

from pdeinv.datasets.schema import WELL_FLAGS, as_str_list, stored_fields


def open_xarray(path: str | os.PathLike) -> xr.Dataset:
    """Open a pdeinv HDF5 file lazily as an ``xarray.Dataset`` (engine ``h5netcdf``).

    Parameters
    ----------
    path : path-like
        A file written by ``pdeinv data generate``.

    Returns
    -------
    xarray.Dataset
        Variables ``(sample, time, x, y)`` float32 (one per field), coordinates ``sample``
        (int32), ``time``, ``x``, ``y`` (float32, units "1"), root attributes as attributes.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; create it with `pdeinv data generate`")
    with h5py.File(path, "r") as f:
        if "sample" not in f:
            return _well_view(f)
    root = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort")
    fields = xr.open_dataset(path, engine="h5netcdf", group="t0_fields", phony_dims="sort")
    view = fields.assign_coords({name: root[name] for name in ("sample", "time", "x", "y")})
    for variable in view.data_vars.values():
        for flag in WELL_FLAGS:
            variable.attrs.pop(flag, None)
    view.attrs = dict(root.attrs)
    return view


def _attribute(value):
    """A root attribute as netCDF accepts it (booleans as int, string arrays as lists of str)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return as_str_list(value)
    return value


def _well_view(f: h5py.File) -> xr.Dataset:
    """A file without pdeinv's root scales (written by The Well), read eagerly into memory."""
    spatial = as_str_list(f["dimensions"].attrs.get("spatial_dims", ["x", "y"]))
    coords = {"sample": np.arange(int(f.attrs["n_trajectories"])), "time": f["dimensions"]["time"][()]}
    coords.update({dim: f["dimensions"][dim][()] for dim in spatial})
    variables = {}
    for name, field in stored_fields(f).items():
        data = field.read(f, slice(None), slice(None))
        dims = ("sample", "time", *spatial) if field.time_varying else ("sample", *spatial)
        attrs = {k: _attribute(v) for k, v in f[field.path].attrs.items() if k not in WELL_FLAGS + ("dim_varying",)}
        variables[name] = xr.Variable(dims, data, attrs)
    return xr.Dataset(variables, coords=coords, attrs={k: _attribute(v) for k, v in f.attrs.items()})
