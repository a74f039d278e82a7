"""Helmholtz/Poisson operator and the DST-I, checked against analytic and independent references."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeinv.operators.helmholtz import Helmholtz, Poisson, ResonanceWarning
from pdeinv.operators.sine_transform import dst1, dst1_2d, second_difference_eigenvalues


def sparse_operator(resolution: int, k: float) -> sp.csc_matrix:
    """Interior matrix of lap_h + k^2 (Dirichlet), assembled independently with scipy.sparse."""
    n, h = resolution - 2, 1.0 / (resolution - 1)
    second = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1]) / h**2
    eye = sp.identity(n)
    return (sp.kron(second, eye) + sp.kron(eye, second) + k**2 * sp.identity(n * n)).tocsc()


def sparse_solve(a: torch.Tensor, k: float) -> torch.Tensor:
    """Reference solution of every (batch, channel) slice with a sparse direct solve, zero boundary."""
    resolution = a.shape[-1]
    n = resolution - 2
    lu = spla.splu(sparse_operator(resolution, k))
    interior = a[..., 1:-1, 1:-1].reshape(-1, n * n).numpy()
    solved = np.stack([lu.solve(row) for row in interior]).reshape(*a.shape[:-2], n, n)
    out = torch.zeros_like(a)
    out[..., 1:-1, 1:-1] = torch.from_numpy(solved)
    return out


def manufactured(resolution: int, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """u = sin(pi x) sin(pi y) exp(xy) and a = lap u + k^2 u, both analytic."""
    x = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    f = torch.sin(math.pi * X) * torch.sin(math.pi * Y)
    g = torch.exp(X * Y)
    cross = Y * torch.cos(math.pi * X) * torch.sin(math.pi * Y) + X * torch.sin(math.pi * X) * torch.cos(math.pi * Y)
    laplacian = g * ((X**2 + Y**2 - 2 * math.pi**2) * f + 2 * math.pi * cross)
    u = f * g
    return u[None, None], (laplacian + k**2 * u)[None, None]


def random_field(*shape: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_dst1_matches_the_sine_sum(n):
    j = np.arange(1, n + 1)
    matrix = np.sqrt(2.0 / (n + 1)) * np.sin(np.pi * np.outer(j, j) / (n + 1))
    x = random_field(3, n, 4)
    expected = np.einsum("pj,bjc->bpc", matrix, x.numpy())
    np.testing.assert_allclose(dst1(x, dim=1).numpy(), expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dst1_2d(dst1_2d(x)).numpy(), x.numpy(), rtol=0, atol=1e-13)


def test_second_difference_eigenvalues_match_dense_eigensolver():
    n, h = 9, 0.1
    second = (np.diag(-2 * np.ones(n)) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)) / h**2
    expected = np.sort(np.linalg.eigvalsh(second))
    computed = np.sort(second_difference_eigenvalues(n, h).numpy())
    np.testing.assert_allclose(computed, expected, rtol=1e-12)


@pytest.mark.parametrize("k", [0.0, 1.0, 5.0])
def test_manufactured_solution_converges_at_second_order(k):
    errors = []
    for intervals in (16, 32, 64, 128):
        u, a = manufactured(intervals + 1, k)
        errors.append(float((Helmholtz(intervals + 1, k=k).A(a) - u).abs().max()))
    ratios = [coarse / fine for coarse, fine in zip(errors, errors[1:])]
    assert all(abs(ratio - 4.0) <= 0.3 for ratio in ratios), ratios


@pytest.mark.parametrize("k", [1.0, 7.5])
def test_fast_solver_matches_sparse_direct_solve(k):
    a = random_field(2, 3, 33, 33)
    u = Helmholtz(33, k=k).A(a)
    reference = sparse_solve(a, k)
    assert float((u - reference).abs().max() / reference.abs().max()) < 1e-10


def test_solution_is_zero_on_boundary_and_ignores_boundary_source():
    a = random_field(1, 2, 17, 17)
    changed = a.clone()
    changed[..., 0, :] += 5.0
    changed[..., :, -1] -= 3.0
    physics = Helmholtz(17)
    u = physics.A(a)
    ring = torch.ones(17, 17, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    assert float(u[..., ring].abs().max()) == 0.0
    assert float((physics.A(changed) - u).abs().max()) < 1e-15


def test_gradient_is_the_transpose_of_the_sparse_solve():
    a = random_field(1, 1, 17, 17, seed=1).requires_grad_(True)
    weights = random_field(1, 1, 17, 17, seed=2)
    (Helmholtz(17, k=2.0).A(a) * weights).sum().backward()
    # The sparse matrix is symmetric, so the transpose solve is a plain solve with the weights.
    expected = sparse_solve(weights, 2.0)
    assert float((a.grad - expected).abs().max() / expected.abs().max()) < 1e-10


@pytest.mark.parametrize("k", [0.0, 1.0, 6.0])
def test_deepinv_adjointness(k):
    x = random_field(1, 2, 24, 24)
    assert float(Helmholtz(24, k=k).adjointness_test(u=x, num_samples=4)) < 1e-6


def test_every_dihedral_element_commutes_in_float32():
    physics = Helmholtz(32, k=3.0)
    x = random_field(2, 2, 32, 32, dtype=torch.float32)
    errors = physics.symmetries.commutation_errors(physics.A, x)
    assert len(errors) == 8
    assert max(errors.values()) < 1e-5, errors


def test_pseudo_inverse_applies_the_stencil():
    a = random_field(2, 1, 17, 17)
    physics = Helmholtz(17, k=1.5)
    recovered = physics.A_dagger(sparse_solve(a, 1.5))
    assert float((recovered[..., 1:-1, 1:-1] - a[..., 1:-1, 1:-1]).abs().max()) < 1e-10
    assert float(recovered[..., 0, :].abs().max()) == 0.0
    u = random_field(2, 1, 17, 17, seed=3)
    projected = u.clone()
    projected[..., [0, -1], :] = 0.0
    projected[..., :, [0, -1]] = 0.0
    assert float((physics.A(physics.A_dagger(u)) - projected).abs().max()) < 1e-12


def test_residual_vanishes_on_the_reference_solution_and_matches_the_stencil():
    k = 2.0
    physics = Helmholtz(17, k=k)
    a = random_field(1, 1, 17, 17)
    u = sparse_solve(a, k)
    assert float(physics.residual(a, u).abs().max() / a.abs().max()) < 1e-12
    delta, h = 0.5, 1.0 / 16
    bumped = u.clone()
    bumped[..., 5, 7] += delta
    change = physics.residual(a, bumped) - physics.residual(a, u)
    assert abs(float(change[0, 0, 5, 7]) - delta * (k**2 - 4.0 / h**2)) < 1e-9
    for i, j in [(4, 7), (6, 7), (5, 6), (5, 8)]:
        assert abs(float(change[0, 0, i, j]) - delta / h**2) < 1e-9
    assert float(change.abs().sum()) == pytest.approx(delta * (abs(k**2 - 4.0 / h**2) + 4.0 / h**2), rel=1e-12)


def test_residual_is_differentiable():
    physics = Helmholtz(5, k=1.0)
    a = random_field(1, 1, 5, 5).requires_grad_(True)
    u = random_field(1, 1, 5, 5, seed=1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, u: physics.residual(a, u), (a, u))


def dense_dirichlet_eigenvalues(resolution: int) -> np.ndarray:
    """Ascending eigenvalues of -lap_h on the interior, from a dense eigensolver."""
    return np.sort(np.linalg.eigvalsh(-sparse_operator(resolution, 0.0).toarray()))


@pytest.mark.parametrize("index, modes", [(0, ["(1, 1)"]), (1, ["(1, 2)", "(2, 1)"])])
def test_resonant_wavenumber_raises_naming_the_mode(index, modes):
    eigenvalue = dense_dirichlet_eigenvalues(9)[index]
    with pytest.raises(ValueError, match="resonant") as info:
        Helmholtz(9, k=math.sqrt(eigenvalue * (1 + 1e-7)))
    assert any(mode in str(info.value) for mode in modes)
    named = float(re.search(r"eigenvalue ([0-9.eE+-]+)", str(info.value)).group(1))
    assert named == pytest.approx(eigenvalue, rel=1e-9)


def test_wavenumber_away_from_resonance_is_accepted():
    eigenvalue = dense_dirichlet_eigenvalues(9)[0]
    with pytest.warns(ResonanceWarning, match="near resonance"):
        physics = Helmholtz(9, k=math.sqrt(eigenvalue * (1 + 1e-4)))
    a = random_field(1, 1, 9, 9)
    reference = sparse_solve(a, physics.k)
    assert float((physics.A(a) - reference).abs().max() / reference.abs().max()) < 1e-8


def test_poisson_is_helmholtz_with_zero_wavenumber():
    physics = Poisson(33)
    assert physics.k == 0.0
    a = random_field(2, 1, 33, 33)
    reference = sparse_solve(a, 0.0)
    assert float((physics.A(a) - reference).abs().max() / reference.abs().max()) < 1e-10


def test_dtype_follows_input():
    physics = Helmholtz(17)
    a = random_field(1, 3, 17, 17, dtype=torch.float32)
    u = physics.A(a)
    assert u.dtype == torch.float32
    reference = sparse_solve(a.double(), 1.0)
    assert float((u.double() - reference).abs().max() / reference.abs().max()) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_matches_cpu():
    physics = Helmholtz(33)
    a = random_field(2, 1, 33, 33)
    u = physics.A(a.cuda())
    assert u.device.type == "cuda"
    assert float((u.cpu() - sparse_solve(a, 1.0)).abs().max()) < 1e-12


@pytest.mark.parametrize(
    "field, message",
    [
        (torch.zeros(17, 17), "4 dimensions"),
        (torch.zeros(1, 1, 33, 33), "resolution"),
        (torch.zeros(1, 1, 17, 17, dtype=torch.int64), "floating-point"),
        (torch.zeros(1, 1, 17, 16), "square"),
    ],
)
def test_bad_fields_raise(field, message):
    with pytest.raises(ValueError, match=message):
        Helmholtz(17).A(field)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resolution": 2}, "resolution"),
        ({"resolution": 17.0}, "resolution"),
        ({"resolution": 17, "k": float("nan")}, "finite real"),
        ({"resolution": 17, "k": "1"}, "finite real"),
    ],
)
def test_bad_construction_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Helmholtz(**kwargs)


def test_residual_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        Helmholtz(9).residual(torch.zeros(1, 1, 9, 9), torch.zeros(2, 1, 9, 9))
