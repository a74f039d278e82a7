"""``open_xarray``: a pdeinv HDF5 file as an ``xarray.Dataset`` with real dimensions and coordinates.

The file's root dimension scales become the coordinates ``sample``, ``time``, ``x``, ``y`` and
every ``/t0_fields`` field a variable ``(sample, time, x, y)``; the root attributes become the
dataset's attributes. The Well's per-variable flags ``sample_varying``, ``time_varying`` and
``dim_varying`` are dropped from the variables: the dimensions already say which axes vary, and
netCDF has no boolean attributes, so the view can be written with ``to_netcdf`` unchanged.
"""

from __future__ import annotations

import os

import xarray as xr

from pdeinv.datasets.schema import WELL_FLAGS


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
    root = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort")
    fields = xr.open_dataset(path, engine="h5netcdf", group="t0_fields", phony_dims="sort")
    view = fields.assign_coords({name: root[name] for name in ("sample", "time", "x", "y")})
    for variable in view.data_vars.values():
        for flag in WELL_FLAGS:
            variable.attrs.pop(flag, None)
    view.attrs = dict(root.attrs)
    return view
