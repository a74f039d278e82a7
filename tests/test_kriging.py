"""Kriging against brute-force dense Gaussian conditioning on tiny grids.

The dense reference forms the full covariance matrix C of the Helmholtz source GRF and the
matrix of the Helmholtz solution operator column by column, then conditions the joint Gaussian
with explicit matrices: mean = T mu + T C L^T (L C L^T + N)^-1 (y - L mu),
cov = T C T^T - T C L^T (L C L^T + N)^-1 L C T^T.
"""

from __future__ import annotations

import deepinv as dinv
import pytest
import torch

from pdeinv.datasets.grf import helmholtz_source_grf
from pdeinv.operators.blur import GaussianBlur
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.sampling.kriging import Kriging, KrigingObservation, LinearGaussianModel

from dense import as_matrix

S = 10


def dense_posterior(cov, observations, target):
    """Explicit-matrix conditioning; observations = [(H (M x N), noise_std, y (M,))]."""
    h = torch.cat([m for m, _, _ in observations])
    noise = torch.cat([torch.full((m.shape[0],), s**2, dtype=torch.float64) for m, s, _ in observations])
    y = torch.cat([v for _, _, v in observations])
    k = h @ cov @ h.T + torch.diag(noise)
    keep = torch.diagonal(k) > 0
    h, k, y = h[keep], k[keep][:, keep], y[keep]
    cross = target @ cov @ h.T
    mean = cross @ torch.linalg.solve(k, y)
    covariance = target @ cov @ target.T - cross @ torch.linalg.solve(k, cross.T)
    return mean, torch.diagonal(covariance)


@pytest.fixture(scope="module")
def setting():
    grf = helmholtz_source_grf(S)
    helmholtz = Helmholtz(S, k=1.0)
    cov = as_matrix(grf.covariance, S)
    a_matrix = as_matrix(helmholtz.A, S)
    source = grf.sample(1, torch.Generator().manual_seed(0), dtype=torch.float64)
    return dict(grf=grf, helmholtz=helmholtz, cov=cov, A=a_matrix, source=source, solution=helmholtz.A(source))


@pytest.mark.parametrize(
    "observed, target, noise_std",
    [
        (("input",), "input", 0.0),
        (("output",), "input", 0.0),
        (("input",), "output", 0.0),
        (("input", "output"), "output", 1e-3),
    ],
)
def test_kriging_equals_dense_conditioning(setting, observed, target, noise_std):
    model = LinearGaussianModel.from_grf(setting["grf"], setting["helmholtz"])
    identity = torch.eye(S * S, dtype=torch.float64)
    maps = {"input": identity, "output": setting["A"]}
    fields = {"input": setting["source"], "output": setting["solution"]}
    observations, dense, measurements = [], [], []
    for seed, channel in enumerate(observed):
        sensor = PointObservation(S, indices=random_points(20, S, seed=seed + 5))
        y = sensor.A(fields[channel])
        observations.append(KrigingObservation(sensor, channel, noise_std))
        measurements.append(y)
        dense.append((as_matrix(sensor.A, S) @ maps[channel], noise_std, y.flatten()))
    kriging = Kriging(model, observations, target)
    exact_mean, exact_variance = dense_posterior(setting["cov"], dense, maps[target])
    assert torch.allclose(kriging.mean(measurements).flatten(), exact_mean, rtol=1e-8, atol=1e-10)
    assert torch.allclose(kriging.variance().flatten(), exact_variance.clamp_min(0), rtol=1e-7, atol=1e-12)


def test_kriging_batches_measurements_and_interpolates_noise_free_data(setting):
    sensor = PointObservation(S, indices=random_points(15, S, seed=3, interior_only=True))
    kriging = Kriging(LinearGaussianModel.from_grf(setting["grf"]), [KrigingObservation(sensor)], "input")
    sources = setting["grf"].sample(3, torch.Generator().manual_seed(7), dtype=torch.float64)
    mean = kriging.mean([sensor.A(sources)])
    assert mean.shape == (3, 1, S, S)
    assert torch.allclose(sensor.A(mean), sensor.A(sources), atol=1e-9)
    assert float(sensor.A(kriging.variance()).abs().max()) < 1e-9


def test_bad_kriging_inputs_raise(setting):
    sensor = PointObservation(S, indices=random_points(5, S, seed=2, interior_only=True))
    model = LinearGaussianModel.from_grf(setting["grf"])
    with pytest.raises(ValueError, match="singular"):
        Kriging(model, [KrigingObservation(sensor), KrigingObservation(sensor)], "input")
    with pytest.raises(ValueError, match="linear operator"):
        Kriging(model, [KrigingObservation(sensor, "output")], "input")
    kriging = Kriging(model, [KrigingObservation(sensor)], "input")
    y = sensor.A(setting["source"])
    y[0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        kriging.mean([y])
    with pytest.raises(ValueError, match="target"):
        Kriging(model, [KrigingObservation(sensor)], "solution")
    blind = dinv.physics.Inpainting((1, S, S), mask=torch.zeros(1, S, S))
    with pytest.raises(ValueError, match="measure nothing"):
        Kriging(model, [KrigingObservation(blind, "input", 1e-3)], "input")


DEEPINV_SENSORS = {
    "inpainting": lambda: dinv.physics.Inpainting((1, S, S), mask=0.4, rng=torch.Generator().manual_seed(1)),
    "blur": lambda: dinv.physics.Blur(dinv.physics.blur.gaussian_blur(1.0), padding="circular"),
    "downsampling": lambda: dinv.physics.Downsampling((1, S, S), filter=None, factor=2, padding="circular"),
    "pdeinv-blur": lambda: GaussianBlur(S, sigma_px=1.0),
}


@pytest.mark.parametrize("make_sensor", list(DEEPINV_SENSORS))
@pytest.mark.parametrize("observed, target", [("output", "input"), ("input", "output")])
def test_kriging_with_a_linear_imaging_sensor_equals_dense_conditioning(setting, make_sensor, observed, target):
    """Mask, blur and decimation sensors (deepinv's float32 ones included) against explicit float64 matrices."""
    noise_std = 1e-4 if observed == "output" else 1e-2  # about 4 % of the solution's / 7 % of the source's std
    model = LinearGaussianModel.from_grf(setting["grf"], setting["helmholtz"])
    sensor = DEEPINV_SENSORS[make_sensor]()  # as built: deepinv keeps float32 filters and masks
    dtypes = [b.dtype for b in sensor.buffers()]
    reference = DEEPINV_SENSORS[make_sensor]()  # pdeinv's blur follows the field's dtype itself
    matrix = as_matrix((reference if make_sensor.startswith("pdeinv") else reference.to(torch.float64)).A, S)
    maps = {"input": torch.eye(S * S, dtype=torch.float64), "output": setting["A"]}
    fields = {"input": setting["source"], "output": setting["solution"]}
    exact = matrix @ fields[observed].flatten()
    y = exact + noise_std * torch.randn(exact.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kriging = Kriging(model, [KrigingObservation(sensor, observed, noise_std)], target)
    mean = kriging.mean([y.reshape(1, *sensor.A(torch.zeros(1, 1, S, S)).shape[1:])])
    dense = [(matrix @ maps[observed], noise_std, y)]
    exact_mean, exact_variance = dense_posterior(setting["cov"], dense, maps[target])
    assert torch.allclose(mean.flatten(), exact_mean, rtol=1e-8, atol=1e-10 * float(exact_mean.abs().max()))
    assert torch.allclose(kriging.variance().flatten(), exact_variance.clamp_min(0), rtol=1e-7, atol=1e-12)
    assert [b.dtype for b in sensor.buffers()] == dtypes  # kriging worked on a float64 copy, not the sensor itself
