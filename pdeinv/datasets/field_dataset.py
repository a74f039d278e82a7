"""``FieldDataset``: a lazy torch view of a pdeinv HDF5 file as ``(C, S, S)`` float32 tensors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pdeinv.datasets.resample import downsample, restriction_matrix
from pdeinv.datasets.schema import as_str_list, parse_channel


@dataclass(frozen=True)
class Channel:
    """One channel: field ``name`` of ``/t0_fields`` at time index ``time_index`` (non-negative)."""

    name: str
    time_index: int


def _resolve_channel(f: h5py.File, channel: str) -> Channel:
    name, index = parse_channel(channel)
    fields = as_str_list(f["t0_fields"].attrs["field_names"])
    if name not in fields:
        raise ValueError(f"{f.filename} has no field {name!r} (channel {channel!r}); its fields are {fields}")
    n_steps = f["t0_fields"][name].shape[1]
    if index is None:
        if n_steps != 1:
            raise ValueError(
                f"field {name!r} has {n_steps} time steps; name one, e.g. '{name}[0]' or '{name}[-1]'"
            )
        index = 0
    if not -n_steps <= index < n_steps:
        raise ValueError(f"channel {channel!r}: time index {index} is out of range for {n_steps} time steps")
    return Channel(name, index % n_steps)


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
            if channels is None:
                channels = as_str_list(f.attrs["input_fields"]) + as_str_list(f.attrs["output_fields"])
            self.channel_names = tuple(channels)
            if not self.channel_names:
                raise ValueError("channels must name at least one channel, e.g. ('source', 'solution')")
            self._channels = [_resolve_channel(f, c) for c in self.channel_names]
            self.grid = str(f.attrs["grid"])
            self._length = int(f.attrs["n_trajectories"])
            self.source_resolution = int(f.attrs["resolution"])
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
        ds = f["t0_fields"][channel.name]
        return float(ds.attrs["time_mean"][channel.time_index]), float(ds.attrs["time_std"][channel.time_index])

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """``{"mean": (C,), "std": (C,)}`` per-channel statistics."""
        return {"mean": self.mean, "std": self.std}

    def __len__(self) -> int:
        return self._length

    def _datasets(self) -> list[h5py.Dataset]:
        """The h5py dataset of each channel, opened once per process."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._handles = [self._file["t0_fields"][c.name] for c in self._channels]
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
        handles = self._datasets()
        block = np.stack([ds[index, c.time_index] for ds, c in zip(handles, self._channels)])
        return self._finish(block)

    def load_all(self, block_size: int = 256) -> torch.Tensor:
        """All samples as one ``(N, C, s, s)`` float32 tensor, read ``block_size`` samples at a time."""
        out = torch.empty((self._length, len(self._channels), self.resolution, self.resolution))
        handles = self._datasets()
        for start in range(0, self._length, block_size):
            stop = min(start + block_size, self._length)
            block = np.stack([ds[start:stop, c.time_index] for ds, c in zip(handles, self._channels)], axis=1)
            out[start:stop] = self._finish(block)
        return out

    def close(self) -> None:
        """Close this process' file handle (it reopens on the next access)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._handles = None
