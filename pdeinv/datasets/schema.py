"""The pdeinv HDF5 schema: The Well's layout plus root dimension scales (netCDF/xarray compatible).

Layout of one file (all written with h5py)::

    /                 @dataset_name @n_spatial_dims=2 @grid_type="cartesian" @n_trajectories
                      @simulation_parameters [names; each also a root attribute and /scalars/<name>]
                      @Conventions="CF-1.10" @title @history; pdeinv's own: @pde @grid ("vertex"|"periodic")
                      @resolution @generator_version @seed @input_fields @output_fields @grf_* @dt
                      @generation_config (JSON of the generation settings)
    /sample (sample) int32, /time (time) float32, /x (x) float32, /y (y) float32   HDF5 dimension scales
    /dimensions       @spatial_dims=["x","y"]; time, x, y (copies attached to the root scales)
    /boundary_conditions/{x,y}_{wall,periodic}   @bc_type @associated_dims @associated_fields, mask
    /scalars          @field_names; one () float32 dataset per simulation parameter
    /t0_fields        @field_names; <field> (n_trajectories, n_steps, S, S) float32,
                      chunks (1, 1, S, S), gzip 1 + shuffle, @mean @std (pooled) @time_mean @time_std
                      (per time index, float64, biased variance as The Well), @long_name @units
    /t1_fields, /t2_fields   empty (pdeinv fields are scalars, tensor order 0)

``field[n, t, i, j]`` is the value at ``(x_i, y_j)`` at ``time[t]`` of sample ``n``; the vertex
grid is ``x_i = i/(S-1)`` (Helmholtz, Poisson), the periodic grid ``x_i = i/S`` (Navier-Stokes).
Inputs and outputs are *channels* named ``field`` or ``field[t]`` (time index ``t``), listed in
the root attributes ``input_fields`` and ``output_fields``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

GRIDS = ("vertex", "periodic")
FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")
WELL_FLAGS = ("sample_varying", "time_varying", "dim_varying")
_CHANNEL = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<index>-?\d+)\])?$")


@dataclass(frozen=True)
class FieldInfo:
    """One scalar field of ``/t0_fields``: its name, CF ``long_name`` and ``units``."""

    name: str
    long_name: str
    units: str = "1"


@dataclass
class FileLayout:
    """Everything that defines the structure of a pdeinv HDF5 file (see the module doc).

    Parameters
    ----------
    dataset_name : str
        The Well's ``dataset_name``.
    pde : str
        ``"helmholtz"``, ``"poisson"`` or ``"navier-stokes"``.
    grid : {"vertex", "periodic"}
        Grid convention of ``x`` and ``y``.
    resolution : int
        Grid points per side ``S``.
    n_samples : int
        Number of trajectories (samples).
    times : tuple of float
        The time axis (length ``n_steps``).
    fields : tuple of FieldInfo
        Scalar fields stored in ``/t0_fields``.
    input_fields, output_fields : tuple of str
        Channel names (``"name"`` or ``"name[t]"``) of the inputs and outputs.
    simulation_parameters : dict
        Constant physical parameters (each a root attribute and a ``/scalars`` dataset).
    attributes : dict
        Further root attributes (str, int or float values), e.g. the seed and GRF parameters.
    """

    dataset_name: str
    pde: str
    grid: str
    resolution: int
    n_samples: int
    times: tuple[float, ...]
    fields: tuple[FieldInfo, ...]
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    simulation_parameters: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        names = [f.name for f in self.fields]
        for channel in self.input_fields + self.output_fields:
            name, index = parse_channel(channel)
            if name not in names:
                raise ValueError(f"channel {channel!r} names no field; fields are {names}")
            if index is not None and not -len(self.times) <= index < len(self.times):
                raise ValueError(f"channel {channel!r} indexes beyond the {len(self.times)} time steps")


def parse_channel(channel: str) -> tuple[str, int | None]:
    """Split a channel name ``"field"`` or ``"field[t]"`` into ``(field, t)`` (``t`` is ``None`` if absent)."""
    match = _CHANNEL.match(channel)
    if match is None:
        raise ValueError(
            f"channel {channel!r} must be a field name, optionally with a time index, e.g. 'source' or 'vorticity[-1]'"
        )
    index = match.group("index")
    return match.group("name"), None if index is None else int(index)


def coordinates(grid: str, resolution: int) -> np.ndarray:
    """Grid coordinates, float32 ``(S,)``: ``i/(S-1)`` on the vertex grid, ``i/S`` on the periodic grid."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    denominator = resolution - 1 if grid == "vertex" else resolution
    return (np.arange(resolution, dtype=np.float64) / denominator).astype(np.float32)


def string_list(values) -> np.ndarray:
    """A list of str as an HDF5 variable-length string array (also for an empty list)."""
    return np.array(list(values), dtype=h5py.string_dtype())


def as_str_list(value) -> list[str]:
    """Read a string-list attribute written by h5py (array) or collapsed by xarray (single str)."""
    if isinstance(value, (str, bytes)):
        value = [value]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def _flags(obj, *, sample: bool, time: bool) -> None:
    obj.attrs["sample_varying"] = np.bool_(sample)
    obj.attrs["time_varying"] = np.bool_(time)


def _scale(f: h5py.File, name: str, values: np.ndarray, **attrs) -> h5py.Dataset:
    ds = f.create_dataset(name, data=values)
    ds.make_scale(name)
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def _attach(ds: h5py.Dataset, scales: list[h5py.Dataset]) -> None:
    for axis, scale in enumerate(scales):
        ds.dims[axis].attach_scale(scale)


def _write_root(f: h5py.File, layout: FileLayout) -> None:
    f.attrs["dataset_name"] = layout.dataset_name
    f.attrs["n_spatial_dims"] = np.int64(2)
    f.attrs["grid_type"] = "cartesian"
    f.attrs["n_trajectories"] = np.int64(layout.n_samples)
    f.attrs["simulation_parameters"] = string_list(layout.simulation_parameters)
    for name, value in layout.simulation_parameters.items():
        f.attrs[name] = float(value)
    f.attrs["Conventions"] = "CF-1.10"
    f.attrs["title"] = f"pdeinv {layout.pde} pairs ({layout.resolution} x {layout.resolution}, {layout.grid} grid)"
    f.attrs["pde"] = layout.pde
    f.attrs["grid"] = layout.grid
    f.attrs["resolution"] = np.int64(layout.resolution)
    f.attrs["input_fields"] = string_list(layout.input_fields)
    f.attrs["output_fields"] = string_list(layout.output_fields)
    clashes = sorted(set(layout.attributes) & {info.name for info in layout.fields})
    if clashes:
        raise ValueError(
            f"root attributes {clashes} share a field's name; The Well's hdf5_to_xarray turns root attributes into "
            "variables and would overwrite the field. Rename the attribute"
        )
    for key, value in layout.attributes.items():
        f.attrs[key] = value


def _write_dimensions(f: h5py.File, layout: FileLayout) -> dict[str, h5py.Dataset]:
    axis = coordinates(layout.grid, layout.resolution)
    scales = {
        "sample": _scale(f, "sample", np.arange(layout.n_samples, dtype=np.int32), long_name="sample index", units="1"),
        "time": _scale(f, "time", np.asarray(layout.times, dtype=np.float32), long_name="time", units="1", axis="T"),
        "x": _scale(f, "x", axis, long_name="x coordinate on the unit square", units="1", axis="X"),
        "y": _scale(f, "y", axis.copy(), long_name="y coordinate on the unit square", units="1", axis="Y"),
    }
    group = f.create_group("dimensions")
    group.attrs["spatial_dims"] = string_list(["x", "y"])
    for name in ("time", "x", "y"):
        ds = group.create_dataset(name, data=scales[name][()])
        _flags(ds, sample=False, time=name == "time")
        _attach(ds, [scales[name]])
    return scales


def _write_boundaries(f: h5py.File, layout: FileLayout, scales: dict[str, h5py.Dataset]) -> None:
    group = f.create_group("boundary_conditions")
    bc_type = "PERIODIC" if layout.grid == "periodic" else "WALL"
    associated = [] if layout.grid == "periodic" else [info.name for info in layout.fields if info.name == "solution"]
    for dim in ("x", "y"):
        bc = group.create_group(f"{dim}_{bc_type.lower()}")
        bc.attrs["bc_type"] = bc_type
        bc.attrs["associated_dims"] = string_list([dim])
        bc.attrs["associated_fields"] = string_list(associated)
        _flags(bc, sample=False, time=False)
        mask = np.zeros(layout.resolution, dtype=bool)
        mask[[0, -1]] = True
        _attach(bc.create_dataset("mask", data=mask), [scales[dim]])
        if associated:
            bc.create_dataset("values", data=np.zeros(2, dtype=np.float32))


def _write_scalars(f: h5py.File, layout: FileLayout) -> None:
    group = f.create_group("scalars")
    group.attrs["field_names"] = string_list(layout.simulation_parameters)
    for name, value in layout.simulation_parameters.items():
        _flags(group.create_dataset(name, data=np.float32(value)), sample=False, time=False)


def create_layout(f: h5py.File, layout: FileLayout) -> dict[str, h5py.Dataset]:
    """Write the whole structure of ``layout`` into the empty, writable file ``f``.

    Returns
    -------
    dict
        Field name -> the empty ``(n_samples, n_steps, S, S)`` float32 dataset in ``/t0_fields``,
        chunked ``(1, 1, S, S)``, gzip level 1 with shuffle, axes attached to the root scales.
    """
    _write_root(f, layout)
    scales = _write_dimensions(f, layout)
    _write_boundaries(f, layout, scales)
    _write_scalars(f, layout)
    for group in FIELD_GROUPS[1:]:
        f.create_group(group).attrs["field_names"] = string_list([])
    t0 = f.create_group("t0_fields")
    t0.attrs["field_names"] = string_list(info.name for info in layout.fields)
    s = layout.resolution
    datasets = {}
    for info in layout.fields:
        ds = t0.create_dataset(
            info.name,
            shape=(layout.n_samples, len(layout.times), s, s),
            dtype=np.float32,
            chunks=(1, 1, s, s),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        _flags(ds, sample=True, time=True)
        ds.attrs["dim_varying"] = np.array([True, True])
        ds.attrs["long_name"] = info.long_name
        ds.attrs["units"] = info.units
        _attach(ds, [scales["sample"], scales["time"], scales["x"], scales["y"]])
        datasets[info.name] = ds
    return datasets


def generation_config(f: h5py.File) -> dict:
    """The generation settings stored in the root attribute ``generation_config`` (JSON)."""
    if "generation_config" not in f.attrs:
        raise ValueError(
            f"{f.filename} has no 'generation_config' attribute: it was not written by pdeinv data generate"
        )
    return json.loads(f.attrs["generation_config"])


@dataclass(frozen=True)
class StoredField:
    """One scalar field as stored, in any Well-formatted file (pdeinv's or The Well's own).

    Attributes
    ----------
    name : str
        Channel name: the field's name, ``"<field>_<dim>"`` for a component of a ``t1_fields``
        vector (The Well's flattened names, e.g. ``"velocity_x"``).
    path : str
        HDF5 path of the dataset, e.g. ``"t1_fields/velocity"``.
    component : int or None
        Index of the last axis for a vector component, ``None`` for a scalar field.
    time_varying : bool
        ``False`` for a time-constant field, stored without a time axis ``(n, S, S[, D])``.
    """

    name: str
    path: str
    component: int | None
    time_varying: bool

    def read(self, f: h5py.File, rows, time_index: int | None) -> np.ndarray:
        """Samples ``rows`` (an int or a slice) at ``time_index`` (ignored when time-constant) as ``(..., S, S)``."""
        key = (rows,) + ((time_index,) if self.time_varying else ()) + (slice(None), slice(None))
        key += () if self.component is None else (self.component,)
        return f[self.path][key]


def stored_fields(f: h5py.File) -> dict[str, StoredField]:
    """Every scalar field of ``t0_fields`` and every component of ``t1_fields``, by channel name.

    Raises
    ------
    ValueError
        For a field that does not vary over samples, or a ``t2_fields`` entry (not supported).
    """
    dims = as_str_list(f["dimensions"].attrs.get("spatial_dims", ["x", "y"])) if "dimensions" in f else ["x", "y"]
    fields = {}
    for order, group in enumerate(FIELD_GROUPS):
        if group not in f:
            continue
        for field_name in as_str_list(f[group].attrs.get("field_names", [])):
            ds = f[group][field_name]
            if order == 2:
                raise ValueError(f"{f.filename}: /{group}/{field_name} is a rank-2 tensor field, which pdeinv cannot read")
            if not bool(ds.attrs.get("sample_varying", True)):
                raise ValueError(f"{f.filename}: /{group}/{field_name} does not vary over samples; pdeinv reads per-sample fields")
            varying = bool(ds.attrs.get("time_varying", True))
            path = f"{group}/{field_name}"
            if order == 0:
                fields[field_name] = StoredField(field_name, path, None, varying)
            else:
                for k, dim in enumerate(dims):
                    fields[f"{field_name}_{dim}"] = StoredField(f"{field_name}_{dim}", path, k, varying)
    return fields


def grid_of(f: h5py.File) -> str:
    """The grid of a file: its ``grid`` attribute (pdeinv), else periodic if its boundary conditions are, else vertex."""
    if "grid" in f.attrs:
        return str(f.attrs["grid"])
    bcs = f.get("boundary_conditions", {})
    periodic = [str(bc.attrs.get("bc_type", "")).upper() == "PERIODIC" for bc in bcs.values()]
    return "periodic" if periodic and all(periodic) else "vertex"


def resolution_of(f: h5py.File) -> int:
    """Grid points per side ``S`` (the ``resolution`` attribute, else the ``x``/``y`` dimensions, which must agree)."""
    if "resolution" in f.attrs:
        return int(f.attrs["resolution"])
    sizes = {len(f["dimensions"][d]) for d in as_str_list(f["dimensions"].attrs.get("spatial_dims", ["x", "y"]))}
    if len(sizes) != 1:
        raise ValueError(f"{f.filename}: the spatial grid is {sorted(sizes)}, but pdeinv reads square S x S grids")
    return sizes.pop()
