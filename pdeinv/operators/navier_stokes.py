r"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit square.

The forward map takes an initial vorticity :math:`w_0` to the vorticity at a later time,

.. math::

    \partial_t w + u\cdot\nabla w = \nu \Delta w + f, \qquad
    u = (\partial_y \psi, -\partial_x \psi), \qquad -\Delta\psi = w, \qquad w(\cdot, 0) = w_0,

on :math:`[0, 1)^2` with periodic boundaries, sampled on the cell grid :math:`x_i = i/S`
(``field[..., i, j]`` is :math:`w(x_i, y_j)`). All quantities are non-dimensional: the domain
has unit length, :math:`\nu` is the kinematic viscosity, :math:`t` the time. The scheme is
that of the classic FNO data generator (pseudo-spectral, see :mod:`pdeinv.operators.spectral`):
with :math:`L = 4\pi^2 |k|^2`, :math:`D` the 2/3 de-aliasing mask and
:math:`N = u\,\partial_x w + v\,\partial_y w` evaluated on the grid,

.. math::

    \hat w^{n+1} = \frac{(1 - \tfrac12 \Delta t\,\nu L)\,\hat w^n
                   - \Delta t\, D\,\widehat{N(w^n)} + \Delta t\,\hat f}
                  {1 + \tfrac12 \Delta t\,\nu L},

i.e. Crank-Nicolson for viscosity, forward Euler for advection and forcing (first order in
:math:`\Delta t`). Two deliberate differences from the reference script, both invisible on
zero-mean data: the mean mode uses :math:`L = 0` (so the mean vorticity is conserved instead
of slowly damped), and first derivatives vanish at the Nyquist wavenumber (exactly true on
the grid, and it makes ``x`` and ``y`` play identical roles, so the grid symmetries below are
exact).

Symmetries
----------
A grid map :math:`g` that sends a solution to a solution is a symmetry of :math:`A`. For a
proper motion (translation, rotation) :math:`w \mapsto w \circ R^{-1}`; vorticity is a
pseudo-scalar, so an improper motion (reflection) also flips its sign,
:math:`w \mapsto -w \circ R^{-1}`. Such a map sends the solution with forcing :math:`f` to the
solution with forcing :math:`g f` (the same map applied to :math:`f`), so it is a symmetry of
the forced problem exactly when :math:`g f = f`. Unforced, every one of the :math:`8 S^2` maps
(the 8 linear parts of the square's group D4 times the :math:`S^2` periodic shifts) is a
symmetry. The FNO forcing depends on :math:`s = x + y` only,
:math:`f = 0.1\,F(s)` with :math:`F(s) = \sin 2\pi s + \cos 2\pi s = \sqrt2 \sin(2\pi s + \pi/4)`,
so only linear parts that map :math:`s \mapsto \pm s + \text{const}` can survive: the identity,
the 180-degree rotation, the transpose :math:`(x, y) \mapsto (y, x)` and the anti-transpose
:math:`(x, y) \mapsto (-y, -x)`. On the grid (indices modulo ``S``):

1. translations :math:`(i, j) \mapsto (i + m, j - m)`: :math:`s` shifts by :math:`0`, ``S``
   elements (the half-period shift :math:`(S/2, S/2)` along (1, 1) is the case ``m = S/2``);
2. point reflections :math:`w'[i, j] = w[a - i, b - j]` with :math:`a + b \equiv S/4`:
   :math:`F(\sigma - s) = F(s)` for all :math:`s` iff :math:`\sigma \equiv 1/4`; the sign is kept
   (a rotation); ``S`` elements;
3. transposes :math:`w'[i, j] = -w[j - d, i - c]` with :math:`c + d \equiv S/2`: the sign flips
   (a reflection) and :math:`-F(s + 1/2) = F(s)`; ``S`` elements;
4. anti-transposes :math:`w'[i, j] = -w[a - j, b - i]` with :math:`a + b \equiv 3S/4`:
   :math:`-F(\sigma - s) = F(s)` iff :math:`\sigma \equiv -1/4`; ``S`` elements.

These ``4 S`` maps form a group (needs ``S`` divisible by 4). A plain quarter turn or a plain
axis flip maps :math:`x + y` to :math:`x - y` up to sign, so it is *not* a symmetry of the
forced problem. For a user forcing tensor the group is found numerically: the elements of the
unforced group that leave the forcing unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import deepinv as dinv
import torch

from pdeinv.errors import NonFiniteError
from pdeinv.operators._imaging import check_positive
from pdeinv.operators.base import check_field
from pdeinv.operators.spectral import (
    dealias_mask,
    derivative_symbols,
    neg_laplacian_symbol,
    periodic_grid,
)
from pdeinv.operators.symmetry import IDENTITY, SymmetryGroup, Transform, dihedral_group

_STEP_TOLERANCE = 1e-6
# An output above this multiple of the enstrophy bound ||w0|| + t ||f|| is an unstable time step.
_GROWTH_SLACK = 2.0
# Batch chunk: about 2**16 grid points per chunk keeps a step's work arrays in the CPU cache
# (measured: 20-40 % faster per field at 128 x 128 than one 32-field block).
_CHUNK_POINTS = 2**16


@dataclass(frozen=True)
class StepCoefficients:
    r"""Spectral coefficients of one time step, in the working dtype and device.

    Attributes
    ----------
    multipliers : torch.Tensor
        complex ``(4, S, S//2+1)``: symbols mapping :math:`\hat w` to
        :math:`(\hat u, \hat v, \widehat{\partial_x w}, \widehat{\partial_y w})`.
    decay : torch.Tensor
        real ``(S, S//2+1)``: :math:`(1 - \tfrac12\Delta t\nu L) / (1 + \tfrac12\Delta t\nu L)`.
    gain : torch.Tensor
        real ``(S, S//2+1)``: :math:`\Delta t\, D / (1 + \tfrac12\Delta t\nu L)`.
    source : torch.Tensor or None
        complex ``(S, S//2+1)``: :math:`\Delta t \hat f / (1 + \tfrac12\Delta t\nu L)`; ``None``
        when unforced.
    """

    multipliers: torch.Tensor
    decay: torch.Tensor
    gain: torch.Tensor
    source: torch.Tensor | None


def step_count(time: float, dt: float, what: str = "time") -> int:
    """Number of steps ``n = time / dt``, which must be a positive integer (to 1e-6 relative).

    Raises
    ------
    ValueError
        If ``time / dt`` is not (close to) a positive integer, naming a ``dt`` that divides ``time``.
    """
    ratio = time / dt
    n = round(ratio)
    if n < 1 or abs(ratio - n) > _STEP_TOLERANCE * max(ratio, 1.0):
        nearest = time / max(math.ceil(ratio), 1)
        raise ValueError(
            f"{what}={time!r} is not a positive multiple of dt={dt!r} ({what}/dt = {ratio:.6g}); "
            f"choose dt that divides it, e.g. dt={nearest!r}"
        )
    return n


def _forcing_field(forcing, resolution: int) -> torch.Tensor | None:
    """The forcing as a float64 ``(S, S)`` tensor (``None`` when unforced), validated."""
    if forcing is None:
        return None
    if isinstance(forcing, str):
        if forcing != "fno":
            raise ValueError(f'forcing must be "fno", None or a (S, S) tensor, got the string {forcing!r}')
        x, y = periodic_grid(resolution)
        phase = 2 * math.pi * (x + y)
        return 0.1 * (torch.sin(phase) + torch.cos(phase))
    if not isinstance(forcing, torch.Tensor):
        raise ValueError(f'forcing must be "fno", None or a torch.Tensor of shape (S, S), got {type(forcing).__name__}')
    if forcing.shape != (resolution, resolution) or not forcing.is_floating_point():
        raise ValueError(
            f"a forcing tensor must be a real float tensor of shape ({resolution}, {resolution}), "
            f"got shape {tuple(forcing.shape)} and dtype {forcing.dtype}"
        )
    if not torch.isfinite(forcing).all():
        raise ValueError("the forcing tensor contains NaN or infinite values")
    return forcing.detach().to(device="cpu", dtype=torch.float64).clone()


class NavierStokes2D(dinv.physics.Physics):
    r"""Forward map :math:`w_0 \mapsto w(T)` of 2-D periodic Navier-Stokes (see the module docstring).

    Parameters
    ----------
    resolution : int
        Grid size ``S`` (at least 4); fields are ``(B, 1, S, S)`` on ``x_i = i/S``.
    viscosity : float
        Kinematic viscosity :math:`\nu > 0`.
    time : float
        Final time :math:`T > 0`, a multiple of ``dt``. Replaced by ``times[-1]`` when ``times``
        is given.
    dt : float
        Time step :math:`\Delta t > 0`. The scheme is first order: halving ``dt`` halves the error.
    forcing : {"fno", None} or torch.Tensor
        ``"fno"``: :math:`f = 0.1(\sin 2\pi(x+y) + \cos 2\pi(x+y))`; ``None``: unforced; or a
        real ``(S, S)`` tensor of grid values (time-independent).
    times : sequence of float, optional
        Strictly increasing positive output times, each a multiple of ``dt``. ``A`` then returns
        the snapshots ``(B, len(times), S, S)``.
    noise_model : deepinv.physics.NoiseModel, optional
        Measurement noise of ``forward``; ``None`` means noise-free.
    checkpoint_every : int, optional
        Steps per gradient-checkpointing segment; default ``ceil(sqrt(n_steps))``, which keeps
        backward memory :math:`O(\sqrt{n})` states.

    Notes
    -----
    ``A`` runs in the input's dtype (float32 or float64; spectra in the matching complex dtype)
    and on its device. Without a gradient to track it runs an in-place loop of one batched
    ``irfft2`` (four fields) and one ``rfft2`` per step; with one it runs the same fast loop
    over segments of ``checkpoint_every`` steps, stores each segment's initial spectrum, and
    recomputes one segment at a time with autograd during backward (gradient checkpointing),
    so memory does not grow with the number of steps beyond one spectrum per segment.
    Gradients are first order (no double backward). On the CPU the batch is solved in chunks
    of about :math:`2^{16}` grid points, which keeps each step's work arrays in cache.
    """

    def __init__(
        self,
        resolution: int,
        viscosity: float = 1e-3,
        time: float = 1.0,
        dt: float = 1e-4,
        forcing="fno",
        times: Sequence[float] | None = None,
        noise_model=None,
        checkpoint_every: int | None = None,
    ):
        super().__init__(noise_model=noise_model)
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 4:
            raise ValueError(f"resolution must be an integer >= 4, got {resolution!r}")
        resolution = int(resolution)
        viscosity, time, dt = (check_positive(v, n) for n, v in (("viscosity", viscosity), ("time", time), ("dt", dt)))
        if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
            raise ValueError(f"checkpoint_every must be a positive integer or None, got {checkpoint_every!r}")
        self.resolution = resolution
        self.viscosity = viscosity
        self.dt = dt
        self.times = self._check_times(times) if times is not None else None
        self.time = self.times[-1] if self.times is not None else time
        self.snapshot_steps = self._snapshot_steps(self.dt)
        self.checkpoint_every = checkpoint_every
        self.forcing_kind = forcing if isinstance(forcing, str) or forcing is None else "tensor"
        self._symmetries: SymmetryGroup | None = None
        dx, dy = derivative_symbols(resolution)
        neg_lap = neg_laplacian_symbol(resolution)
        safe = torch.where(neg_lap == 0, 1.0, neg_lap)
        self.register_buffer("multipliers", torch.stack([dy / safe, -dx / safe, dx, dy]))
        self.register_buffer("neg_laplacian", neg_lap)
        self.register_buffer("dealias", dealias_mask(resolution))
        f = _forcing_field(forcing, resolution)
        self.register_buffer("forcing", f)
        self.register_buffer("forcing_hat", None if f is None else torch.fft.rfft2(f))

    @staticmethod
    def _check_times(times: Sequence[float]) -> tuple[float, ...]:
        values = tuple(float(t) for t in times)
        if not values:
            raise ValueError("times must contain at least one output time, or be None")
        if any(not math.isfinite(t) or t <= 0 for t in values) or any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"times must be finite, positive and strictly increasing, got {list(values)}")
        return values

    def _snapshot_steps(self, dt: float) -> tuple[int, ...]:
        """Step indices of the outputs for time step ``dt``."""
        if self.times is None:
            return (step_count(self.time, dt),)
        return tuple(step_count(t, dt, what="output time") for t in self.times)

    @property
    def n_steps(self) -> int:
        """Total number of time steps of one solve."""
        return self.snapshot_steps[-1]

    @property
    def n_outputs(self) -> int:
        """Number of output channels of ``A``: ``len(times)`` or 1."""
        return len(self.snapshot_steps)

    @property
    def symmetries(self) -> SymmetryGroup:
        """The exact symmetry group of ``A`` on the grid (built on first use, then cached).

        ``"fno"`` forcing: the ``4 S`` elements derived in the module docstring (``S`` must be
        divisible by 4). Unforced: all ``8 S^2`` shifted rotations and sign-flipping
        reflections. Forcing tensor: the elements of the unforced group that fix it.
        """
        if self._symmetries is None:
            if self.forcing_kind == "fno":
                self._symmetries = fno_forcing_symmetry_group(self.resolution)
            else:
                self._symmetries = forcing_symmetry_group(self.resolution, self.forcing)
        return self._symmetries

    def with_time_step(self, dt: float) -> NavierStokes2D:
        r"""The same problem (grid, viscosity, forcing, output times, noise) solved with time step ``dt``.

        A coarser step is a cheaper surrogate for methods that solve many times (the adjoint
        inversion, a solved particle state); its error is first order in ``dt`` (the
        time-step accuracy table in docs/studies/performance.md). ``dt`` must divide every output time.
        """
        forcing = self.forcing if self.forcing_kind == "tensor" else self.forcing_kind
        coarse = NavierStokes2D(
            self.resolution, self.viscosity, self.time, dt, forcing, self.times, self.noise_model
        )
        coarse._symmetries = self._symmetries
        return coarse.to(self.multipliers.device)

    def coefficients(self, dtype: torch.dtype, device: torch.device, dt: float | None = None) -> StepCoefficients:
        """Step coefficients for time step ``dt`` (default ``self.dt``) in ``dtype`` on ``device``."""
        dt = self.dt if dt is None else dt
        complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        half = 0.5 * dt * self.viscosity * self.neg_laplacian
        denominator = 1.0 + half
        source = None if self.forcing_hat is None else dt * self.forcing_hat / denominator

        def cast(t: torch.Tensor | None, target: torch.dtype):
            return None if t is None else t.to(device=device, dtype=target)

        return StepCoefficients(
            multipliers=cast(self.multipliers, complex_dtype),
            decay=cast((1.0 - half) / denominator, dtype),
            gain=cast(dt * self.dealias / denominator, dtype),
            source=cast(source, complex_dtype),
        )

    def A(self, x: torch.Tensor, dt: float | None = None, **kwargs) -> torch.Tensor:
        r"""Solve from the initial vorticity ``x`` to the output time(s).

        Parameters
        ----------
        x : torch.Tensor
            Initial vorticity :math:`w_0`, ``(B, 1, S, S)``, float32 or float64.
        dt : float, optional
            Time step for this call (default: the operator's ``dt``); must divide every output time.
        **kwargs
            Accepted for the deepinv ``Physics`` interface (e.g. noise parameters); unused here.

        Returns
        -------
        torch.Tensor
            :math:`w(T)` as ``(B, 1, S, S)``, or the snapshots ``(B, len(times), S, S)``.

        Raises
        ------
        NonFiniteError
            If the solve blew up (``dt`` beyond the scheme's stability bound): an output is not
            finite or exceeds twice the enstrophy bound :math:`\lVert w_0\rVert + t\lVert f\rVert`;
            the message names ``dt`` and :meth:`stable_time_step`.
        """
        self._check_input(x, "w0")
        dt = self.dt if dt is None else check_positive(dt, "dt")
        steps = self._snapshot_steps(dt)
        coef = self.coefficients(x.dtype, x.device, dt)
        advance = self._checkpointed_advance if torch.is_grad_enabled() and x.requires_grad else advance_in_place
        chunk = max(1, _CHUNK_POINTS // self.resolution**2) if x.device.type == "cpu" else x.shape[0]
        out = torch.cat([self._solve(part, steps, coef, advance) for part in x.split(chunk)])
        self._check_bounded(x, out, dt, steps)
        return out

    def stable_time_step(self, w0: torch.Tensor) -> float:
        r"""Estimated largest stable time step for the initial vorticity ``w0`` ``(B, 1, S, S)``.

        Forward-Euler advection is stable under the advective CFL condition
        :math:`\Delta t \le h / \max(|u| + |v|)`, :math:`h = 1/S`, and, with Crank-Nicolson
        viscosity, the advection-diffusion condition :math:`\Delta t \le 2\nu / \max(u^2 + v^2)`
        (the growth :math:`\tfrac12 (\Delta t\, \kappa |u|)^2` of a mode of wavenumber :math:`\kappa`
        per step must not exceed its viscous decay :math:`\Delta t\, \nu \kappa^2`). The bound
        is the smaller of the two, evaluated on the initial velocity (a flow that speeds up needs
        a smaller step); ``inf`` for a fluid at rest.
        """
        self._check_input(w0, "w0")
        w_hat = torch.fft.rfft2(w0[:, 0].to(torch.float64))
        velocity = torch.fft.irfft2(w_hat.unsqueeze(1) * self.multipliers[:2].to(w_hat.device), s=w0.shape[-2:])
        speed = float((velocity[:, 0].abs() + velocity[:, 1].abs()).max())
        energy = float(velocity.square().sum(1).max())
        if speed == 0:
            return math.inf
        return min(1.0 / (self.resolution * speed), 2.0 * self.viscosity / energy)

    def _check_bounded(self, x: torch.Tensor, out: torch.Tensor, dt: float, steps: tuple[int, ...]) -> None:
        r"""Raise a :class:`~pdeinv.errors.NonFiniteError` naming ``dt`` if the solve blew up.

        The advection term conserves enstrophy (:math:`\langle u\cdot\nabla w, w\rangle = 0` for a
        divergence-free :math:`u`) and viscosity dissipates it, so every solution obeys
        :math:`\lVert w(t)\rVert \le \lVert w_0\rVert + t\,\lVert f\rVert` (root-mean-square norms
        on the grid). An output that is not finite or exceeds twice this bound is the time
        integrator's instability, not physics.
        """
        rms = out.detach().flatten(2).square().mean(-1).sqrt()
        times = torch.tensor(steps, dtype=rms.dtype, device=rms.device) * dt
        forcing = 0.0 if self.forcing is None else float(self.forcing.square().mean().sqrt())
        bound = x.detach().flatten(1).square().mean(-1).sqrt()[:, None].to(rms.dtype) + times * forcing
        broken = ~torch.isfinite(rms) | (rms > _GROWTH_SLACK * bound)
        if not bool(broken.any()):
            return
        bad = broken.any(1).nonzero().flatten().tolist()
        first = bad[0]
        limit = self.stable_time_step(x[first : first + 1].detach())
        if dt > limit:
            advice = f"use dt <= {limit:.3g} (the stability bound of the initial state, see stable_time_step)"
        else:
            advice = (
                f"dt is already below the stability bound {limit:.3g} of the initial state, so the flow sped up or "
                f"is under-resolved at {self.resolution} x {self.resolution}: use a smaller dt, a finer grid or a "
                "larger viscosity"
            )
        column = int(broken[first].nonzero()[0])
        raise NonFiniteError(
            f"NavierStokes2D.A blew up with dt={dt:g}: the vorticity of sample(s) {bad[:10]} reached rms "
            f"{float(rms[first, column]):.3g} at t={float(times[column]):g}, beyond the bound ||w0|| + t ||f|| = "
            f"{float(bound[first, column]):.3g} that every solution obeys (viscosity {self.viscosity:g}, "
            f"{self.resolution} x {self.resolution}); {advice}"
        )

    @staticmethod
    def _solve(x: torch.Tensor, steps: tuple[int, ...], coef: StepCoefficients, advance) -> torch.Tensor:
        """Advance ``x`` ``(b, 1, S, S)`` and collect the fields at the step indices ``steps``."""
        w_hat = torch.fft.rfft2(x[:, 0])
        outputs, done = [], 0
        for target in steps:
            w_hat = advance(w_hat, target - done, coef)
            done = target
            outputs.append(torch.fft.irfft2(w_hat, s=x.shape[-2:]))
        return torch.stack(outputs, dim=1)


    def residual(self, w0: torch.Tensor, w1: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        r"""Residual :math:`A(w_0) - w_1` of a claimed pair, shaped like ``w1``.

        It costs one full solve (``n_steps`` time steps). Passing a coarser ``dt`` (dividing
        every output time) gives a cheaper surrogate for physics guidance, whose own
        discretisation error is first order in ``dt`` (see the benchmark's accuracy table).

        Parameters
        ----------
        w0 : torch.Tensor
            Initial vorticity ``(B, 1, S, S)``.
        w1 : torch.Tensor
            Claimed output ``(B, n_outputs, S, S)``, same batch, dtype and device as ``w0``.
        dt : float, optional
            Time step of this solve (default: the operator's ``dt``).
        """
        check_field(w1, resolution=self.resolution, channels=self.n_outputs, name="w1", owner="NavierStokes2D.residual")
        if w1.shape[0] != w0.shape[0] or w1.dtype != w0.dtype:
            raise ValueError(
                f"w1 must match w0 in batch size and dtype, got {tuple(w1.shape)} {w1.dtype} "
                f"against {tuple(w0.shape)} {w0.dtype}"
            )
        return self.A(w0, dt=dt) - w1

    def A_vjp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r"""Vector-Jacobian product :math:`J_A(x)^\top v` by reverse-mode autograd (checkpointed).

        Parameters
        ----------
        x : torch.Tensor
            Initial vorticity ``(B, 1, S, S)``.
        v : torch.Tensor
            Cotangent shaped like ``A(x)``.
        """
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.A(x), x, v)
        return grad

    def _checkpointed_advance(self, w_hat: torch.Tensor, n: int, coef: StepCoefficients) -> torch.Tensor:
        """``n`` differentiable steps in segments that keep only their initial spectrum for backward."""
        segment = self.checkpoint_every or max(1, math.ceil(math.sqrt(self.n_steps)))
        done = 0
        while done < n:
            length = min(segment, n - done)
            w_hat = _CheckpointedSegment.apply(w_hat, length, coef)
            done += length
        return w_hat

    def _check_input(self, x: torch.Tensor, name: str) -> None:
        check_field(x, resolution=self.resolution, channels=1, name=name, owner="NavierStokes2D")


def step(w_hat: torch.Tensor, coef: StepCoefficients) -> torch.Tensor:
    """One time step of the spectra ``(B, S, S//2+1)`` (out of place, differentiable)."""
    size = (w_hat.shape[-2], w_hat.shape[-2])
    fields = torch.fft.irfft2(w_hat.unsqueeze(-3) * coef.multipliers, s=size)
    advection = fields[:, 0] * fields[:, 2] + fields[:, 1] * fields[:, 3]
    out = coef.decay * w_hat - coef.gain * torch.fft.rfft2(advection)
    return out if coef.source is None else out + coef.source


@torch.no_grad()
def advance_in_place(w_hat: torch.Tensor, n: int, coef: StepCoefficients) -> torch.Tensor:
    """``n`` time steps without autograd, reusing four work buffers (no allocation per step)."""
    batch, size = w_hat.shape[0], w_hat.shape[-2]
    w_hat = w_hat.clone()
    spectra = w_hat.new_empty((batch, 4) + w_hat.shape[-2:])
    fields = coef.decay.new_empty((batch, 4, size, size))
    advection = coef.decay.new_empty((batch, size, size))
    advection_hat = torch.empty_like(w_hat)
    for _ in range(n):
        torch.mul(w_hat.unsqueeze(1), coef.multipliers, out=spectra)
        torch.fft.irfft2(spectra, s=(size, size), out=fields)
        torch.mul(fields[:, 0], fields[:, 2], out=advection)
        advection.addcmul_(fields[:, 1], fields[:, 3])
        torch.fft.rfft2(advection, out=advection_hat)
        advection_hat.mul_(coef.gain)
        w_hat.mul_(coef.decay).sub_(advection_hat)
        if coef.source is not None:
            w_hat.add_(coef.source)
    return w_hat


class _CheckpointedSegment(torch.autograd.Function):
    """``n`` steps: fast forward without a graph; backward recomputes the segment with autograd.

    Only the segment's initial spectrum is stored, and no autograd nodes are created during the
    forward pass, so memory is bounded by one segment's graph plus one spectrum per segment
    (``torch.utils.checkpoint`` would keep per-step graph nodes alive, whose interleaving with
    large buffers fragments the heap and makes resident memory grow with the number of steps).
    First-order gradients only.
    """

    @staticmethod
    def forward(w_hat: torch.Tensor, n: int, coef: StepCoefficients) -> torch.Tensor:
        return advance_in_place(w_hat, n, coef)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        w_hat, n, coef = inputs
        ctx.save_for_backward(w_hat)
        ctx.n, ctx.coef = n, coef

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (w_hat,) = ctx.saved_tensors
        with torch.enable_grad():
            start = w_hat.detach().requires_grad_(True)
            end = start
            for _ in range(ctx.n):
                end = step(end, ctx.coef)
            (grad,) = torch.autograd.grad(end, start, grad_output)
        return grad, None, None


def _orientation(ops: tuple) -> int:
    """+1 for a proper (rotation-like) grid map, -1 for an improper (reflection-like) one."""
    sign = 1
    for op in ops:
        if op[0] == "transpose" or (op[0] == "flip" and len(op) == 2):
            sign = -sign
    return sign


def _vorticity_map(name: str, ops: tuple, shift: tuple[int, int], resolution: int) -> Transform:
    """The grid map ``ops`` then the circular shift ``shift``, negating vorticity if improper."""
    shift = (shift[0] % resolution, shift[1] % resolution)
    if shift != (0, 0):
        ops = ops + (("roll",) + shift,)
    if not ops:
        return IDENTITY
    label = f"{name}+shift{shift}" if name else f"shift{shift}"
    if _orientation(ops) < 0:
        return Transform(f"-{label}", ops + (("negate",),))
    return Transform(label, ops)


def fno_forcing_symmetry_group(resolution: int) -> SymmetryGroup:
    r"""The ``4 S`` symmetries of Navier-Stokes with the FNO forcing (module docstring).

    Element ``m`` (``0 <= m < S``) of each family, as a map of grid indices modulo ``S``:
    ``w[i + m, j - m]`` (translations), ``w[a - i, b - j]`` with ``a = m``, ``b = S/4 - m``
    (point reflections), ``-w[j - d, i - c]`` with ``c = m``, ``d = S/2 - m`` (transposes) and
    ``-w[a - j, b - i]`` with ``a = m``, ``b = 3S/4 - m`` (anti-transposes).

    Raises
    ------
    ValueError
        If ``S`` is not divisible by 4 (the point reflections need :math:`a + b \equiv S/4`).
    """
    s = resolution
    if s % 4:
        raise ValueError(
            f"the symmetry group of the FNO-forced problem needs a resolution divisible by 4, got {s}; "
            f"use a multiple of 4 such as resolution={4 * max(1, round(s / 4))}"
        )
    elements = []
    for m in range(s):
        elements.append(_vorticity_map("", (), (m, -m), s))
    for a in range(s):
        b = s // 4 - a
        elements.append(_vorticity_map("rot180", (("flip", -2, -1),), (a + 1, b + 1), s))
    for c in range(s):
        d = s // 2 - c
        elements.append(_vorticity_map("transpose", (("transpose",),), (c, d), s))
    for a in range(s):
        b = 3 * s // 4 - a
        elements.append(_vorticity_map("anti_transpose", (("transpose",), ("flip", -2, -1)), (b + 1, a + 1), s))
    return SymmetryGroup(
        "ns-fno-forcing",
        elements,
        "shifts along (1,-1), point reflections with a+b = S/4, sign-flipping transposes with "
        "c+d = S/2 and anti-transposes with a+b = 3S/4 (mod S)",
    )


def forcing_symmetry_group(resolution: int, forcing: torch.Tensor | None, rtol: float = 1e-6) -> SymmetryGroup:
    r"""Elements of the unforced group (``8 S^2`` maps) that leave ``forcing`` unchanged.

    For each of the 8 linear parts :math:`P` of D4 (sign :math:`\epsilon = \pm1` for proper /
    improper) all shifts are tested at once: with :math:`h = \epsilon P f`,
    :math:`\|\mathrm{roll}_{a,b} h - f\|^2 = \|h\|^2 + \|f\|^2 - 2 (h \star f)[a, b]`, the
    cross-correlation computed by FFT. A map is kept when this is at most
    :math:`(\text{rtol}\,\|f\|)^2`.

    Parameters
    ----------
    resolution : int
        Grid size ``S``.
    forcing : torch.Tensor or None
        Forcing grid values ``(S, S)``; ``None`` (or all zeros) gives the whole unforced group.
    rtol : float
        Relative tolerance for "unchanged".
    """
    s = resolution
    f = torch.zeros(s, s, dtype=torch.float64) if forcing is None else forcing.to(torch.float64).cpu()
    f_norm2 = float(f.square().sum())
    elements = []
    for part in dihedral_group():
        h = part(f[None, None])[0, 0] * _orientation(part.ops)
        corr = torch.fft.ifft2(torch.fft.fft2(h).conj() * torch.fft.fft2(f)).real
        mismatch = float(h.square().sum()) + f_norm2 - 2 * corr
        for a, b in (mismatch <= rtol**2 * f_norm2).nonzero().tolist():
            elements.append(_vorticity_map(part.name, part.ops, (a, b), s))
    name = "ns-unforced" if f_norm2 == 0 else "ns-forcing-invariant"
    return SymmetryGroup(name, elements, "shifted rotations and sign-flipping reflections that fix the forcing")
