"""Tests of the 2-D Navier-Stokes operator against exact solutions, convergence orders,
an independent transcription of the reference scheme, autograd, memory bounds and symmetries."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from pdeinv.operators.navier_stokes import NavierStokes2D
from pdeinv.operators.symmetry import Transform


@pytest.fixture(autouse=True)
def single_thread():
    """Run each test on one intra-op thread: small FFTs gain nothing from threads, and on a
    shared, oversubscribed CPU spinning OpenMP workers slow them down by an order of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def grid(s: int, dtype=torch.float64):
    t = torch.arange(s, dtype=dtype) / s
    return torch.meshgrid(t, t, indexing="ij")


def fno_grf(n: int, s: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Initial vorticity with covariance 7^3 (-lap + 49)^(-2.5), constant mode removed (FNO recipe)."""
    k = torch.fft.fftfreq(s, dtype=torch.float64) * s
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    sqrt_eig = s**2 * math.sqrt(2) * 7**1.5 * (4 * math.pi**2 * k2 + 49) ** (-1.25)
    sqrt_eig[0, 0] = 0
    g = torch.Generator().manual_seed(seed)
    xi = torch.complex(torch.randn(n, s, s, generator=g, dtype=torch.float64), torch.randn(n, s, s, generator=g, dtype=torch.float64))
    return torch.fft.ifft2(sqrt_eig * xi / math.sqrt(2)).real[:, None].to(dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ---------------------------------------------------------------- exact solutions


def test_single_mode_decays_at_the_viscous_rate():
    # w0 = sin 2pi(x+y) is an exact unforced solution with u.grad w = 0: w = exp(-8 pi^2 nu t) w0.
    x, y = grid(16)
    w0 = torch.sin(2 * math.pi * (x + y))[None, None]
    nu, t = 1e-2, 0.5
    op = NavierStokes2D(16, viscosity=nu, time=t, dt=1e-3, forcing=None)
    assert rel(op.A(w0), math.exp(-8 * math.pi**2 * nu * t) * w0) < 1e-6


def test_forced_mode_relaxes_to_the_exact_steady_state():
    # f lies in the |k| = sqrt(2) shell, where the advection vanishes: from w0 = 0 the exact
    # solution is w = f / (nu L) (1 - exp(-nu L t)) with L = 8 pi^2.
    x, y = grid(16)
    f = 0.1 * (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y)))
    nu, t, lam = 1e-2, 2.0, 8 * math.pi**2 * 1e-2
    op = NavierStokes2D(16, viscosity=nu, time=t, dt=1e-3, forcing="fno")
    exact = f / lam * (1 - math.exp(-lam * t))
    assert rel(op.A(torch.zeros(1, 1, 16, 16, dtype=torch.float64)), exact[None, None]) < 1e-6


def test_snapshots_follow_the_decay_at_every_output_time():
    x, y = grid(16)
    w0 = torch.cos(2 * math.pi * (x - 2 * y))[None, None].repeat(2, 1, 1, 1)
    nu, times = 1e-2, (0.1, 0.25, 0.4)
    out = NavierStokes2D(16, viscosity=nu, dt=1e-3, forcing=None, times=times).A(w0)
    assert out.shape == (2, 3, 16, 16)
    for c, t in enumerate(times):
        assert rel(out[:, c : c + 1], math.exp(-4 * math.pi**2 * 5 * nu * t) * w0) < 1e-6


def reference_fno_step_solver(w0: torch.Tensor, nu: float, dt: float, n: int) -> torch.Tensor:
    """Plain transcription of the reference generator's recipe (full complex FFTs, L[0,0] = 1)."""
    s = w0.shape[-1]
    k = torch.cat([torch.arange(s // 2), torch.arange(-s // 2, 0)]).to(torch.float64)
    kx, ky = k[:, None], k[None, :]
    lap = 4 * math.pi**2 * (kx**2 + ky**2)
    lap[0, 0] = 1.0
    keep = ((kx.abs() <= 2 / 3 * s / 2) & (ky.abs() <= 2 / 3 * s / 2)).to(torch.float64)
    x, y = grid(s)
    f_hat = torch.fft.fft2(0.1 * (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y))))
    w_hat = torch.fft.fft2(w0)
    for _ in range(n):
        psi = w_hat / lap
        u = torch.fft.ifft2(2j * math.pi * ky * psi).real
        v = torch.fft.ifft2(-2j * math.pi * kx * psi).real
        wx = torch.fft.ifft2(2j * math.pi * kx * w_hat).real
        wy = torch.fft.ifft2(2j * math.pi * ky * w_hat).real
        nonlinear = keep * torch.fft.fft2(u * wx + v * wy)
        w_hat = (-dt * nonlinear + dt * f_hat + (1 - 0.5 * dt * nu * lap) * w_hat) / (1 + 0.5 * dt * nu * lap)
    return torch.fft.ifft2(w_hat).real


def test_matches_an_independent_transcription_of_the_reference_scheme():
    # Zero-mean data without Nyquist content: the documented differences (mean mode, Nyquist
    # derivative) are inactive, so both must agree to round-off.
    s = 16
    w0 = fno_grf(2, s, seed=3)
    w_hat = torch.fft.fft2(w0)
    w_hat[..., s // 2, :] = 0
    w_hat[..., :, s // 2] = 0
    w0 = torch.fft.ifft2(w_hat).real
    ours = NavierStokes2D(s, time=0.05, dt=1e-3).A(w0)
    assert rel(ours[:, 0], reference_fno_step_solver(w0[:, 0], 1e-3, 1e-3, 50)) < 1e-12


# ---------------------------------------------------------------- convergence order


def test_halving_dt_shows_first_order_convergence():
    w0 = fno_grf(1, 32, seed=0)
    sols = [NavierStokes2D(32, time=1.0, dt=dt).A(w0) for dt in (4e-3, 2e-3, 1e-3)]
    ratio = float(torch.linalg.vector_norm(sols[0] - sols[1]) / torch.linalg.vector_norm(sols[1] - sols[2]))
    assert 1.9 < ratio < 2.1, ratio


def test_with_time_step_solves_the_same_problem_with_the_new_step():
    w0 = fno_grf(2, 16, seed=1)
    forcing = 0.05 * torch.cos(2 * math.pi * grid(16)[0])
    fine = NavierStokes2D(16, viscosity=2e-3, times=(0.1, 0.2), dt=1e-3, forcing=forcing)
    coarse = fine.with_time_step(1e-2)
    assert (coarse.dt, coarse.viscosity, coarse.times, coarse.n_steps) == (1e-2, 2e-3, (0.1, 0.2), 20)
    assert torch.equal(coarse.forcing, fine.forcing)
    assert torch.equal(coarse.A(w0), fine.A(w0, dt=1e-2))
    assert rel(coarse.A(w0), fine.A(w0)) < 1e-3
    with pytest.raises(ValueError, match="not a positive multiple of dt"):
        fine.with_time_step(0.03)


# ---------------------------------------------------------------- autograd


def test_gradcheck_through_checkpointed_segments():
    op = NavierStokes2D(8, viscosity=1e-2, time=0.05, dt=0.01, checkpoint_every=2, times=(0.02, 0.05))
    w0 = (0.5 * fno_grf(2, 8, seed=1)).requires_grad_(True)
    assert torch.autograd.gradcheck(op.A, (w0,), eps=1e-6, atol=1e-8)


def test_gradient_path_and_fast_path_agree():
    op = NavierStokes2D(16, time=0.02, dt=1e-3, checkpoint_every=3)
    w0 = fno_grf(3, 16, seed=2)
    fast = op.A(w0)
    tracked = op.A(w0.clone().requires_grad_(True))
    assert tracked.requires_grad and not fast.requires_grad
    assert rel(tracked.detach(), fast) < 1e-13


def test_vjp_matches_central_differences():
    # <J^T v, u> must equal the directional derivative (A(x + e u) - A(x - e u)) / (2 e) . v.
    op = NavierStokes2D(16, time=0.02, dt=1e-3)
    x, u, v = fno_grf(1, 16, seed=9), fno_grf(1, 16, seed=10), fno_grf(1, 16, seed=11)
    eps = 1e-4
    directional = ((op.A(x + eps * u) - op.A(x - eps * u)) / (2 * eps) * v).sum()
    assert abs(float((op.A_vjp(x, v) * u).sum() - directional)) < 1e-8 * abs(float(directional))


_MEMORY_SCRIPT = """
import resource, sys, torch
from pdeinv.operators.navier_stokes import NavierStokes2D
from pdeinv.operators.symmetry import Transform
torch.set_num_threads(1)
s, batch = int(sys.argv[1]), int(sys.argv[2])
for steps in map(int, sys.argv[3:]):
    op = NavierStokes2D(s, time=steps * 1e-4, dt=1e-4)
    w0 = (0.2 * torch.randn(batch, 1, s, s, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    op.A(w0).square().sum().backward()
    assert torch.isfinite(w0.grad).all()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_rss_bytes(s: int, batch: int, *steps: int) -> list[int]:
    """Peak resident memory of a fresh process after backward through each number of steps in turn."""
    args = [sys.executable, "-c", _MEMORY_SCRIPT, str(s), str(batch), *map(str, steps)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return [int(line) for line in done.stdout.split()]


def test_backward_memory_does_not_scale_with_the_number_of_steps():
    # Keeping every step's graph would hold at least the four grid fields (u, v, w_x, w_y) of
    # each step: 1500 extra steps x 4 x 8 x 64^2 x 4 bytes = 786 MB. Checkpointing must stay
    # far below that.
    short, long = peak_rss_bytes(64, 8, 100, 1600)
    assert long - short < 150e6, (short, long)


@pytest.mark.slow
def test_backward_through_ten_thousand_steps_fits_in_two_gigabytes():
    (peak,) = peak_rss_bytes(64, 8, 10_000)
    assert peak < 2e9, peak


# ---------------------------------------------------------------- batching, dtype, residual


def test_batch_chunks_and_float32_follow_the_float64_solution():
    w0 = fno_grf(20, 64, seed=4)
    op = NavierStokes2D(64, time=0.01, dt=1e-3)
    both = op.A(w0)
    assert rel(both[7:8], op.A(w0[7:8])) < 1e-13
    single = op.A(w0.float())
    assert single.dtype == torch.float32
    assert rel(single.double(), both) < 1e-5


def test_residual_vanishes_on_the_exact_pair_and_detects_a_wrong_one():
    x, y = grid(16)
    w0 = torch.sin(2 * math.pi * (x + y))[None, None]
    nu, t = 1e-2, 0.2
    op = NavierStokes2D(16, viscosity=nu, time=t, dt=1e-3, forcing=None)
    w1 = math.exp(-8 * math.pi**2 * nu * t) * w0
    assert float(op.residual(w0, w1).abs().max()) < 1e-8
    assert float(op.residual(w0, w1, dt=0.02).abs().max()) < 1e-4
    assert float(op.residual(w0, w0).abs().max()) > 0.1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"viscosity": 0.0}, "viscosity"),
        ({"time": -1.0}, "time"),
        ({"dt": 0.0}, "dt"),
        ({"viscosity": True}, "viscosity"),
        ({"time": 1.0, "dt": 3e-4}, "multiple of dt"),
        ({"times": (0.2, 0.1)}, "increasing"),
        ({"times": (0.15005,), "dt": 1e-3}, "multiple of dt"),
        ({"forcing": "kolmogorov"}, "forcing"),
        ({"forcing": torch.zeros(8, 8)}, "shape"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_configuration_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NavierStokes2D(16, **kwargs)


@pytest.mark.parametrize(
    "w0, match",
    [
        (torch.zeros(1, 16, 16), "4 dimensions"),
        (torch.zeros(1, 2, 16, 16), "channel"),
        (torch.zeros(1, 1, 32, 32), "resolution"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.float16), "float32 or float64"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.int64), "floating"),
    ],
)
def test_bad_field_raises(w0, match):
    with pytest.raises(ValueError, match=match):
        NavierStokes2D(16, time=1e-3, dt=1e-3).A(w0)


def test_bad_call_arguments_raise():
    op = NavierStokes2D(16, time=1e-2, dt=1e-3)
    w0 = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        op.A(w0, dt=0.0)
    with pytest.raises(ValueError, match="multiple of dt"):
        op.A(w0, dt=3e-3)
    with pytest.raises(ValueError, match="batch size and dtype"):
        op.residual(w0, torch.zeros(3, 1, 16, 16))


# ---------------------------------------------------------------- symmetries


def element_keys(group, s: int) -> list[tuple]:
    """Each element's action on a probe with distinct positive values: a permutation plus a sign."""
    probe = (torch.arange(s * s, dtype=torch.float64) + 1).reshape(1, 1, s, s)
    return [tuple(g(probe).flatten().tolist()) for g in group]


@pytest.mark.parametrize("s", [8, 12])
def test_fno_group_is_closed_has_inverses_and_4s_distinct_elements(s):
    group = NavierStokes2D(s).symmetries
    keys = element_keys(group, s)
    assert len(group) == 4 * s and len(set(keys)) == 4 * s
    probe = (torch.arange(s * s, dtype=torch.float64) + 1).reshape(1, 1, s, s)
    known = set(keys)
    for g in group:
        assert tuple(g.inverse()(probe).flatten().tolist()) in known
        for h in group:
            assert tuple(h(g(probe)).flatten().tolist()) in known


def test_fno_group_fixes_the_forcing_and_equals_the_brute_force_search():
    s = 16
    op = NavierStokes2D(s)
    x, y = grid(s)
    f = (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y)))[None, None]
    for g in op.symmetries:
        assert float((g(f) - f).abs().max()) < 1e-12, g.name
    # Brute force over all 8 S^2 candidate maps, applied one by one (no correlation trick).
    unforced = NavierStokes2D(s, forcing=None).symmetries
    fixing = [g for g in unforced if float((g(f) - f).abs().max()) < 1e-12]
    assert set(element_keys(fixing, s)) == set(element_keys(op.symmetries, s))


def commutation_errors(op, group, w0: torch.Tensor) -> dict[str, float]:
    """Relative ||A(g w0) - g A(w0)|| / ||A(w0)|| for every element, solved as one batch."""
    moved = op.A(torch.cat([g(w0) for g in group]))
    reference = op.A(w0)
    scale = torch.linalg.vector_norm(reference)
    return {g.name: float(torch.linalg.vector_norm(moved[k : k + 1] - g.on_output(reference)) / scale) for k, g in enumerate(group)}


def test_every_declared_symmetry_commutes_in_float32():
    op = NavierStokes2D(32, time=0.1, dt=1e-3)
    errors = commutation_errors(op, op.symmetries, fno_grf(1, 32, seed=5, dtype=torch.float32))
    assert len(errors) == 128
    assert max(errors.values()) < 1e-5, max(errors, key=errors.get)


def test_plain_rotations_and_flips_are_not_symmetries_of_the_forced_problem():
    op = NavierStokes2D(32, time=0.1, dt=1e-3)
    w0 = fno_grf(1, 32, seed=6, dtype=torch.float32)
    impostors = [
        Transform("rot90", (("rot90", 1),)),
        Transform("flip_x", (("flip", -2),)),
        Transform("-flip_x", (("flip", -2), ("negate",))),
        Transform("rot180", (("rot90", 2),)),
    ]
    errors = commutation_errors(op, impostors, w0)
    assert min(errors.values()) > 1e-3, errors


def test_unforced_group_has_8s2_elements_that_all_commute():
    s = 8
    op = NavierStokes2D(s, time=0.05, dt=1e-3, forcing=None)
    group = op.symmetries
    assert len(group) == 8 * s * s and len(set(element_keys(group, s))) == 8 * s * s
    errors = commutation_errors(op, group, fno_grf(1, s, seed=7))
    assert max(errors.values()) < 1e-12


def test_forcing_tensor_group_is_found_by_search():
    s = 16
    x, y = grid(s)
    # f = cos(2 pi x) is fixed, for each of the S shifts along y, by: the identity; the 180-degree
    # rotation about x = 0; and the two axis reflections combined with the sign flip and a
    # half-period shift in x (-cos(2 pi (1/2 - x)) = cos 2 pi x). Quarter turns and transposes
    # exchange x and y. Hence 4 S elements.
    f = torch.cos(2 * math.pi * x)
    op = NavierStokes2D(s, time=0.05, dt=1e-3, forcing=f)
    group = op.symmetries
    assert len(group) == 4 * s
    errors = commutation_errors(op, group, fno_grf(1, s, seed=8))
    assert max(errors.values()) < 1e-12
    noisy = torch.randn(s, s, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert len(NavierStokes2D(s, forcing=noisy).symmetries) == 1


def test_group_needs_resolution_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        NavierStokes2D(18).symmetries
