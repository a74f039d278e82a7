"""deepinv's own solvers run on pdeinv's operators and reach independently computed optima."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from deepinv.optim import L2, Tikhonov, optim_builder

from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.observation import PointObservation, random_points

RESOLUTION = 13


def dense_helmholtz(resolution: int, k: float) -> np.ndarray:
    """Dense matrix of a -> u on the full grid: inverse of the interior stencil, zero boundary rows/columns."""
    n, h = resolution - 2, 1.0 / (resolution - 1)
    second = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1]) / h**2
    eye = sp.identity(n)
    stencil = (sp.kron(second, eye) + sp.kron(eye, second) + k**2 * sp.identity(n * n)).toarray()
    interior = np.zeros((resolution, resolution), dtype=bool)
    interior[1:-1, 1:-1] = True
    flat = np.flatnonzero(interior)
    matrix = np.zeros((resolution**2, resolution**2))
    matrix[np.ix_(flat, flat)] = np.linalg.inv(stencil)
    return matrix


def test_pgd_with_tikhonov_converges_to_the_closed_form():
    k, lam = 1.0, 1e-2
    physics = Helmholtz(RESOLUTION, k=k)
    a = torch.randn(1, 1, RESOLUTION, RESOLUTION, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = physics.A(a)
    matrix = dense_helmholtz(RESOLUTION, k)
    normal = matrix.T @ matrix + lam * np.eye(RESOLUTION**2)
    expected = np.linalg.solve(normal, matrix.T @ y.flatten().numpy())
    lipschitz = np.linalg.norm(matrix, 2) ** 2
    model = optim_builder(
        "PGD",
        max_iter=60,
        params_algo={"stepsize": 1.0 / (lipschitz + lam), "lambda": lam},
        data_fidelity=L2(),
        prior=Tikhonov(),
        early_stop=False,
    )
    estimate = model(y, physics).flatten().numpy()
    assert np.abs(estimate - expected).max() / np.abs(expected).max() < 1e-8


@pytest.mark.parametrize("solver", ["minres", "lsqr"])
def test_least_squares_prox_on_composed_sensor_and_solver(solver):
    gamma = 1e4
    helmholtz = Helmholtz(RESOLUTION, k=2.0)
    indices = random_points(40, RESOLUTION, seed=3)
    physics = PointObservation(RESOLUTION, indices=indices) * helmholtz
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(1, 1, RESOLUTION, RESOLUTION, dtype=torch.float64, generator=generator)
    y = torch.randn(1, 1, 40, dtype=torch.float64, generator=generator)
    sensor = np.zeros((40, RESOLUTION**2))
    sensor[np.arange(40), indices[:, 0].numpy() * RESOLUTION + indices[:, 1].numpy()] = 1.0
    forward = sensor @ dense_helmholtz(RESOLUTION, 2.0)
    normal = gamma * forward.T @ forward + np.eye(RESOLUTION**2)
    expected = np.linalg.solve(normal, z.flatten().numpy() + gamma * forward.T @ y.flatten().numpy())
    estimate = physics.prox_l2(z, y, gamma, solver=solver, max_iter=200, tol=1e-12).flatten().numpy()
    assert np.abs(estimate - expected).max() / np.abs(expected).max() < 1e-8
