"""``FieldDataset``: a lazy torch view of a pdeinv HDF5 file (or any Well-formatted file) as ``(C, S, S)`` float32 tensors.

Files The Well writes read the same way: ``t0_fields`` scalars and ``t1_fields`` vector components
(channels ``"<field>_<dim>"``, The Well's names), time-constant fields (stored without a time
axis) at every time index, the grid from the boundary conditions, and the statistics computed
from the data when the file does not store them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pdeinv.datasets.resample import downsample, restriction_matrix
from pdeinv.datasets.schema import StoredField, as_str_list, grid_of, parse_channel, resolution_of, stored_fields
from pdeinv.datasets.statistics import Moments


@dataclass(frozen=True)
class Channel:
    """One channel: a stored field at time index ``time_index`` (non-negative; any for a time-constant field)."""

    field: StoredField
    time_index: int

    def read(self, f: h5py.File, rows) -> np.ndarray:
        """Samples ``rows`` (int or slice) of this channel, ``(..., S, S)``."""
        return self.field.read(f, rows, self.time_index)


def default_channels(f: h5py.File) -> list[str]:
    """The file's inputs then outputs (pdeinv), else every field, a time-varying one at its first step."""
    if "input_fields" in f.attrs:
        return as_str_list(f.attrs["input_fields"]) + as_str_list(f.attrs.get("output_fields", []))
    n_steps = len(f["dimensions"]["time"]) if "dimensions" in f else 1
    return [
        name if not field.time_varying or n_steps == 1 else f"{name}[0]" for name, field in stored_fields(f).items()
    ]


def _resolve_channel(f: h5py.File, channel: str) -> Channel:
    name, index = parse_channel(channel)
    fields = stored_fields(f)
    if name not in fields:
        raise ValueError(f"{f.filename} has no field {name!r} (channel {channel!r}); its fields are {list(fields)}")
    field = fields[name]
    if not field.time_varying:
        return Channel(field, 0)
    n_steps = f[field.path].shape[1]
    if index is None:
        if n_steps != 1:
            raise ValueError(
                f"field {name!r} has {n_steps} time steps; name one, e.g. '{name}[0]' or '{name}[-1]'"
            )
        index = 0
    if not -n_steps <= index < n_steps:
        raise ValueError(f"channel {channel!r}: time index {index} is out of range for {n_steps} time steps")
    return Channel(field, index % n_steps)


class FieldDataset(Dataset):
    """Samples of a pdeinv HDF5 file as ``(C, S, S)`` float32 tensors, read lazily.

    Parameters
    ----------
    path : path-like
        A file written by ``pdeinv data generate``.
    channels : sequence of str, optional
        Channel names ``"field"`` or ``"field[t]"`` (time index ``t``, negative counts from the
        end). Default: the file's inputs then outputs, e.g. ``("source", "solution")`` or
        ``("vorticity[0]", "vorticity[-1]")``.
    resolution : int, optional
        Downsample to ``s x s`` on the fly, keeping coordinates (see :mod:`pdeinv.datasets.resample`).
    normalize : bool
        Return ``(x - mean) / std`` per channel, with the file's stored statistics (the
        per-time-index ``time_mean``/``time_std`` of each field, computed on the full grid).

    Attributes
    ----------
    channel_names : tuple of str
        The channels, in order.
    mean, std : torch.Tensor
        Per-channel statistics, float32 ``(C,)``; physical = ``mean + std * normalised``.
    resolution : int
        Side ``s`` of the returned fields.
    grid : str
        ``"vertex"`` or ``"periodic"``.

    Notes
    -----
    The HDF5 file is opened on first access in each process (DataLoader workers included), and
    each item reads one chunk per channel, so memory stays bounded whatever the file size.
    :meth:`load_all` reads everything into one tensor, for small files.
    """

    def __init__(self, path: str | os.PathLike, channels=None, resolution: int | None = None, normalize: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist; create it with `pdeinv data generate`")
        with h5py.File(self.path, "r") as f:
            self.channel_names = tuple(default_channels(f) if channels is None else channels)
            if not self.channel_names:
                raise ValueError("channels must name at least one channel, e.g. ('source', 'solution')")
            self._channels = [_resolve_channel(f, c) for c in self.channel_names]
            self.grid = grid_of(f)
            self._length = int(f.attrs["n_trajectories"])
            self.source_resolution = resolution_of(f)
            stats = [self._channel_stats(f, c) for c in self._channels]
        self.mean = torch.tensor([m for m, _ in stats], dtype=torch.float32)
        self.std = torch.tensor([s for _, s in stats], dtype=torch.float32)
        self._mean_np = self.mean.numpy()[:, None, None]
        self._std_np = self.std.numpy()[:, None, None]
        self.normalize = normalize
        self.resolution = self.source_resolution if resolution is None else resolution
        self._matrix = None
        if self.resolution != self.source_resolution:
            matrix = restriction_matrix(self.grid, self.source_resolution, self.resolution)
            self._matrix = torch.from_numpy(matrix).float()
        self._file = None
        self._pid = None
        self._handles = None

    @staticmethod
    def _channel_stats(f: h5py.File, channel: Channel) -> tuple[float, float]:
        """The stored per-time statistics (pdeinv files), else computed from the channel's samples."""
        ds = f[channel.field.path]
        if channel.field.component is None and "time_mean" in ds.attrs and channel.field.time_varying:
            return float(ds.attrs["time_mean"][channel.time_index]), float(ds.attrs["time_std"][channel.time_index])
        moments = Moments.empty(1)
        for i in range(ds.shape[0]):
            moments.add_sample(channel.read(f, i)[None])
        return moments.pooled()

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """``{"mean": (C,), "std": (C,)}`` per-channel statistics."""
        return {"mean": self.mean, "std": self.std}

    def __len__(self) -> int:
        return self._length

    def _datasets(self) -> h5py.File:
        """The file, opened once per process."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._handles = self._file
        return self._handles

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        state["_handles"] = None
        return state

    def _finish(self, block: np.ndarray) -> torch.Tensor:
        """Normalise (in place, numpy) and downsample a float32 ``(..., C, S, S)`` block."""
        if self.normalize:
            block -= self._mean_np
            block /= self._std_np
        x = torch.from_numpy(block)
        return x if self._matrix is None else downsample(x, self._matrix).contiguous()

    def __getitem__(self, index: int) -> torch.Tensor:
        """Sample ``index`` as a ``(C, s, s)`` float32 tensor."""
        if not -self._length <= index < self._length:
            raise IndexError(f"sample index {index} out of range for {self._length} samples")
        index %= self._length
        f = self._datasets()
        block = np.stack([c.read(f, index) for c in self._channels]).astype(np.float32)
        return self._finish(block)

    def load_all(self, block_size: int = 256) -> torch.Tensor:
        """All samples as one ``(N, C, s, s)`` float32 tensor, read ``block_size`` samples at a time."""
        out = torch.empty((self._length, len(self._channels), self.resolution, self.resolution))
        f = self._datasets()
        for start in range(0, self._length, block_size):
            stop = min(start + block_size, self._length)
            block = np.stack([c.read(f, slice(start, stop)) for c in self._channels], axis=1).astype(np.float32)
            out[start:stop] = self._finish(block)
        return out

    def close(self) -> None:
        """Close this process' file handle (it reopens on the next access)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._handles = None
