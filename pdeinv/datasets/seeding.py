"""Per-sample random number generators.

Sample ``i`` of a data set with seed ``s`` is a pure function of ``(s, i)``: its generator is
seeded with a 64-bit integer derived from ``numpy.random.SeedSequence([s, i])``. Generated data
therefore never depends on the batch size, on the order in which batches run, or on how many
times a killed run was resumed.
"""

from __future__ import annotations

import numpy as np
import torch


def _check_non_negative_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def sample_seed(seed: int, index: int) -> int:
    """The 64-bit seed of sample ``index`` in a data set with seed ``seed``.

    Parameters
    ----------
    seed : int
        Data-set seed (non-negative).
    index : int
        Sample index (non-negative).

    Returns
    -------
    int
        ``SeedSequence([seed, index]).generate_state(1, uint64)[0]``, in ``[0, 2**64)``.
    """
    _check_non_negative_int(seed, "seed")
    _check_non_negative_int(index, "index")
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)
    return int(state[0])


def sample_generator(seed: int, index: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` for sample ``index`` of a data set with seed ``seed``.

    Parameters
    ----------
    seed, index : int
        See :func:`sample_seed`.
    device : str or torch.device
        Device of the generator. Data sets are generated with CPU generators, so that sample
        ``i`` is the same on every device.

    Returns
    -------
    torch.Generator
        Seeded with :func:`sample_seed` ``(seed, index)``.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(sample_seed(seed, index))
    return generator
