"""Per-field normalisation statistics, accumulated sample by sample (float64, biased variance).

For a field ``f[n, t, i, j]`` the statistics are the mean and the standard deviation
``sqrt(mean((f - mean)^2))`` (biased, The Well's convention) over samples and grid points, per
time index ``t`` (``time_mean``, ``time_std``) and pooled over all time indices (``mean``,
``std``). Moments are merged with Chan's pairwise update, one sample at a time and in sample
order, so the result depends only on the data, not on how it was batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
