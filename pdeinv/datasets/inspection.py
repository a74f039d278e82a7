r"""``pdeinv data info`` and ``pdeinv data check``: summarise and validate a pdeinv HDF5 file.

:func:`check_file` enforces The Well's formatting rules (root attributes, ``sample_varying`` /
``time_varying`` booleans, the expected-shape rule ``(B if sample_varying) + (T if
time_varying) + (spatial sizes where dim_varying) + (D,) * tensor_order``), pdeinv's own schema
(:mod:`pdeinv.datasets.schema`), the contents (every chunk readable, float32/float64, no NaN or
infinity, the stored statistics equal to a recomputation) and the physics: the ``pde``
attribute names a registered PDE (:func:`pdeinv.pdes.pde_names`), and for a few pairs
``(a, u)`` the stored output equals the forward solve of the stored input,

.. math:: r = \frac{\max |u - A(a)|}{\max |A(a)|} \le \mathrm{rtol},

with :math:`A` = ``pde_physics(pde, S, settings).operator`` (the file's own Navier-Stokes
viscosity, final time and time step). ``rtol`` is the PDE's ``data_rtol`` (:mod:`pdeinv.pdes`): the Helmholtz,
Poisson and Darcy solutions are float64 solves rounded to float32 (relative error at most
:math:`2^{-24} \approx 6 \times 10^{-8}`, bound 1e-6); the Navier-Stokes generator integrates in
float32 in groups of 16 samples, and its result differs from a one-sample float64 integration by
float32 round-off grown over the time steps (measured 1.9e-4 at 64 x 64 and 1.3e-4 at 128 x 128 for
the default ``T = 1``, ``dt = 1e-4``; bound 1e-3). One Navier-Stokes check at
128 x 128 takes about 10 s on one CPU core, so at most its ``max_check_samples`` (2) are checked. A
relabelled PDE (Poisson pairs marked Helmholtz: ``r`` of 2e-2 to 4e-2) or solutions swapped between
samples (``r`` of 1 to 2) fail.

Only metadata is read by :func:`summary`; torch and the solvers are imported by the physics
check alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from pdeinv.datasets.schema import FIELD_GROUPS, as_str_list, coordinates, generation_config, parse_channel
from pdeinv.datasets.statistics import Moments
from pdeinv.pdes import get_pde, pde_names

PHYSICS_SAMPLES = 4
FLOAT_DTYPES = (np.float32, np.float64)
ROOT_ATTRIBUTES = {"dataset_name": str, "grid_type": str, "n_spatial_dims": int, "n_trajectories": int}
PDEINV_ATTRIBUTES = ("pde", "grid", "resolution", "input_fields", "output_fields", "generation_config", "seed")
STATISTICS_RTOL = 1e-9


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _root_problems(f: h5py.File) -> list[str]:
    problems = []
    for name, kind in ROOT_ATTRIBUTES.items():
        value = f.attrs.get(name)
        if value is None:
            problems.append(f"root attribute {name!r} is missing")
        elif kind is int and not _is_int(value):
            problems.append(f"root attribute {name!r} must be a scalar integer, got {value!r}")
        elif kind is str and not isinstance(value, str):
            problems.append(f"root attribute {name!r} must be a string, got {value!r}")
    for name in as_str_list(f.attrs.get("simulation_parameters", [])):
        if name not in f.attrs:
            problems.append(f"simulation parameter {name!r} is not a root attribute")
        if f"scalars/{name}" not in f:
            problems.append(f"simulation parameter {name!r} has no /scalars/{name} dataset")
    problems += [f"pdeinv root attribute {name!r} is missing" for name in PDEINV_ATTRIBUTES if name not in f.attrs]
    return problems


def _flag_problems(path: str, obj) -> list[str]:
    return [
        f"{path}: attribute {flag!r} must be a bool, got {obj.attrs.get(flag)!r}"
        for flag in ("sample_varying", "time_varying")
        if not isinstance(obj.attrs.get(flag), (bool, np.bool_))
    ]


def _well_field_problems(f: h5py.File) -> list[str]:
    """The Well checker's rules for /dimensions, /scalars, /boundary_conditions and t{0,1,2}_fields."""
    problems = []
    n = int(f.attrs.get("n_trajectories", -1))
    n_time = len(f["dimensions/time"]) if "dimensions/time" in f else -1
    spatial = [len(f[f"dimensions/{d}"]) for d in ("x", "y") if f"dimensions/{d}" in f]
    for group in ("dimensions", "scalars", "boundary_conditions") + FIELD_GROUPS:
        if group not in f:
            problems.append(f"group /{group} is missing")
    if problems:
        return problems
    for name, ds in f["dimensions"].items():
        problems += _flag_problems(f"/dimensions/{name}", ds)
    if not bool(f["dimensions/time"].attrs.get("time_varying", False)):
        problems.append("/dimensions/time must have time_varying=True")
    for name, ds in f["scalars"].items():
        problems += _flag_problems(f"/scalars/{name}", ds)
    for name, bc in f["boundary_conditions"].items():
        problems += _flag_problems(f"/boundary_conditions/{name}", bc)
        if not isinstance(bc.attrs.get("bc_type"), str) or "mask" not in bc:
            problems.append(f"/boundary_conditions/{name} needs a bc_type string and a mask dataset")
    for order, group in enumerate(FIELD_GROUPS):
        names = as_str_list(f[group].attrs.get("field_names", []))
        if sorted(names) != sorted(f[group].keys()):
            problems.append(f"/{group}: field_names {names} does not list its datasets {sorted(f[group].keys())}")
        for name, ds in f[group].items():
            problems += _flag_problems(f"/{group}/{name}", ds)
            dim_varying = np.atleast_1d(ds.attrs.get("dim_varying", []))
            if len(dim_varying) != len(spatial):
                problems.append(f"/{group}/{name}: dim_varying must have {len(spatial)} entries, got {dim_varying}")
                continue
            expected = (
                ((n,) if ds.attrs.get("sample_varying") else ())
                + ((n_time,) if ds.attrs.get("time_varying") else ())
                + tuple(size for size, varying in zip(spatial, dim_varying) if varying)
                + (len(spatial),) * order
            )
            if ds.shape != expected:
                problems.append(f"/{group}/{name} has shape {ds.shape}, expected {expected}")
    return problems


def _pdeinv_problems(f: h5py.File) -> list[str]:
    """pdeinv's schema: coordinates, float32 chunked gzip fields, statistics attributes, channel names."""
    problems = []
    s, grid = int(f.attrs["resolution"]), str(f.attrs["grid"])
    for axis in ("x", "y"):
        if axis not in f or not np.array_equal(f[axis][()], coordinates(grid, s)):
            problems.append(f"/{axis} must hold the {grid} grid coordinates of {s} points")
    for name, ds in f["t0_fields"].items():
        if ds.dtype not in FLOAT_DTYPES:
            problems.append(f"/t0_fields/{name} is stored as {ds.dtype}; fields must be float32 or float64, regenerate")
        if ds.chunks != (1, 1, s, s) or ds.compression != "gzip":
            problems.append(
                f"/t0_fields/{name} must have chunks (1, 1, {s}, {s}) and gzip; got {ds.chunks}, {ds.compression}"
            )
        for key in ("mean", "std", "time_mean", "time_std"):
            if key not in ds.attrs:
                problems.append(f"/t0_fields/{name} lacks the statistics attribute {key!r}")
    fields = list(f["t0_fields"].keys())
    for channel in as_str_list(f.attrs["input_fields"]) + as_str_list(f.attrs["output_fields"]):
        if parse_channel(channel)[0] not in fields:
            problems.append(f"channel {channel!r} in input_fields/output_fields names no field of /t0_fields")
    return problems


def _content_problems(f: h5py.File) -> list[str]:
    """Read every sample: report unreadable chunks, NaN/inf, and statistics that do not match the data."""
    problems = []
    for name, ds in f["t0_fields"].items():
        if ds.dtype not in FLOAT_DTYPES:
            continue
        moments = Moments.empty(ds.shape[1])
        bad, first = 0, None
        for i in range(ds.shape[0]):
            try:
                sample = ds[i]
            except (OSError, RuntimeError) as error:
                return problems + [f"/t0_fields/{name} sample {i} cannot be read (truncated or corrupt file): {error}"]
            count = int((~np.isfinite(sample)).sum())
            first = i if count and first is None else first
            bad += count
            if not bad:
                moments.add_sample(sample)
        if bad:
            problems.append(
                f"/t0_fields/{name} holds {bad} NaN or infinite values (first in sample {first}); regenerate the file"
            )
            continue
        mean, std = moments.per_time()
        for key, value in (("time_mean", mean), ("time_std", std)):
            stored = np.asarray(ds.attrs.get(key, np.nan))
            if stored.shape != value.shape or not np.allclose(stored, value, rtol=STATISTICS_RTOL, atol=0):
                problems.append(f"/t0_fields/{name}: stored {key} {stored} differs from the data's {value}")
    return problems


def _physics_settings(f: h5py.File) -> dict:
    """The Navier-Stokes ``viscosity``, ``time``, ``dt`` of the file (its generation settings, else its attributes)."""
    if "generation_config" in f.attrs:
        return generation_config(f)
    return {"viscosity": f.attrs.get("viscosity"), "time": f.attrs.get("final_time"), "dt": f.attrs.get("dt")}


def _checked_samples(n: int, count: int) -> list[int]:
    """``count`` sample indices spread over ``0..n-1``, first and last included."""
    return sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(min(count, n))})


def _physics_problems(f: h5py.File, physics_samples: int) -> list[str]:
    """A known ``pde`` attribute, and the stored output of a few pairs equal to the solve of their input."""
    pde = str(f.attrs["pde"])
    if pde not in pde_names():
        return [f"the pde attribute {pde!r} is not a known PDE ({', '.join(pde_names())}); fix the attribute"]
    count = min(physics_samples, get_pde(pde).max_check_samples or physics_samples)
    if count == 0:
        return []
    import torch

    resolution = int(f.attrs["resolution"])
    operator = get_pde(pde).build_operator(resolution, _physics_settings(f))
    input_channel, output_channel = get_pde(pde).channels
    (source, source_time), (target, target_time) = parse_channel(input_channel), parse_channel(output_channel)
    rtol = get_pde(pde).data_rtol
    problems = []
    for i in _checked_samples(int(f.attrs["n_trajectories"]), count):
        a = torch.from_numpy(np.asarray(f[f"t0_fields/{source}"][i, source_time or 0], np.float64))
        u = torch.from_numpy(np.asarray(f[f"t0_fields/{target}"][i, target_time or 0], np.float64))
        with torch.no_grad():
            solved = operator.A(a[None, None])[0, 0]
        residual = float((u - solved).abs().max() / solved.abs().max().clamp_min(1e-300))
        if not residual <= rtol:
            problems.append(
                f"sample {i}: the stored {output_channel} is not the {pde} solve of the stored {input_channel} "
                f"(relative residual {residual:.3g} > {rtol:g}); the pde attribute, the simulation settings or the "
                "pairing is wrong"
            )
    return problems


def check_file(path: str | os.PathLike, physics_samples: int = PHYSICS_SAMPLES) -> list[str]:
    """Validate schema, contents and physics of a pdeinv HDF5 file (see the module docstring).

    Parameters
    ----------
    path : path-like
        The HDF5 file.
    physics_samples : int
        Pairs whose output is recomputed from their input (at most the PDE's
        ``max_check_samples``: 2 for Navier-Stokes, each a full time integration); 0 skips the physics.

    Returns
    -------
    list of str
        One message per problem; empty when the file is valid.
    """
    path = Path(path)
    if not path.exists():
        return [f"{path} does not exist"]
    if path.is_dir():
        return [f"{path} is a directory; give an HDF5 file"]
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        return [f"cannot be opened as HDF5, the file is truncated or corrupt ({error}); regenerate it"]
    with f:
        problems = _root_problems(f)
        problems += _well_field_problems(f)
        if problems:
            return problems
        problems += _pdeinv_problems(f)
        problems += _content_problems(f)
        if problems:
            return problems
        return _physics_problems(f, physics_samples)


def summary(path: str | os.PathLike) -> str:
    """A human-readable description of a pdeinv HDF5 file or any Well-formatted file (metadata only)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path} cannot be opened as HDF5 (truncated or corrupt?): {error}") from None
    with f:
        attrs = f.attrs
        times = f["time"][()] if "time" in f else f["dimensions/time"][()] if "dimensions/time" in f else None
        resolution = attrs.get("resolution") or _spatial_sizes(f)
        lines = [
            f"{path} ({path.stat().st_size / 2**20:.1f} MiB)",
            f"  dataset_name: {attrs.get('dataset_name')}   pde: {attrs.get('pde')}   grid: {attrs.get('grid')}",
            f"  samples: {attrs.get('n_trajectories')}   resolution: {resolution}   "
            f"time: {'?' if times is None else [round(float(t), 6) for t in times]}   seed: {attrs.get('seed')}",
            "  simulation parameters: "
            + ", ".join(f"{n}={attrs.get(n)}" for n in as_str_list(attrs.get("simulation_parameters", []))),
            f"  inputs: {as_str_list(attrs.get('input_fields', []))}   "
            f"outputs: {as_str_list(attrs.get('output_fields', []))}",
        ]
        for group in FIELD_GROUPS:
            for name, ds in f.get(group, {}).items():
                line = f"  {group}/{name}: {ds.shape} {ds.dtype}"
                if not bool(ds.attrs.get("time_varying", True)):
                    line += "  time-constant"
                if "time_mean" in ds.attrs:
                    line += (
                        f"  mean per time {np.round(ds.attrs['time_mean'], 6)}"
                        f"  std per time {np.round(ds.attrs['time_std'], 6)}"
                    )
                lines.append(line)
        return "\n".join(lines)


def _spatial_sizes(f: h5py.File) -> str:
    if "dimensions" not in f:
        return "?"
    dims = as_str_list(f["dimensions"].attrs.get("spatial_dims", []))
    return " x ".join(str(len(f["dimensions"][d])) for d in dims if d in f["dimensions"]) or "?"
