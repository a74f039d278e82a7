"""Training data for priors: a normalised field tensor held in memory, with its provenance.

Small data sets (a few thousand 64 x 64 two-channel fields are a few hundred MB) are loaded
once into a single tensor, so a training step costs one indexing operation and no Python
data-loader overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pdeinv.operators.base import check_field


@dataclass
class TrainingData:
    """Normalised fields in memory plus what a checkpoint card records about them.

    Parameters
    ----------
    fields : torch.Tensor
        Normalised fields ``(N, C, S, S)``, float32.
    channels : tuple of str
        Channel names.
    mean, std : list of float
        Per-channel normalisation (physical = mean + std * normalised).
    provenance : dict
        Source path, HDF5 root attributes (``pde``, ``seed``, ...), resolution.
    """

    fields: torch.Tensor
    channels: tuple[str, ...]
    mean: list[float]
    std: list[float]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        check_field(self.fields, channels=len(self.channels), name="fields")
        if len(self.mean) != len(self.channels) or len(self.std) != len(self.channels):
            raise ValueError(f"mean and std need one value per channel {self.channels}")

    @property
    def resolution(self) -> int:
        """Grid size ``S``."""
        return int(self.fields.shape[-1])

    @property
    def grid(self) -> str | None:
        """``"vertex"`` or ``"periodic"`` (the source file's grid), when known."""
        return self.provenance.get("grid")

    @property
    def pde(self) -> str | None:
        """The ``pde`` root attribute of the source file, when known."""
        return self.provenance.get("attrs", {}).get("pde")


def _json_value(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def file_attributes(path: str) -> dict:
    """Root attributes of an HDF5 file as JSON-serialisable values."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: _json_value(v) for k, v in f.attrs.items()}


def load_training_data(path: str, channels: list[str] | None = None, resolution: int | None = None) -> TrainingData:
    """Load a pdeinv HDF5 field file into memory through :class:`pdeinv.datasets.FieldDataset`.

    Parameters
    ----------
    path : str
        HDF5 file written by ``pdeinv data``.
    channels : list of str, optional
        Field names to use as channels (default: the dataset's own choice, e.g. source and solution).
    resolution : int, optional
        Training resolution; the dataset resamples (default: the file's resolution).
    """
    from pdeinv.datasets import FieldDataset

    dataset = FieldDataset(path, channels=channels, resolution=resolution, normalize=True)
    if len(dataset) == 0:
        raise ValueError(f"{path} holds no samples; generate data with `pdeinv data` first")
    provenance = {
        "path": str(path),
        "n_samples": len(dataset),
        "grid": dataset.grid,
        "source_resolution": dataset.source_resolution,
        "attrs": file_attributes(path),
    }
    return TrainingData(
        fields=dataset.load_all(),
        channels=tuple(dataset.channel_names),
        mean=[float(v) for v in torch.as_tensor(dataset.mean).reshape(-1)],
        std=[float(v) for v in torch.as_tensor(dataset.std).reshape(-1)],
        provenance=provenance,
    )
