"""Progress of a method over its batches of measurements, for a progress bar (``pdeinv bench``).

Every method walks its ``n`` measurements in batches of ``MethodOptions.batch_size`` through
:func:`measurement_batches`; each finished batch is reported to the listener installed with
:func:`report_batches` (none by default, so library calls print nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch

_LISTENER: ContextVar[Callable[[int], None] | None] = ContextVar("pdeinv_batch_listener", default=None)


def measurement_batches(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Row indices ``0..n-1`` in batches of ``batch_size``; a batch is reported when the next one is asked for."""
    for rows in torch.arange(n, device="cpu").split(batch_size):
        yield rows
        listener = _LISTENER.get()
        if listener is not None:
            listener(len(rows))


@contextlib.contextmanager
def report_batches(listener: Callable[[int], None]) -> Iterator[None]:
    """Within the block, call ``listener(rows)`` after each finished batch of ``rows`` measurements.

    Examples
    --------
    >>> done = []
    >>> with report_batches(done.append):
    ...     _ = [rows.sum() for rows in measurement_batches(5, 2)]
    >>> done
    [2, 2, 1]
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
