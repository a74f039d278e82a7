"""One's own problem end to end: pdeinv.reconstruct on own measurements, the sensor's noise, errors, netCDF out."""

import numpy as np
import pytest
import torch
import xarray as xr

import pdeinv
from pdeinv import cli
from pdeinv.datasets import helmholtz_source_grf
from pdeinv.errors import UsageError
from pdeinv.metrics import relative_l2
from pdeinv.operators import Helmholtz, PointObservation, Poisson, random_points
from pdeinv.sampling import InverseProblem

S, M, NOISE = 64, 200, 2e-4


@pytest.fixture(scope="module")
def own_data():
    """Four sources of the data's GRF, their solutions read at 200 points with noise std 2e-4 (solution std ~ 3e-3)."""
    sources = helmholtz_source_grf(S).sample(4, torch.Generator().manual_seed(3), dtype=torch.float64)
    sensor = PointObservation(S, indices=random_points(M, S, seed=0), noise_level=NOISE, rng=torch.Generator().manual_seed(1))
    physics = sensor * Helmholtz(S)
    return sources, sensor, physics, physics(sources)


def test_five_line_walkthrough_with_the_shipped_prior(own_data, tmp_path):
    sources, sensor, physics, y = own_data
    result = pdeinv.reconstruct(y[:1], physics, prior="helmholtz-joint", samples=2, steps=8)
    result.save(tmp_path / "source.nc")
    assert result.problem.noise_std == pytest.approx(NOISE, rel=1e-6) and result.problem.target == "input"
    assert float(relative_l2(result.mean, sources[:1])) < 0.6  # the prior mean (zero) has error 1
    with xr.open_dataset(tmp_path / "source.nc", engine="h5netcdf") as saved:
        assert saved["mean"].dims == ("measurement", "x", "y") and saved["samples"].shape == (1, 2, S, S)
        np.testing.assert_allclose(saved["x"].values, np.arange(S) / (S - 1))
        np.testing.assert_allclose(saved["point_x"].values, sensor.coordinates[:, 0].numpy())
        assert (saved.attrs["method"], saved.attrs["prior"]) == ("tmpd", "helmholtz-joint")
        assert saved.attrs["noise_std"] == pytest.approx(NOISE, rel=1e-6)
        assert (saved.attrs["observed_field"], saved.attrs["recovered_field"]) == ("solution", "source")
        np.testing.assert_allclose(saved["mean"].values, result.mean[:, 0].double().numpy())


def test_the_sensors_noise_is_used_and_a_mismatch_refused(own_data):
    """Kriging with the sensor's noise is the exact posterior mean; assuming exact data is worse on every field."""
    sources, sensor, physics, y = own_data
    with_noise = pdeinv.reconstruct(y, physics, method="kriging")
    exact_sensor = PointObservation(S, indices=random_points(M, S, seed=0))
    exact = pdeinv.reconstruct(y, exact_sensor * Helmholtz(S), method="kriging")
    assert exact.problem.noise_std == 0 and with_noise.problem.noise_std == pytest.approx(NOISE, rel=1e-6)
    assert (relative_l2(with_noise.mean, sources) < relative_l2(exact.mean, sources)).all()
    assert pdeinv.reconstruct(y, physics, method="kriging", noise_std=NOISE).problem.noise_std == NOISE
    with pytest.raises(UsageError, match="disagrees with the sensor's GaussianNoise"):
        pdeinv.reconstruct(y, physics, method="kriging", noise_std=1e-3)
    assert sensor.noise_level == pytest.approx(NOISE, rel=1e-6)


def test_roles_pde_and_names_are_inferred_or_refused(own_data):
    sources, sensor, physics, y = own_data
    with pytest.raises(UsageError, match="contradicts physics"):
        pdeinv.reconstruct(y, physics, method="kriging", observed="input")
    with pytest.raises(UsageError, match="pde='poisson' contradicts"):
        pdeinv.reconstruct(y, physics, method="kriging", pde="poisson")
    with pytest.raises(UsageError, match="the PDE operator must act first"):
        pdeinv.reconstruct(y, Helmholtz(S) * sensor, method="kriging")
    forward = pdeinv.reconstruct(sensor.A(sources), sensor, method="kriging", operator=Poisson(S))
    assert (forward.problem.pde, forward.problem.observed, forward.problem.target) == ("poisson", "input", "output")
    base = dict(operator=Helmholtz(S), sensor=sensor, measurements=y, observed="output", target="input",
                input_channel="source", output_channel="solution")
    with pytest.raises(UsageError, match="solves the helmholtz problem"):
        InverseProblem(**base, pde="poisson")
    with pytest.raises(UsageError, match="unknown PDE 'my-pde'"):
        InverseProblem(**base, pde="my-pde")
    with pytest.raises(UsageError, match="'input' or 'output'"):
        InverseProblem(**{**base, "observed": "solution"}, pde="helmholtz")


def test_one_relative_l2():
    from pdeinv.bench import tasks
    from pdeinv.latent import autoencoder

    assert tasks.relative_l2 is autoencoder.relative_l2 is pdeinv.relative_l2 is relative_l2
    assert float(relative_l2(np.array([[3.0, 4.0]]), np.array([[0.0, 5.0]]))[0]) == pytest.approx(np.sqrt(10) / 5)
    with pytest.raises(UsageError, match="zero everywhere"):
        relative_l2(torch.ones(1, 3), torch.zeros(1, 3))


def test_solve_defaults_to_the_best_measured_method_and_writes_netcdf(own_data, tmp_path, capsys):
    sources, sensor, physics, y = own_data
    mask = torch.zeros(S, S, dtype=torch.bool)
    points = random_points(M, S, seed=0)
    mask[points[:, 0], points[:, 1]] = True
    order = torch.argsort(points[:, 0] * S + points[:, 1])
    path = tmp_path / "y.npz"
    np.savez(path, values=y[:2, 0, order].numpy(), mask=mask.numpy(), pde="helmholtz", observed="output", noise_std=NOISE)
    assert cli.main(["solve", "--measurements", str(path), "--out", str(tmp_path / "r.nc")]) == 0
    assert "method: kriging" in capsys.readouterr().out
    with xr.open_dataset(tmp_path / "r.nc", engine="h5netcdf") as saved:
        assert saved.attrs["method"] == "kriging" and saved["mean"].shape == (2, S, S)
        expected = pdeinv.reconstruct(y[:2], physics, method="kriging").mean[:, 0].numpy()
        np.testing.assert_allclose(saved["mean"].values, expected, rtol=0, atol=1e-7 * np.abs(expected).max())


def test_each_recommended_method_cites_a_current_record_of_that_method():
    from pdeinv.api import RECOMMENDED_METHODS
    from pdeinv.bench import tables

    current, _ = tables.split_records(tables.read_results(tables.ROOT / "results"), tables.shipped_weights())
    records = {path.relative_to(tables.ROOT / "results").as_posix(): record for path, record in current}
    for (kind, direction, with_prior), choice in RECOMMENDED_METHODS.items():
        record = records.get(choice.result)
        assert record is not None, f"{choice.result} is not a current record under results/"
        assert record["method"] == choice.method and bool(record.get("prior")) == with_prior
        assert not record.get("gaussian_part")
        assert record.get("steps") == choice.options.get("steps")
        prefix = {"navier-stokes": "ns", "darcy": "darcy"}.get(kind, "helmholtz")
        assert record["task"].startswith(prefix) and direction in record["task"]


@pytest.mark.parametrize(
    ("observed", "with_prior", "method"),
    [("input", True, "tmpd-solve"), ("input", False, "interp-solve"),
     ("output", True, "tmpd-solve"), ("output", False, "adjoint")],
)
def test_a_darcy_problem_gets_the_darcy_recommendation(observed, with_prior, method):
    from pdeinv.api import recommended_method
    from pdeinv.operators import Darcy, PointObservation, random_points

    sensor = PointObservation(16, indices=random_points(20, 16, seed=0), noise_level=1e-3)
    physics, operator = (sensor, Darcy(16)) if observed == "input" else (sensor * Darcy(16), None)
    problem = pdeinv.api.build_problem(torch.zeros(1, 1, 20), physics, operator=operator)
    assert problem.pde == "darcy" and recommended_method(problem, with_prior).method == method
