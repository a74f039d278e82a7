"""Point sensors: exact reads, exact bilinear interpolation, adjointness, composition, noise, validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.observation import PointObservation, random_points

S = 17


def grid_axis(grid: str) -> torch.Tensor:
    return torch.arange(S, dtype=torch.float64) / (S - 1 if grid == "vertex" else S)


def bilinear_field(grid: str, c: tuple[float, float, float, float]) -> torch.Tensor:
    X, Y = torch.meshgrid(grid_axis(grid), grid_axis(grid), indexing="ij")
    return (c[0] + c[1] * X + c[2] * Y + c[3] * X * Y)[None, None]


def uniform(*shape: int, low: float = 0.0, high: float = 1.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(*shape, dtype=torch.float64, generator=generator)


def test_on_grid_points_read_the_field():
    indices = torch.tensor([[0, 0], [3, 11], [16, 2], [8, 8]])
    X, Y = torch.meshgrid(grid_axis("vertex"), grid_axis("vertex"), indexing="ij")
    field = torch.stack((torch.cos(3 * X) * Y, X - Y**2))[None]
    y = PointObservation(S, indices=indices).A(field)
    x, yy = indices[:, 0].double() / (S - 1), indices[:, 1].double() / (S - 1)
    expected = torch.stack((torch.cos(3 * x) * yy, x - yy**2))[None]
    assert y.shape == (1, 2, 4)
    assert float((y - expected).abs().max()) < 1e-15


@pytest.mark.parametrize("grid, high", [("vertex", 1.0), ("periodic", (S - 1) / S)])
def test_bilinear_interpolation_is_exact_on_bilinear_functions(grid, high):
    coefficients = (0.3, -1.2, 2.5, 0.7)
    coords = torch.cat((uniform(50, 2, high=high), torch.tensor([[0.0, 0.0], [high, high], [0.0, high]], dtype=torch.float64)))
    y = PointObservation(S, coords=coords, grid=grid).A(bilinear_field(grid, coefficients))
    x, yy = coords[:, 0], coords[:, 1]
    expected = coefficients[0] + coefficients[1] * x + coefficients[2] * yy + coefficients[3] * x * yy
    assert float((y[0, 0] - expected).abs().max()) < 1e-13


def test_periodic_interpolation_wraps_across_the_last_cell():
    field = uniform(1, 1, S, S, seed=4)
    j = 5
    coords = torch.tensor([[(S - 0.5) / S, j / S], [(S - 0.75) / S, (S - 0.5) / S]], dtype=torch.float64)
    y = PointObservation(S, coords=coords, grid="periodic").A(field)[0, 0]
    f = field[0, 0]
    assert float(y[0]) == pytest.approx(0.5 * (f[S - 1, j] + f[0, j]).item(), abs=1e-14)
    corner = 0.75 * 0.5 * (f[S - 1, S - 1] + f[S - 1, 0]) + 0.25 * 0.5 * (f[0, S - 1] + f[0, 0])
    assert float(y[1]) == pytest.approx(corner.item(), abs=1e-14)


@pytest.mark.parametrize("grid", ["vertex", "periodic"])
def test_coords_on_grid_nodes_equal_index_reads(grid):
    indices = random_points(30, S, seed=7)
    spacing = 1.0 / (S - 1 if grid == "vertex" else S)
    field = uniform(2, 3, S, S, seed=1)
    by_index = PointObservation(S, indices=indices, grid=grid)
    by_coords = PointObservation(S, coords=indices.double() * spacing, grid=grid)
    assert float((by_coords.A(field) - by_index.A(field)).abs().max()) < 1e-14
    np.testing.assert_allclose(by_index.coordinates.numpy(), by_coords.coordinates.numpy(), atol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"indices": random_points(60, S, seed=2)},
        {"coords": uniform(60, 2, seed=3), "grid": "vertex"},
        {"coords": uniform(60, 2, seed=3), "grid": "periodic"},
    ],
)
def test_deepinv_adjointness(kwargs):
    physics = PointObservation(S, **kwargs)
    assert float(physics.adjointness_test(u=uniform(1, 2, S, S), num_samples=4)) < 1e-6


def test_adjoint_of_ones_is_the_indicator_of_the_points():
    indices = random_points(25, S, seed=5)
    back = PointObservation(S, indices=indices).A_adjoint(torch.ones(1, 1, 25, dtype=torch.float64))
    expected = torch.zeros(S, S, dtype=torch.float64)
    expected[indices[:, 0], indices[:, 1]] = 1.0
    assert torch.equal(back[0, 0], expected)


def test_adjoint_spreads_bilinear_weights_to_the_cell_corners():
    physics = PointObservation(S, coords=torch.tensor([[2.25 / (S - 1), 7.5 / (S - 1)]], dtype=torch.float64))
    back = physics.A_adjoint(torch.ones(1, 1, 1, dtype=torch.float64))[0, 0]
    assert back[2, 7] == pytest.approx(0.75 * 0.5)
    assert back[2, 8] == pytest.approx(0.75 * 0.5)
    assert back[3, 7] == pytest.approx(0.25 * 0.5)
    assert back[3, 8] == pytest.approx(0.25 * 0.5)
    assert float(back.sum()) == pytest.approx(1.0, abs=1e-15)


def test_on_grid_pseudo_inverse_reproduces_measurements():
    physics = PointObservation(S, indices=random_points(40, S, seed=8))
    y = uniform(2, 1, 40, seed=9)
    assert float((physics.A(physics.A_dagger(y)) - y).abs().max()) == 0.0


def sparse_helmholtz_solve(a: np.ndarray, k: float) -> np.ndarray:
    n, h = S - 2, 1.0 / (S - 1)
    second = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1]) / h**2
    eye = sp.identity(n)
    matrix = (sp.kron(second, eye) + sp.kron(eye, second) + k**2 * sp.identity(n * n)).tocsc()
    u = np.zeros_like(a)
    u[1:-1, 1:-1] = spla.spsolve(matrix, a[1:-1, 1:-1].ravel()).reshape(n, n)
    return u


def test_composition_observes_the_helmholtz_solution():
    indices = random_points(30, S, seed=11, interior_only=True)
    physics = PointObservation(S, indices=indices) * Helmholtz(S, k=1.0)
    a = uniform(1, 1, S, S, low=-1.0, seed=12)
    u = sparse_helmholtz_solve(a[0, 0].numpy(), 1.0)
    expected = u[indices[:, 0].numpy(), indices[:, 1].numpy()]
    observed = physics.A(a)[0, 0].numpy()
    assert np.abs(observed - expected).max() / np.abs(expected).max() < 1e-10
    assert float(physics.adjointness_test(u=a, num_samples=4)) < 1e-6


def test_gaussian_noise_has_the_requested_level_and_is_reproducible():
    level = 0.05
    indices = random_points(250, S, seed=0)
    x = uniform(40, 2, S, S)

    def noisy():
        return PointObservation(S, indices=indices, noise_level=level, rng=torch.Generator().manual_seed(3))

    physics = noisy()
    residual = physics(x) - physics.A(x)
    # 20000 draws: the sample std is within 3 % of sigma with overwhelming probability.
    assert float(residual.std()) == pytest.approx(level, rel=0.03)
    assert abs(float(residual.mean())) < 4 * level / np.sqrt(residual.numel())
    assert torch.equal(noisy()(x), noisy()(x))
    assert torch.equal(PointObservation(S, indices=indices)(x), physics.A(x))


def test_dtype_channels_and_symmetries():
    physics = PointObservation(S, coords=uniform(10, 2))
    y = physics.A(uniform(3, 4, S, S).float())
    assert y.dtype == torch.float32 and y.shape == (3, 4, 10)
    assert len(physics.symmetries) == 1


def test_random_points_are_distinct_in_range_and_a_pure_function_of_the_seed():
    state = torch.get_rng_state()
    points = random_points(500, 128, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert points.dtype == torch.long and points.shape == (500, 2)
    assert torch.unique(points, dim=0).shape[0] == 500
    assert int(points.min()) >= 0 and int(points.max()) <= 127
    assert torch.equal(points, random_points(500, 128, seed=0))
    assert not torch.equal(points, random_points(500, 128, seed=1))
    interior = random_points(49, 9, seed=3, interior_only=True)
    assert int(interior.min()) == 1 and int(interior.max()) == 7
    assert torch.unique(interior, dim=0).shape[0] == 49


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"indices": [[0, 0]], "coords": [[0.0, 0.0]]}, "exactly one"),
        ({"indices": [[0, S]]}, r"\[0, 16\]"),
        ({"indices": [[-1, 2]]}, r"\[0, 16\]"),
        ({"indices": [[1, 2], [3, 4], [1, 2]]}, "duplicate"),
        ({"indices": [[1, 2, 3]]}, r"\(M, 2\)"),
        ({"indices": [1, 2]}, r"\(M, 2\)"),
        ({"indices": [[0.5, 1.0]]}, "integer"),
        ({"coords": [[0.5, 1.5]]}, r"\[0, 1\]\^2"),
        ({"coords": [[-0.1, 0.5]]}, r"\[0, 1\]\^2"),
        ({"coords": [[float("nan"), 0.5]]}, r"\[0, 1\]\^2"),
        ({"coords": [[1, 0]]}, "floating-point"),
        ({"coords": [[0.2, 0.3], [0.2, 0.3]]}, "duplicate"),
        ({"coords": [[0.0, 0.3], [1.0, 0.3]], "grid": "periodic"}, "duplicate"),
        ({"indices": [[0, 0]], "grid": "cell"}, "grid"),
        ({"indices": [[0, 0]], "noise_level": -0.1}, "noise_level"),
    ],
)
def test_bad_construction_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PointObservation(S, **kwargs)


def test_bad_fields_and_measurements_raise():
    physics = PointObservation(S, indices=[[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="resolution"):
        physics.A(torch.zeros(1, 1, S + 1, S + 1))
    with pytest.raises(ValueError, match=r"\(batch, channels, 2\)"):
        physics.A_adjoint(torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match=r"\(batch, channels, 2\)"):
        physics.A_adjoint(torch.zeros(1, 2))


@pytest.mark.parametrize("n_points, interior_only", [(0, False), (82, True), (S * S + 1, False)])
def test_random_points_rejects_impossible_counts(n_points, interior_only):
    with pytest.raises(ValueError, match="n_points"):
        random_points(n_points, 11 if interior_only else S, seed=0, interior_only=interior_only)
