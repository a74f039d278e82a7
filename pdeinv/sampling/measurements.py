"""Reading a user's measurement file for ``pdeinv solve``.

Format (``.npz`` arrays, or ``.h5`` root datasets and root attributes, same names):

- ``values``: float ``(M,)`` or ``(n, M)``, the observed values in physical units (``n``
  measurement vectors of the same sensors);
- the sensor locations, either ``indices``: int ``(M, 2)`` grid points ``(i, j)`` together with
  ``resolution`` (``S``), or ``mask``: bool ``(S, S)`` with ``values`` in the row-major order of
  its ``True`` entries;
- optional ``pde`` (a registered PDE, :func:`pdeinv.pdes.pde_names`), ``observed`` (``input`` or
  ``output``: which field the sensors read) and ``noise_std`` (physical units); the command
  line can supply or override them.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from pdeinv.pdes import pde_names
from pdeinv.sampling.problem import ROLES


@dataclass
class MeasurementSet:
    """Validated measurements.

    Attributes
    ----------
    values : torch.Tensor
        ``(n, 1, M)`` float64.
    indices : torch.Tensor
        ``(M, 2)`` int64 grid points.
    resolution : int
        Grid size ``S``.
    pde, observed : str
        The physics and the observed field role.
    noise_std : float
        Measurement noise standard deviation.
    """

    values: torch.Tensor
    indices: torch.Tensor
    resolution: int
    pde: str
    observed: str
    noise_std: float


def _load(path: Path) -> dict:
    if path.suffix not in (".npz", ".h5", ".hdf5"):
        raise ValueError(f"{path}: measurement files must be .npz or .h5, got {path.suffix!r}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        with h5py.File(path, "r") as f:
            content = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            content.update({k: f.attrs[k] for k in f.attrs})
            return content
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        kind = "an .npz archive" if path.suffix == ".npz" else "HDF5"
        raise ValueError(f"{path} cannot be read as {kind} (truncated, or another format: {error})") from None


def _scalar(content: dict, key: str, given, kind):
    if given is not None:
        return given
    if key not in content:
        return None
    value = np.asarray(content[key])
    if value.size != 1:
        raise ValueError(f"{key!r} must be a single value, got an array of shape {value.shape}")
    value = value.reshape(())[()]
    try:
        return kind(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{key!r} must be a {kind.__name__}, got {value!r}") from None


def _sensor_indices(content: dict, path: Path, resolution: int | None) -> tuple[torch.Tensor, int]:
    if "mask" in content:
        mask = np.asarray(content["mask"])
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or mask.dtype != np.bool_:
            raise ValueError(f"{path}: mask must be a square boolean array (S, S), got {mask.dtype} {mask.shape}")
        if resolution is not None and mask.shape[0] != resolution:
            raise ValueError(f"{path}: mask is {mask.shape[0]} x {mask.shape[1]} but resolution says {resolution}")
        return torch.from_numpy(np.argwhere(mask)).long(), int(mask.shape[0])
    if "indices" not in content:
        raise ValueError(
            f"{path}: give the sensor locations as 'indices' (M, 2) with 'resolution', or as 'mask' (S, S)"
        )
    if resolution is None:
        raise ValueError(f"{path}: 'indices' need the grid size; add 'resolution' to the file")
    indices = np.asarray(content["indices"])
    if indices.ndim != 2 or indices.shape[1] != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{path}: indices must be integers of shape (M, 2), got {indices.dtype} {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= resolution):
        raise ValueError(f"{path}: indices must lie in 0..{resolution - 1} (resolution {resolution}); fix the points")
    return torch.from_numpy(indices).long(), resolution


def read_measurements(
    path: str | Path, *, pde: str | None = None, observed: str | None = None, noise_std: float | None = None
) -> MeasurementSet:
    """Read and validate a measurement file (module docstring); keyword arguments override the file.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing or malformed entries, NaN values, or counts that do not match.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"measurement file {path} is a directory; give an .npz or .h5 file")
    if not path.is_file():
        raise FileNotFoundError(f"measurement file {path} does not exist")
    content = _load(path)
    if "values" not in content:
        raise ValueError(f"{path} has no 'values' array of observed values")
    try:
        resolution = _scalar(content, "resolution", None, int)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if resolution is not None and resolution < 2:
        raise ValueError(f"{path}: resolution must be a grid size >= 2, got {resolution}")
    indices, resolution = _sensor_indices(content, path, resolution)
    if indices.shape[0] == 0:
        raise ValueError(f"{path}: the sensors define no point; give at least one measured point")
    try:
        values = torch.as_tensor(np.asarray(content["values"], dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'values' must be numbers, got {np.asarray(content['values']).dtype}") from None
    values = values.reshape(1, -1) if values.ndim == 1 else values
    if values.ndim != 2 or values.shape[1] != indices.shape[0]:
        raise ValueError(
            f"{path}: values have shape {tuple(values.shape)} but the sensors define {indices.shape[0]} points; "
            "give one value per sensor (per row)"
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"{path}: values contain NaN or infinite entries; drop those sensors from the mask/indices")
    try:
        pde = _scalar(content, "pde", pde, str)
        observed = _scalar(content, "observed", observed, str)
        noise = _scalar(content, "noise_std", noise_std, float) or 0.0
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if pde not in pde_names():
        raise ValueError(f"{path}: the PDE is {pde!r}; set 'pde' in the file or pass --pde ({', '.join(pde_names())})")
    if observed not in ROLES:
        raise ValueError(f"{path}: the observed field is {observed!r}; set 'observed' or pass --observe (input/output)")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{path}: noise_std must be a finite number >= 0, got {noise}")
    return MeasurementSet(values[:, None], indices, resolution, pde, observed, noise)
