"""Darcy operator: convergence order, an independent sparse solve, the adjoint gradient and D4 symmetry."""

from __future__ import annotations

import math

import deepinv
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeinv.bench.tasks import get_task
from pdeinv.datasets.generate import generate, make_config
from pdeinv.datasets.grf import darcy_level_set_grf, darcy_permeability
from pdeinv.datasets.inspection import check_file
from pdeinv.datasets.seeding import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS, benchmark_set_configs
from pdeinv.operators import Darcy
from pdeinv.priors.augment import symmetry_group
from pdeinv.priors.quality import binarize, binary_figures
from pdeinv.sampling.problem import pde_physics


def grid(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64)
    return torch.meshgrid(x, x, indexing="ij")


def manufactured(resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a = 2 + x^2 + x sin(pi y), u = sin(pi x) sin(2 pi y), f = -div(a grad u), all analytic."""
    x, y = grid(resolution)
    pi = math.pi
    a = 2 + x**2 + x * torch.sin(pi * y)
    a_x, a_y = 2 * x + torch.sin(pi * y), pi * x * torch.cos(pi * y)
    u = torch.sin(pi * x) * torch.sin(2 * pi * y)
    u_x = pi * torch.cos(pi * x) * torch.sin(2 * pi * y)
    u_y = 2 * pi * torch.sin(pi * x) * torch.cos(2 * pi * y)
    f = -(a_x * u_x + a_y * u_y - 5 * pi**2 * a * u)
    return a, u, f


def reference_solve(a: np.ndarray, forcing: float = 1.0) -> np.ndarray:
    """Independent assembly, node by node, of the stated flux form with arithmetic face means; spsolve."""
    s = a.shape[0]
    h2 = (1.0 / (s - 1)) ** 2
    number = {(i, j): (i - 1) * (s - 2) + (j - 1) for i in range(1, s - 1) for j in range(1, s - 1)}
    matrix = sp.lil_matrix((len(number), len(number)))
    for (i, j), row in number.items():
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            face = 0.5 * (a[i, j] + a[i + di, j + dj]) / h2
            matrix[row, row] += face
            if (i + di, j + dj) in number:
                matrix[row, number[i + di, j + dj]] -= face
    interior = spla.spsolve(matrix.tocsc(), np.full(len(number), forcing))
    u = np.zeros_like(a)
    u[1:-1, 1:-1] = interior.reshape(s - 2, s - 2)
    return u


def binary_permeability(resolution: int, batch: int = 2, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mu = torch.nn.functional.avg_pool2d(torch.randn(batch, 1, resolution + 4, resolution + 4, generator=g), 5, 1)
    return torch.where(mu > 0, 12.0, 3.0).to(dtype)


def test_second_order_convergence_on_manufactured_solution():
    errors = []
    for resolution in (17, 33, 65):
        a, u, f = manufactured(resolution)
        solved = Darcy(resolution, forcing=f).A(a[None, None])[0, 0]
        errors.append(float((solved - u).abs().max()))
    orders = [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]
    assert errors[-1] < 1e-3
    assert all(1.9 < order < 2.1 for order in orders), orders


def test_matches_independent_sparse_solve_float64_and_float32():
    a = binary_permeability(20, batch=2)
    u = Darcy(20).A(a)
    for n in range(2):
        reference = reference_solve(a[n, 0].numpy())
        assert np.linalg.norm(u[n, 0].numpy() - reference) / np.linalg.norm(reference) < 1e-6
    u32 = Darcy(20).A(a.float())
    assert u32.dtype == torch.float32
    assert float((u32.double() - u).norm() / u.norm()) < 1e-5


def test_residual_vanishes_at_the_solution_and_boundary_is_zero():
    a = binary_permeability(24)
    physics = Darcy(24)
    u = physics.A(a)
    scale = float((a * u).abs().max()) * 23**2
    assert float(physics.residual(a, u).abs().max()) < 1e-12 * scale
    boundary = torch.ones(24, 24, dtype=torch.bool)
    boundary[1:-1, 1:-1] = False
    assert float(u[..., boundary].abs().max()) == 0.0
    assert float(u[..., 1:-1, 1:-1].min()) > 0.0  # maximum principle: f = 1 > 0 with zero Dirichlet data


def test_gradcheck_of_the_adjoint_solve():
    g = torch.Generator().manual_seed(1)
    a = (1.0 + 2.0 * torch.rand(2, 1, 6, 6, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(Darcy(6).A, (a,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_adjoint_gradient_matches_finite_differences():
    physics = Darcy(16)
    a = binary_permeability(16, batch=1)
    g = torch.Generator().manual_seed(2)
    weights = torch.randn(a.shape, generator=g, dtype=torch.float64)
    direction = torch.randn(a.shape, generator=g, dtype=torch.float64)

    def loss(field):
        return (weights * physics.A(field)).sum()

    leaf = a.clone().requires_grad_()
    loss(leaf).backward()
    eps = 1e-5
    with torch.no_grad():
        fd = (loss(a + eps * direction) - loss(a - eps * direction)) / (2 * eps)
    analytic = (leaf.grad * direction).sum()
    assert abs(float(fd - analytic)) < 1e-7 * abs(float(analytic))


def test_d4_symmetry_is_declared_and_exact():
    physics = Darcy(17)
    assert isinstance(physics, deepinv.physics.Physics)
    assert physics.symmetries.name == "D4" and len(physics.symmetries) == 8
    g = torch.Generator().manual_seed(3)
    a = 1.0 + torch.rand(2, 1, 17, 17, generator=g, dtype=torch.float64)
    errors = physics.symmetries.commutation_errors(physics.A, a)
    assert max(errors.values()) < 1e-12, errors


def test_nonsymmetric_forcing_keeps_only_its_stabiliser():
    x, _ = grid(9)
    physics = Darcy(9, forcing=1.0 + x)
    assert sorted(g.name for g in physics.symmetries) == ["flip_y", "identity"]
    a = 1.0 + torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert max(physics.symmetries.commutation_errors(physics.A, a).values()) < 1e-12


def test_invalid_inputs_raise_named_errors():
    physics = Darcy(8)
    with pytest.raises(ValueError, match="positive"):
        physics.A(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="resolution"):
        physics.A(torch.ones(1, 1, 9, 9))
    with pytest.raises(ValueError, match="NaN"):
        physics.A(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="resolution"):
        Darcy(2)


def test_level_set_grf_is_the_fno_darcy_field_and_permeability_is_binary():
    grf = darcy_level_set_grf(16)
    assert (grf.basis, grf.alpha, grf.tau, grf.amplitude, grf.zero_boundary) == ("cosine", 2.0, 3.0, 3.0, False)
    k1, k2 = grf.wavenumbers()
    expected = 16**2 * 9.0 * (math.pi**2 * (k1**2 + k2**2) + 9.0) ** -2.0
    expected[0, 0] = 0.0
    assert torch.allclose(grf.eigenvalues(), expected, rtol=1e-14, atol=0)
    mu = torch.tensor([-1.0, -1e-9, 0.0, 2.0])
    assert darcy_permeability(mu).tolist() == [3.0, 3.0, 12.0, 12.0]


def test_generated_darcy_pairs_match_an_independent_solve(tmp_path):
    s, n = 12, 5
    out = generate(make_config("darcy", s, n, seed=3), tmp_path / "d.h5", batch_size=16, progress=False)
    assert check_file(out) == []
    with h5py.File(out, "r") as f:
        a, u = f["t0_fields/permeability"][()], f["t0_fields/pressure"][()]
        assert (f.attrs["pde"], list(f.attrs["input_fields"]), list(f.attrs["output_fields"])) == (
            "darcy", ["permeability"], ["pressure"])
    assert set(np.unique(a)) <= {3.0, 12.0} and a.shape == u.shape == (n, 1, s, s)
    for i in range(n):
        level_set = darcy_level_set_grf(s).sample(1, sample_generator(3, i))
        assert np.array_equal(a[i : i + 1], darcy_permeability(level_set).numpy())
        reference = reference_solve(a[i, 0].astype(np.float64))
        assert np.abs(u[i, 0] - reference).max() <= 1e-6 * np.abs(reference).max()


def test_darcy_benchmark_set_and_tasks():
    assert benchmark_set_configs(64)["darcy_64_test"] == make_config("darcy", 64, 64, SPLIT_SEEDS["test"])
    inverse, forward = get_task("darcy-inverse"), get_task("darcy-forward-64")
    assert (inverse.resolution, inverse.n_points, inverse.channels) == (128, 500, ("permeability", "pressure"))
    assert (forward.resolution, forward.n_points) == (64, 123)
    assert (inverse.metric_name, forward.metric_name, get_task("darcy-inverse-64").metric_name) == (
        "error_rate", "rel_l2", "error_rate")
    truth = torch.full((2, 1, 4, 4), 3.0)
    truth[1, 0, :2] = 12.0
    estimate = truth.clone()
    estimate[0, 0, 0, 0] = 8.0  # wrong class
    estimate[1, 0, 0, :] = 7.6  # right class, wrong value
    assert inverse.metric(estimate, truth).tolist() == [1 / 16, 0.0]
    assert isinstance(pde_physics("darcy", 9).operator, Darcy)


def test_binary_quality_figures_and_augmentation_group():
    data = torch.where(torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5)) > 0.5, 12.0, 3.0)
    blurred = 0.5 * (data + data.roll(1, dims=-1))
    figures = binary_figures(blurred, data)
    assert figures["binary_fraction_data"] == 1.0 and figures["binary_fraction"] < 1.0
    assert figures["high_fraction_data"] == round(float((data > 7.5).double().mean()), 4)
    assert torch.equal(binarize(blurred + 0.1), torch.where(blurred + 0.1 > 7.5, 12.0, 3.0))
    assert symmetry_group("darcy", 16).name == "D4"


def _level_set_problem(resolution: int, observed: str, n_points: int):
    """Pairs drawn as the data generator draws them, measured exactly at ``n_points`` random nodes."""
    from pdeinv.operators import PointObservation, random_points
    from pdeinv.sampling import InverseProblem

    operator = Darcy(resolution)
    level_set = darcy_level_set_grf(resolution).sample(3, torch.Generator().manual_seed(4)).float()
    permeability = darcy_permeability(level_set)
    pressure = operator.A(permeability)
    sensor = PointObservation(resolution, indices=random_points(n_points, resolution, seed=2))
    measured = permeability if observed == "input" else pressure
    target = "output" if observed == "input" else "input"
    problem = InverseProblem(
        operator, sensor, sensor.A(measured), observed, target, "permeability", "pressure", "darcy"
    )
    return problem, permeability, pressure


def test_smooth_permeability_thresholds_like_the_data_and_tends_to_it():
    from pdeinv.datasets.grf import smooth_darcy_permeability

    mu = torch.linspace(-1.0, 1.0, 201)
    smooth = smooth_darcy_permeability(mu, width=0.01)
    assert torch.equal(smooth > 7.5, darcy_permeability(mu) > 7.5)
    far = mu.abs() > 0.2
    assert torch.allclose(smooth[far], darcy_permeability(mu)[far], atol=1e-6)


def test_level_set_map_recovers_binary_permeability_from_pressure():
    from pdeinv.sampling import MethodOptions, solve

    problem, permeability, _ = _level_set_problem(24, "output", n_points=120)
    result = solve("adjoint", problem, MethodOptions(batch_size=3))
    wrong = ((result.mean > 7.5) != (permeability > 7.5)).double().mean(dim=(1, 2, 3))
    chance = torch.minimum((permeability > 7.5).double().mean(dim=(1, 2, 3)), (permeability < 7.5).double().mean(
        dim=(1, 2, 3)))
    assert float(wrong.max()) < 0.25 * float(chance.min()), (wrong, chance)


def test_level_set_map_of_point_permeabilities_then_solve_predicts_pressure():
    from pdeinv.sampling import MethodOptions, solve

    problem, permeability, pressure = _level_set_problem(24, "input", n_points=120)
    result = solve("adjoint", problem, MethodOptions(batch_size=3))
    error = (result.mean - pressure).flatten(1).norm(dim=1) / pressure.flatten(1).norm(dim=1)
    mean_a = torch.full_like(permeability, 7.5)
    baseline = (problem.operator.A(mean_a) - pressure).flatten(1).norm(dim=1) / pressure.flatten(1).norm(dim=1)
    assert float(error.mean()) < 0.4 * float(baseline.mean()), (error, baseline)


def test_methods_solve_darcy_with_the_permeability_clamped_to_its_range():
    from pdeinv.priors.consistent import normalised_solve

    operator = Darcy(9)
    source = torch.linspace(-3.0, 3.0, 81, dtype=torch.float64).reshape(1, 1, 9, 9)
    mean, std = torch.tensor([7.5, 0.0], dtype=torch.float64), torch.tensor([4.5, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="positive"):
        operator.A(mean[0] + std[0] * source)
    solved = normalised_solve(operator, source, mean, std, 0, 1)
    assert torch.allclose(solved, operator.A((mean[0] + std[0] * source).clamp(3.0, 12.0)), rtol=1e-12, atol=0)


def test_an_estimated_input_is_solved_on_the_admissible_permeabilities():
    problem, _, _ = _level_set_problem(12, "input", n_points=40)
    estimate = torch.linspace(-5.0, 20.0, 144).reshape(1, 1, 12, 12)
    solved = problem.to_target("input")(estimate)
    assert torch.allclose(solved, problem.operator.A(estimate.clamp(3.0, 12.0)), rtol=1e-6, atol=0)
