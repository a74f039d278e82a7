r"""Where a reconstruction spends its time: exclusive wall-clock seconds per category.

A :class:`CategoryTimer` is charged by *regions*: a call of a wrapped function (its forward
pass) and, when the call's output takes part in a later backward pass, the stretch of that
backward pass between the output's gradient and the input's gradient (marked by identity
autograd nodes, :class:`_Mark`). Regions nest; time is charged to the **outermost** open region,
so a PDE solve made inside the Tweedie covariance counts as Tweedie covariance, and time outside
every region is the remainder ``total - sum(categories)``.

The backward stretch assumes the autograd engine runs a region's nodes contiguously, which holds
on the CPU for the chain ``loss -> operator -> denoiser -> state`` of the guided samplers; work
the engine interleaves is charged to whichever region is open. On CUDA the timer synchronises the
device at every event so that queued kernels are charged to the region that launched them.

Usage::

    timer = CategoryTimer()
    with timed_denoiser(prior, timer):
        ...  # reconstruct
    timer.seconds["denoiser"]
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch

DENOISER = "denoiser"


class CategoryTimer:
    """Exclusive seconds per category (outermost open region wins).

    Parameters
    ----------
    synchronize : bool
        Call ``torch.cuda.synchronize()`` at every region boundary (set it when timing CUDA work).

    Attributes
    ----------
    seconds : dict of str to float
        Seconds charged to each category so far.
    calls : dict of str to int
        Number of forward regions entered per category.
    """

    def __init__(self, synchronize: bool = False):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.synchronize = synchronize
        self._stack: list[str] = []
        self._last = time.perf_counter()

    def _now(self) -> float:
        if self.synchronize:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _charge(self) -> None:
        now = self._now()
        if self._stack:
            self.seconds[self._stack[0]] += now - self._last
        self._last = now

    def enter(self, category: str) -> None:
        """Open a region of ``category``."""
        self._charge()
        self._stack.append(category)

    def exit(self) -> None:
        """Close the innermost open region."""
        self._charge()
        if self._stack:
            self._stack.pop()

    @contextlib.contextmanager
    def region(self, category: str) -> Iterator[None]:
        """``with timer.region("name"):`` charges the block to ``category``."""
        self.calls[category] += 1
        self.enter(category)
        try:
            yield
        finally:
            self.exit()

    def wrap(self, function: Callable, category: str) -> Callable:
        """``function`` timed as ``category``, forward and (through its first tensor argument) backward."""

        @functools.wraps(function)
        def timed(*args, **kwargs):
            position = next((i for i, a in enumerate(args) if isinstance(a, torch.Tensor)), None)
            tracked = position is not None and args[position].requires_grad and torch.is_grad_enabled()
            if tracked:
                args = list(args)
                args[position] = _Mark.apply(args[position], self, category, False)
            with self.region(category):
                out = function(*args, **kwargs)
            if tracked and isinstance(out, torch.Tensor) and out.requires_grad:
                out = _Mark.apply(out, self, category, True)
            return out

        return timed


class _Mark(torch.autograd.Function):
    """Identity whose backward opens (``enter=True``) or closes a region of a :class:`CategoryTimer`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, timer, category, enter):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.timer, ctx.category, ctx.enter = inputs[1], inputs[2], inputs[3]

    @staticmethod
    def backward(ctx, gradient):
        if ctx.enter:
            ctx.timer.enter(ctx.category)
        else:
            ctx.timer.exit()
        return gradient, None, None, None


def network_prior(prior):
    """The prior whose ``denoise`` is the trained denoiser: operator-consistent wrappers unwrapped."""
    from pdeinv.priors.consistent import OperatorConsistentPrior

    while isinstance(prior, OperatorConsistentPrior):
        prior = prior.prior
    return prior


@contextlib.contextmanager
def patched(owner, name: str, replacement) -> Iterator[None]:
    """Set attribute ``name`` of ``owner`` (an instance or a class) to ``replacement`` for the block."""
    had_own = name in vars(owner)
    previous = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def timed_denoiser(prior, timer: CategoryTimer) -> Iterator[None]:
    """Charge every call of the trained denoiser of ``prior`` (forward and backward) to ``"denoiser"``.

    The denoiser is the innermost prior (:func:`network_prior`): the operator-consistent
    projection of a linear PDE is a solve, not part of it.
    """
    inner = network_prior(prior)
    with patched(inner, "denoise", timer.wrap(inner.denoise, DENOISER)):
        yield
