"""Argument types shared by the ``pdeinv`` sub-commands, and the check of a ``--device`` value.

The types run inside ``argparse``: a bad value ends as a one-line usage error (exit code 2)
naming the option and the accepted values. They import nothing heavy, so building the parser
stays fast; :func:`check_device`, which needs torch, runs when a command starts its work.
"""

from __future__ import annotations

import argparse
import math
import re

from pdeinv.errors import UsageError

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def _number(kind: type, lower: float, strict: bool, name: str):
    """An ``argparse`` type: a finite ``kind`` above ``lower`` (``strict``) or at least ``lower``."""

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {name}, got {value!r}") from None
        if not (math.isfinite(number) and (number > lower if strict else number >= lower)):
            finite = "finite " if kind is float else ""
            raise argparse.ArgumentTypeError(f"must be a {finite}{name}, got {value}")
        return number

    return parse


positive_int = _number(int, 0, True, "positive integer")  # sample counts, steps, batch sizes
non_negative_int = _number(int, 0, False, "non-negative integer")  # seeds
positive_float = _number(float, 0.0, True, "positive number")  # noise levels, weights, time steps
non_negative_float = _number(float, 0.0, False, "non-negative number")


def fraction(value: str) -> float:
    """A number in ``[0, 1]``."""
    number = non_negative_float(value)
    if number > 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {value}")
    return number


def key_value(value: str) -> tuple[str, str]:
    """``KEY=VALUE`` as ``(key, value)`` (a method's configuration field and its value, checked later)."""
    key, sep, text = value.partition("=")
    if not sep or not key.strip() or not text.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. lr=0.5, got {value!r}")
    return key.strip(), text.strip()


def device(value: str) -> str:
    """A torch device name: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (availability: :func:`check_device`)."""
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(
            f"unknown device {value!r}; use cpu, cuda, cuda:N or mps (the precision is not a device: "
            "pdeinv computes in float32/float64)"
        )
    return value


def check_device(name: str) -> None:
    """Raise :class:`~pdeinv.errors.UsageError` unless the device ``name`` exists on this machine.

    Examples
    --------
    >>> check_device("cpu")
    """
    if name == "cpu":
        return
    import torch

    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device mps: Apple's MPS backend is not available here; use --device cpu")
        return
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    index = int(name.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered 0..{torch.cuda.device_count() - 1}; choose one of them"
        )
