"""Per-field normalisation statistics, accumulated sample by sample (float64, biased variance).

For a field ``f[n, t, i, j]`` the statistics are the mean and the standard deviation
``sqrt(mean((f - mean)^2))`` (biased, The Well's convention) over samples and grid points, per
time index ``t`` (``time_mean``, ``time_std``) and pooled over all time indices (``mean``,
``std``). Moments are merged with Chan's pairwise update, one sample at a time and in sample
order, so the result depends only on the data, not on how it was batched.

:func:`write_well_statistics` writes the same statistics in The Well's ``stats.yaml`` layout
(``mean``, ``std``, ``rms`` and, over the time differences :math:`f_{t+1} - f_t`,
``mean_delta``, ``std_delta``, ``rms_delta``; per field, a list per component for a vector
field), the file ``the_well.data.WellDataset(use_normalization=True)`` reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml


@dataclass
class Moments:
    """Count, mean and sum of squared deviations ``m2`` of a stream of values, per time index."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, n_steps: int) -> "Moments":
        """No values yet, for ``n_steps`` time indices."""
        return cls(np.zeros(n_steps), np.zeros(n_steps), np.zeros(n_steps))

    def merge(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge the moments of another set of values (Chan et al.'s parallel update)."""
        total = self.count + count
        delta = mean - self.mean
        weight = np.divide(count, total, out=np.zeros_like(total), where=total > 0)
        self.mean = self.mean + delta * weight
        self.m2 = self.m2 + m2 + delta**2 * self.count * weight
        self.count = total

    def add_sample(self, sample: np.ndarray) -> None:
        """Add one sample of shape ``(n_steps, S, S)``."""
        values = np.asarray(sample, dtype=np.float64).reshape(sample.shape[0], -1)
        mean = values.mean(axis=1)
        self.merge(np.full(len(mean), float(values.shape[1])), mean, ((values - mean[:, None]) ** 2).sum(axis=1))

    def per_time(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` per time index, float64 ``(n_steps,)``."""
        return self.mean.copy(), np.sqrt(self.m2 / self.count)

    def pooled(self) -> tuple[float, float]:
        """``(mean, std)`` over all time indices."""
        total = Moments.empty(1)
        for t in range(len(self.count)):
            total.merge(self.count[t : t + 1], self.mean[t : t + 1], self.m2[t : t + 1])
        return float(total.mean[0]), float(np.sqrt(total.m2[0] / total.count[0]))


def write_statistics(dataset, moments: Moments) -> None:
    """Store ``mean``, ``std`` (pooled) and ``time_mean``, ``time_std`` as attributes of an h5py dataset."""
    mean, std = moments.pooled()
    time_mean, time_std = moments.per_time()
    dataset.attrs["mean"] = mean
    dataset.attrs["std"] = std
    dataset.attrs["time_mean"] = time_mean
    dataset.attrs["time_std"] = time_std


def _pooled(moments: list[Moments]) -> dict[str, list[float]]:
    """``mean``, ``std`` and ``rms`` per component of pooled moments."""
    means, stds = zip(*(m.pooled() for m in moments))
    return {
        "mean": list(means),
        "std": list(stds),
        "rms": [float(np.sqrt(m * m + s * s)) for m, s in zip(means, stds)],
    }


def _field_statistics(ds: h5py.Dataset) -> tuple[dict, dict | None]:
    """Statistics of one Well field and of its time differences (``None`` for a time-constant field)."""
    varying = bool(ds.attrs.get("time_varying", True))
    vector = ds.parent.name.endswith("t1_fields")
    components = ds.shape[-1] if vector else 1
    values = [Moments.empty(1) for _ in range(components)]
    deltas = [Moments.empty(1) for _ in range(components)]
    for i in range(ds.shape[0]):
        sample = np.asarray(ds[i], dtype=np.float64)
        for k in range(components):
            part = sample[..., k] if vector else sample
            values[k].add_sample(part.reshape(1, -1))
            if varying and part.shape[0] > 1:
                deltas[k].add_sample(np.diff(part, axis=0).reshape(1, -1))
    stats = _pooled(values)
    delta = None
    if varying:
        delta = _pooled(deltas) if deltas[0].count[0] > 0 else {"mean": [0.0] * components, "std": [0.0] * components, "rms": [0.0] * components}
    if not vector:
        stats = {key: value[0] for key, value in stats.items()}
        delta = None if delta is None else {key: value[0] for key, value in delta.items()}
    return stats, delta


def well_statistics_path(path: str | os.PathLike, others: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Where ``pdeinv data generate`` writes the Well statistics of the HDF5 file ``path``.

    ``stats.yaml`` beside it when it is the only HDF5 file of its folder (The Well's layout: one
    data set per folder, read by ``WellDataset(path=<folder>, use_normalization=True)``); otherwise
    ``<stem>.stats.yaml`` beside it, since The Well reads every HDF5 file of a folder as one data set
    and a ``stats.yaml`` there would describe one file among several (pass that file to
    ``WellDataset(normalization_path=...)``, or move the data file to its own folder).

    Parameters
    ----------
    path : path-like
        The data file (need not exist yet).
    others : tuple of path-like
        Further HDF5 files the same command writes into the folder.
    """
    path = Path(path)
    siblings = {p.resolve() for pattern in ("*.h5", "*.hdf5") for p in path.parent.glob(pattern)}
    siblings |= {Path(other).resolve() for other in others}
    siblings.discard(path.resolve())
    return path.parent / ("stats.yaml" if not siblings else f"{path.stem}.stats.yaml")


def write_well_statistics(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write The Well's normalisation file ``stats.yaml`` for the Well-formatted HDF5 file ``path``.

    Parameters
    ----------
    path : path-like
        A pdeinv data file (or any Well-formatted file).
    out : path-like, optional
        Where to write; default ``stats.yaml`` beside ``path``, where
        ``WellDataset(path=<that folder>, use_normalization=True)`` looks for it.

    Returns
    -------
    pathlib.Path
        The written file. Steady (one-step) fields get zero delta statistics (there are no time
        differences; The Well clips the delta std to its ``min_denom``).
    """
    from pdeinv.files import atomic_write

    path = Path(path)
    out = path.parent / "stats.yaml" if out is None else Path(out)
    stats = {key: {} for key in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")}
    with h5py.File(path, "r") as f:
        for group in ("t0_fields", "t1_fields"):
            for name, ds in f.get(group, {}).items():
                values, delta = _field_statistics(ds)
                for key in ("mean", "std", "rms"):
                    stats[key][name] = values[key]
                    if delta is not None:
                        stats[f"{key}_delta"][name] = delta[key]
    with atomic_write(out) as temporary:
        temporary.write_text(yaml.safe_dump(stats, sort_keys=True))
    return out
