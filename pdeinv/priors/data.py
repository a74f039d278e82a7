"""Training data for priors: a normalised field tensor held in memory, with its provenance.

Small data sets (a few thousand 64 x 64 two-channel fields are a few hundred MB) are loaded
once into a single tensor, so a training step costs one indexing operation and no Python
data-loader overhead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from pdeinv.errors import NonFiniteError
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
        Source path and its SHA-256, HDF5 root attributes (``pde``, ``seed``, ...), resolution.

    Raises
    ------
    ValueError
        If the fields are not ``(N, C, S, S)`` float tensors with one mean and std per channel.
    NonFiniteError
        If a field holds NaN or infinite values (the message names the sample and channel).
    """

    fields: torch.Tensor
    channels: tuple[str, ...]
    mean: list[float]
    std: list[float]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        self._fields_sha256 = None
        check_field(self.fields, channels=len(self.channels), name="fields")
        if len(self.mean) != len(self.channels) or len(self.std) != len(self.channels):
            raise ValueError(f"mean and std need one value per channel {self.channels}")
        where = self.provenance.get("path", "the training fields")
        bad = [c for c, m, s in zip(self.channels, self.mean, self.std) if not (np.isfinite([m, s]).all() and s > 0)]
        if bad:
            raise NonFiniteError(
                f"{where}: the normalisation of channel(s) {bad} is not a finite mean and positive std "
                f"(mean {self.mean}, std {self.std}); recompute the file's statistics"
            )
        check_finite_samples(self.fields, self.channels, f"{where} (normalised)")

    @property
    def sha256(self) -> str:
        """SHA-256 of the source file, or of the fields' bytes for data built in memory."""
        if "sha256" in self.provenance:
            return self.provenance["sha256"]
        if self._fields_sha256 is None:
            self._fields_sha256 = hashlib.sha256(self.fields.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        return self._fields_sha256

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


def check_finite_samples(fields: torch.Tensor, channels, where: str) -> None:
    """Raise :class:`~pdeinv.errors.NonFiniteError` naming the first sample and channel of ``fields`` with NaN/inf.

    Parameters
    ----------
    fields : torch.Tensor
        ``(N, C, S, S)``.
    channels : sequence of str
        The ``C`` channel names.
    where : str
        The source, named in the message.
    """
    finite = torch.isfinite(fields).flatten(2).all(-1)
    if bool(finite.all()):
        return
    samples = (~finite).any(1).nonzero().flatten().tolist()
    first = samples[0]
    channel = channels[int((~finite[first]).nonzero()[0])]
    raise NonFiniteError(
        f"{where}: field {channel!r} of sample {first} holds NaN or infinite values ({len(samples)} sample(s) "
        f"affected, indices {samples[:10]}{' ...' if len(samples) > 10 else ''}); regenerate the data or drop "
        "those samples before training"
    )


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

    Raises
    ------
    NonFiniteError
        If a stored field holds NaN or infinite values (naming the file, field and sample index)
        or the file's statistics are not finite.
    """
    from pdeinv.datasets import FieldDataset
    from pdeinv.files import file_sha256

    dataset = FieldDataset(path, channels=channels, resolution=resolution, normalize=True)
    if len(dataset) == 0:
        raise ValueError(f"{path} holds no samples; generate data with `pdeinv data` first")
    fields = dataset.load_all()
    if not bool(torch.isfinite(fields).all()):
        # Name the samples in the stored (physical) values, which non-finite statistics cannot hide.
        raw = FieldDataset(path, channels=channels, resolution=resolution, normalize=False)
        check_finite_samples(raw.load_all(), raw.channel_names, str(path))
    provenance = {
        "path": str(path),
        "sha256": file_sha256(path),
        "n_samples": len(dataset),
        "grid": dataset.grid,
        "source_resolution": dataset.source_resolution,
        "attrs": file_attributes(path),
    }
    return TrainingData(
        fields=fields,
        channels=tuple(dataset.channel_names),
        mean=[float(v) for v in torch.as_tensor(dataset.mean).reshape(-1)],
        std=[float(v) for v in torch.as_tensor(dataset.std).reshape(-1)],
        provenance=provenance,
    )
