"""Methods on small Helmholtz problems, and the bench plumbing (tasks, runs, tables, CLI, torchrun).

The diffusion methods run on a test-local *exact* joint Gaussian prior over (source, solution):
source a ~ N(0, C) (the Helmholtz source GRF), solution u = A a. Its denoiser is the exact
posterior mean of a given noisy a and noisy u (dense linear algebra on a 16 x 16 grid), so the
methods can be compared with the exact kriging posterior.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from pdeinv import cli
from pdeinv.bench.runner import BenchConfig, results_table, run_benchmark, run_label
from pdeinv.bench.tasks import get_task
from pdeinv.datasets import generate, helmholtz_source_grf, make_config, ns_vorticity_grf
from pdeinv.operators import Helmholtz, NavierStokes2D, PointObservation, random_points
from pdeinv.priors.base import FieldPrior
from pdeinv.sampling import InverseProblem, Kriging, KrigingObservation, LinearGaussianModel, MethodOptions, solve
from pdeinv.sampling.commands import build_problem
from pdeinv.sampling.measurements import read_measurements

from dense import as_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

S = 16
DESIGN_KEYS = {
    "task", "method", "n", "resolution", "rel_l2", "rel_l2_mean", "rel_l2_std",
    "seconds_per_sample", "nfe", "device", "version",
}  # fmt: skip


class DenseJointGaussianPrior(FieldPrior):
    """Exact denoiser of (a, A a), a ~ N(0, C), on per-channel standardised fields.

    With physical noise variances n_a = (sigma s_a)^2, n_u = (sigma s_u)^2 and B = I/n_a + A^T A/n_u,
    E[a | a + e_a, u + e_u] = (I + C B)^-1 C (x_a / n_a + A^T x_u / n_u), and E[u | ...] = A E[a | ...].
    """

    is_gaussian = True

    def __init__(self, grf, operator, channels=("source", "solution")):
        cov, a = as_matrix(grf.covariance, S), as_matrix(operator.A, S)
        std = [float(torch.diagonal(cov).mean().sqrt()), float(torch.diagonal(a @ cov @ a.T).mean().sqrt())]
        super().__init__(channels, mean=[0.0, 0.0], std=std, resolution=S)
        self.cov, self.a = cov, a

    def denoise(self, x, sigma):
        std = self.std.double()
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)[0]
        n_a, n_u = (sigma * std[0]) ** 2, (sigma * std[1]) ** 2
        x_a, x_u = (x[:, c].reshape(len(x), -1).double() * std[c] for c in (0, 1))
        eye = torch.eye(S * S, dtype=torch.float64)
        b = eye / n_a + self.a.T @ self.a / n_u
        mean_a = torch.linalg.solve(eye + self.cov @ b, self.cov @ (x_a / n_a + x_u @ self.a / n_u).T).T
        out = torch.stack([mean_a / std[0], mean_a @ self.a.T / std[1]], 1)
        return out.reshape(x.shape).to(x.dtype)


@pytest.fixture(scope="module")
def helmholtz_setting():
    grf, operator = helmholtz_source_grf(S), Helmholtz(S)
    sources = grf.sample(3, torch.Generator().manual_seed(0), dtype=torch.float64)
    points = random_points(24, S, seed=0)
    sensor = PointObservation(S, indices=points)
    solutions = operator.A(sources)
    problem = InverseProblem(
        operator, sensor, sensor.A(solutions), "output", "input", "source", "solution", "helmholtz", grf
    )
    prior = DenseJointGaussianPrior(grf, operator)
    return dict(grf=grf, operator=operator, sources=sources, problem=problem, prior=prior, points=points)


def relative(estimate, truth):
    return (estimate - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)


@pytest.mark.parametrize(
    "method, steps, nfe",
    [("dps", 50, 99), ("fundps", 50, 99), ("fundps+equireg", 50, 197), ("diffusionpde", 100, 199), ("daps", 40, 200)],
)
def test_diffusion_methods_recover_the_source(helmholtz_setting, method, steps, nfe):
    """Each preset beats the uninformed estimate (zero field, relative error 1) on the inverse problem."""
    from pdeinv.sampling.methods import configure

    setting = helmholtz_setting
    options = MethodOptions(steps=steps, samples=2, prior=setting["prior"], seed=1)
    config = configure(method, setting["problem"], options)
    if method == "diffusionpde":  # its zeta is a step of its 2000: keep the guidance those steps accumulate
        config = dataclasses.replace(config, zeta_obs=config.zeta_obs * 2000 / steps)
    result = solve(method, setting["problem"], options, config=config)
    assert result.mean.shape == (3, 1, S, S) and result.samples.shape == (3, 2, 1, S, S)
    assert torch.isfinite(result.samples).all() and result.nfe == nfe
    assert float(relative(result.mean, setting["sources"]).mean()) < 0.75


def test_deepinv_dps_runs_on_pdeinv_prior_and_operators(helmholtz_setting):
    setting = helmholtz_setting
    result = solve("deepinv-dps", setting["problem"], MethodOptions(steps=100, prior=setting["prior"], seed=0))
    assert result.mean.shape == (3, 1, S, S) and torch.isfinite(result.mean).all()
    assert result.nfe >= 99
    assert float(relative(result.mean, setting["sources"]).mean()) < 1.0


def test_adjoint_map_equals_kriging_with_the_same_noise_level(helmholtz_setting):
    setting = helmholtz_setting
    problem = setting["problem"]
    result = solve("adjoint", problem, MethodOptions(steps=1000))
    level = 1e-2 * float(problem.measurements.pow(2).mean().sqrt())
    model = LinearGaussianModel.from_grf(setting["grf"], setting["operator"])
    exact = Kriging(model, [KrigingObservation(problem.sensor, "output", level)], "input").mean([problem.measurements])
    assert float(relative(result.mean, exact).max()) < 1e-5


def test_interpolate_then_solve_is_exact_for_affine_inputs():
    operator = Helmholtz(S)
    corners = torch.tensor([[0, 0], [0, S - 1], [S - 1, 0], [S - 1, S - 1]])
    points = torch.unique(torch.cat([corners, random_points(20, S, seed=3)]), dim=0)
    sensor = PointObservation(S, indices=points)
    axis = torch.arange(S, dtype=torch.float64) / (S - 1)
    affine = (1.0 + 2.0 * axis[:, None] - 3.0 * axis[None, :]).expand(2, 1, S, S)
    problem = InverseProblem(operator, sensor, sensor.A(affine), "input", "output", "source", "solution", "helmholtz")
    result = solve("interp-solve", problem, MethodOptions())
    assert torch.allclose(result.mean, operator.A(affine), rtol=1e-10, atol=1e-12)


def test_methods_reject_mismatched_problems_and_priors(helmholtz_setting):
    setting = helmholtz_setting
    problem = setting["problem"]
    ns = NavierStokes2D(S, time=0.01, dt=0.01)
    ns_problem = InverseProblem(
        ns, problem.sensor, problem.measurements, "output", "input", "a", "b", "navier-stokes", ns_vorticity_grf(S)
    )
    with pytest.raises(ValueError, match="nonlinear"):
        solve("kriging", ns_problem, MethodOptions())
    with pytest.raises(ValueError, match="unknown method 'dpss'"):
        solve("dpss", problem, MethodOptions())
    with pytest.raises(ValueError, match=r"\+equireg applies to diffusion methods"):
        solve("kriging+equireg", problem, MethodOptions())
    vorticity_prior = DenseJointGaussianPrior(setting["grf"], setting["operator"], ("vorticity[0]", "vorticity[-1]"))
    with pytest.raises(ValueError, match="joint prior over"):
        solve("fundps", problem, MethodOptions(prior=vorticity_prior))
    with pytest.raises(ValueError, match="diffusion methods need a prior"):
        solve("dps", problem, MethodOptions())
    bad = problem.measurements.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        InverseProblem(problem.operator, problem.sensor, bad, "output", "input", "source", "solution", "helmholtz")
    with pytest.raises(ValueError, match="sensor has 24 points"):
        InverseProblem(
            problem.operator, problem.sensor, bad[..., :20], "output", "input", "source", "solution", "helmholtz"
        )


def ns_inverse_problem(n_points: int = 40, dt: float = 1e-3) -> tuple[InverseProblem, torch.Tensor]:
    """Noise-free sparse w(T) of two GRF initial vorticities on a 16 x 16 torus, T = 0.2."""
    grf = ns_vorticity_grf(S)
    w0 = grf.sample(2, generator=torch.Generator().manual_seed(3)).float()
    ns = NavierStokes2D(S, time=0.2, dt=dt)
    sensor = PointObservation(S, indices=random_points(n_points, S, seed=0))
    problem = InverseProblem(ns, sensor, sensor.A(ns.A(w0)), "output", "input", "a", "b", "navier-stokes", grf)
    return problem, w0


def test_adjoint_inversion_through_navier_stokes_is_a_stationary_point_of_its_objective():
    """With ``solver_dt`` the MAP runs on the coarse solve; its gradient there (by ``A_vjp``) vanishes."""
    problem, w0 = ns_inverse_problem()
    result = solve("adjoint", problem, MethodOptions(steps=300, solver_dt=1e-2))
    coarse = problem.with_solver_dt(1e-2)
    grf, y = problem.input_prior, problem.measurements
    level = 1e-2 * float(y.pow(2).mean().sqrt())

    def gradient(xi: torch.Tensor) -> torch.Tensor:
        w = grf.covariance_sqrt(xi)
        misfit = (problem.sensor.A(coarse.operator.A(w)) - y) / level
        return xi + grf.covariance_sqrt(coarse.operator.A_vjp(w, problem.sensor.A_adjoint(misfit / level)))

    xi = torch.linalg.lstsq(
        as_matrix(lambda v: grf.covariance_sqrt(v.float()).double(), S), result.mean.double().reshape(2, -1).T
    ).solution.T.reshape(2, 1, S, S).float()
    at_zero, at_map = gradient(torch.zeros_like(xi)).norm(), gradient(xi).norm()
    assert float(at_map / at_zero) < 1e-4
    assert float(relative(result.mean, w0).mean()) < 0.5


def test_solver_dt_is_refused_for_an_operator_without_time_steps(helmholtz_setting):
    with pytest.raises(ValueError, match="has none. Drop --solver-dt"):
        solve("adjoint", helmholtz_setting["problem"], MethodOptions(solver_dt=1e-2))
    with pytest.raises(ValueError, match="solver_dt must be a positive time step"):
        MethodOptions(solver_dt=-1.0)


def test_equireg_suffixes_name_the_group():
    from pdeinv.sampling.methods import configure, method_names, parse_method

    assert parse_method("tmpd+equireg-d4") == ("tmpd", "+equireg-d4")
    assert parse_method("fundps+repa+equireg") == ("fundps", "+equireg")
    assert parse_method("dps") == ("dps", None)
    assert {"tmpd+equireg", "tmpd+equireg-d4"} <= set(method_names())
    ns = NavierStokes2D(S, time=0.01, dt=0.01)
    sensor = PointObservation(S, indices=random_points(4, S, seed=0))
    problem = InverseProblem(ns, sensor, torch.zeros(1, 1, 4), "output", "input", "a", "b", "navier-stokes")
    (paper,) = configure("dps+equireg", problem).modifiers
    group, elements = paper.elements(problem)
    assert group is ns.symmetries and ns.symmetries.name != "D4" and elements == ns.symmetries.non_trivial()
    (square,) = configure("dps+equireg-d4", problem).modifiers
    assert square.elements(problem)[0].name == "D4"


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "helmholtz_64_test.h5"
    return generate(make_config("helmholtz", 64, 2, 2), path, progress=False)


def test_bench_run_records_kriging_errors(test_file):
    record = run_benchmark(BenchConfig("helmholtz-inverse-64", "kriging", n=2, data=str(test_file)))
    assert DESIGN_KEYS <= set(record) and record["resolution"] == 64 and record["n_points"] == 123
    with h5py.File(test_file, "r") as f:
        sources = torch.from_numpy(f["t0_fields/source"][:2]).double()
        solutions = torch.from_numpy(f["t0_fields/solution"][:2]).double()
    task = get_task("helmholtz-inverse-64")
    sensor = PointObservation(64, indices=random_points(123, 64, seed=0))
    model = LinearGaussianModel.from_grf(helmholtz_source_grf(64), Helmholtz(64))
    mean = Kriging(model, [KrigingObservation(sensor, "output")], "input").mean([sensor.A(solutions)])
    assert task.observed == "output"
    assert record["rel_l2"] == pytest.approx(relative(mean, sources).tolist(), rel=1e-9)
    assert record["rel_l2_mean"] == pytest.approx(sum(record["rel_l2"]) / 2)
    assert record["nfe"] == 0 and record["processes"] == 1


def test_bench_errors_name_the_fix(tmp_path, test_file):
    missing = tmp_path / "nowhere.h5"
    with pytest.raises(FileNotFoundError, match="pdeinv data generate helmholtz --resolution 64 --n 64 --seed 2"):
        run_benchmark(BenchConfig("helmholtz-inverse-64", "kriging", n=2, data=str(missing)))
    with pytest.raises(ValueError, match="needs poisson at 64 x 64"):
        run_benchmark(BenchConfig("poisson-inverse-64", "kriging", n=2, data=str(test_file)))
    with pytest.raises(ValueError, match="unknown task"):
        BenchConfig("helmholtz-sideways", "kriging")
    with pytest.raises(ValueError, match="unknown method"):
        BenchConfig("helmholtz-inverse-64", "magic")
    with pytest.raises(ValueError, match="has 2 samples"):
        run_benchmark(BenchConfig("helmholtz-inverse-64", "kriging", n=5, data=str(test_file)))


def test_bench_cli_writes_json_and_table(tmp_path, test_file, capsys):
    out = tmp_path / "run.json"
    args = ["bench", "--task", "helmholtz-forward-64", "--method", "interp-solve", "--n", "2"]
    assert cli.main(args + ["--data", str(test_file), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert DESIGN_KEYS <= set(record) and len(record["rel_l2"]) == 2
    assert cli.main(["bench", "--table", str(out), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| helmholtz-forward-64 | interp-solve | - | - | 2 |" in table
    assert f"{100 * record['rel_l2_mean']:.2f}" in results_table([record])
    before = out.read_bytes()
    assert cli.main(args + ["--data", str(tmp_path / "none.h5"), "--out", str(out), "--overwrite"]) == 1
    assert "pdeinv data generate helmholtz" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.slow
def test_torchrun_shards_and_gathers_one_json(tmp_path, test_file):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    single, sharded = tmp_path / "single.json", tmp_path / "sharded.json"
    common = ["bench", "--task", "helmholtz-inverse-64", "--method", "kriging", "-n", "2", "--data", str(test_file)]
    assert cli.main(common + ["--out", str(single)]) == 0
    command = [torchrun, "--nproc_per_node", "2", "-m", "pdeinv.cli", *common, "--out", str(sharded)]
    subprocess.run(command, check=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    one, two = json.loads(single.read_text()), json.loads(sharded.read_text())
    assert two["processes"] == 2 and two["n"] == 2
    assert two["rel_l2"] == pytest.approx(one["rel_l2"], rel=1e-9)


def write_npz(path, values, mask, **extra):
    np.savez(path, values=values.numpy(), mask=mask.numpy(), **extra)
    return path


def test_solve_cli_round_trip_with_kriging(tmp_path, helmholtz_setting):
    setting = helmholtz_setting
    mask = torch.zeros(S, S, dtype=torch.bool)
    points = random_points(30, S, seed=9, interior_only=True)
    mask[points[:, 0], points[:, 1]] = True
    solutions = setting["operator"].A(setting["sources"][:2])
    values = solutions[:, 0][:, mask]
    path = write_npz(tmp_path / "y.npz", values, mask, pde="helmholtz", observed="output")
    out = tmp_path / "result.h5"
    assert cli.main(["solve", "--measurements", str(path), "--method", "kriging", "--out", str(out)]) == 0
    result = xr.open_dataset(out, engine="h5netcdf")
    sensor = PointObservation(S, indices=torch.nonzero(mask))
    model = LinearGaussianModel.from_grf(setting["grf"], setting["operator"])
    kriging = Kriging(model, [KrigingObservation(sensor, "output")], "input")
    expected = kriging.mean([sensor.A(solutions)])[:, 0].numpy()
    assert result["mean"].dims == ("measurement", "x", "y")
    assert abs(result["mean"].values - expected).max() < 1e-10
    assert abs(result["std"].values[0] - kriging.variance()[0, 0].sqrt().numpy()).max() < 1e-10
    assert result.attrs["recovered_field"] == "source" and result.attrs["nfe"] == 0
    result.close()
    assert (tmp_path / "result.png").stat().st_size > 1000


def test_solve_rejects_bad_measurement_files(tmp_path, helmholtz_setting, capsys):
    mask = torch.zeros(S, S, dtype=torch.bool)
    mask[3, 4] = mask[7, 9] = True
    values = torch.tensor([0.1, float("nan")])
    nan_file = write_npz(tmp_path / "nan.npz", values, mask, pde="helmholtz", observed="output")
    assert cli.main(["solve", "--measurements", str(nan_file), "--method", "kriging", "--out", "x.h5"]) == 1
    assert "NaN" in capsys.readouterr().err
    wrong_count = write_npz(tmp_path / "count.npz", torch.ones(3), mask, pde="helmholtz", observed="output")
    with pytest.raises(ValueError, match="sensors define 2 points"):
        read_measurements(wrong_count)
    no_pde = write_npz(tmp_path / "nopde.npz", torch.ones(2), mask, observed="output")
    with pytest.raises(ValueError, match="pass --pde"):
        read_measurements(no_pde)
    small = torch.zeros(12, 12, dtype=torch.bool)
    small[2, 2] = True
    small_file = write_npz(tmp_path / "small.npz", torch.ones(1), small, pde="helmholtz", observed="output")
    with pytest.raises(ValueError, match="give the mask on the prior's grid"):
        build_problem(read_measurements(small_file), helmholtz_setting["prior"])
    assert cli.main(["solve", "--measurements", str(small_file), "--method", "fundps", "--out", "x.h5"]) == 2
    assert "needs a diffusion prior" in capsys.readouterr().err


def test_measurement_files_in_hdf5_with_indices(tmp_path):
    path = tmp_path / "y.h5"
    with h5py.File(path, "w") as f:
        f["values"] = [[1.0, 2.0], [3.0, 4.0]]
        f["indices"] = [[1, 2], [5, 6]]
        f.attrs.update(resolution=16, pde="poisson", observed="input", noise_std=0.01)
    measurements = read_measurements(path)
    assert measurements.values.shape == (2, 1, 2) and measurements.indices.tolist() == [[1, 2], [5, 6]]
    assert (measurements.pde, measurements.observed, measurements.noise_std) == ("poisson", "input", 0.01)
    assert read_measurements(path, observed="output").observed == "output"


def test_guided_solve_on_a_measurement_file(tmp_path, helmholtz_setting):
    """The solve path with a diffusion method (exact joint prior): samples fit the sensors better than zero."""
    setting = helmholtz_setting
    problem, points = setting["problem"], setting["points"]
    mask = torch.zeros(S, S, dtype=torch.bool)
    mask[points[:, 0], points[:, 1]] = True
    values = problem.measurements[:, 0, torch.argsort(points[:, 0] * S + points[:, 1])]
    path = write_npz(tmp_path / "y.npz", values, mask, pde="helmholtz", observed="output")
    rebuilt = build_problem(read_measurements(path), setting["prior"])
    result = solve("fundps", rebuilt, MethodOptions(steps=50, samples=2, prior=setting["prior"]))
    assert float(relative(result.mean, setting["sources"]).mean()) < 0.75
    dataset = result.describe(rebuilt, method="fundps").to_xarray()
    assert dataset["samples"].shape == (3, 2, S, S) and dataset["point_x"].shape == (24,)


@pytest.mark.slow
def test_demo_runs_and_writes_a_figure(tmp_path, capsys):
    assert cli.main(["demo", "--n", "1", "--steps", "3", "--samples", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "kriging" in printed and "+equireg" in printed
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_results_table_marks_raw_prior_and_gaussian_part_runs_apart():
    base = {"task": "t", "method": "dps", "n": 2, "rel_l2_mean": 0.5, "rel_l2_std": 0.1, "seconds_per_sample": 1.0,
            "nfe": 9, "device": "cpu", "steps": 5, "prior": "helmholtz-joint"}
    table = results_table([base, {**base, "raw_prior": True}, {**base, "gaussian_part": True}])
    assert "| dps | helmholtz-joint | 5 |" in table and "| dps | helmholtz-joint (raw) | 5 |" in table
    assert "| dps | helmholtz-joint (Gaussian part) | 5 |" in table
    assert run_label({**base, "raw_prior": True, "gaussian_part": True}) == "dps (raw, Gaussian part)"
    solved = {**base, "method": "dwgf", "particle_state": "solved", "solver_dt": 0.01}
    assert run_label(solved) == "dwgf (solved state, solver dt 0.01)"
    assert "| dps (mean of 4 samples) | helmholtz-joint | 5 |" in results_table([{**base, "samples": 4}])
    switched = {**base, "gaussian_above": 0.5, "gaussian_nfe": 4}
    assert "| dps | helmholtz-joint (Gaussian part at sigma >= 0.5) | 5 |" in results_table([switched])
    assert "| 1 | 9 (+4 Gaussian part) | cpu |" in results_table([switched])


def test_results_table_shows_a_non_default_equireg_weight():
    base = {"task": "t", "method": "tmpd+equireg", "n": 2, "rel_l2_mean": 0.5, "rel_l2_std": 0.1,
            "seconds_per_sample": 1.0, "nfe": 9, "device": "cpu", "steps": 5, "prior": "ns-joint"}
    table = results_table([{**base, "equireg_weight": 0.01}, {**base, "equireg_weight": 100.0}])
    assert "| tmpd+equireg | ns-joint |" in table and "| tmpd+equireg (λ=100) | ns-joint |" in table


def test_results_table_shows_non_default_repa_settings():
    base = {"task": "t", "method": "latent-dps+repa", "n": 2, "rel_l2_mean": 0.5, "rel_l2_std": 0.1,
            "seconds_per_sample": 1.0, "nfe": 9, "device": "cpu", "steps": 5, "prior": "ns-latent-repa"}
    table = results_table([
        {**base, "repa_weight": None, "repa_step": None, "repa_cutoff": 1.0},
        {**base, "repa_weight": 0.2, "repa_step": 1.0, "repa_cutoff": 0.6},
    ])
    assert "| latent-dps+repa | ns-latent-repa |" in table
    assert "| latent-dps+repa (repa weight 0.2, step 1, cutoff 0.6) | ns-latent-repa |" in table
    earlier = results_table([{**base, "repa_weight": 0.05, "repa_cutoff": 1.0}])  # before repa_step was recorded
    assert "latent-dps+repa (earlier form: weight 0.05 per 1000 steps, proxy cutoff 1)" in earlier
    with pytest.raises(ValueError, match="repa_cutoff"):
        MethodOptions(repa_cutoff=1.5)
    with pytest.raises(ValueError, match="repa_weight"):
        MethodOptions(repa_weight=-1.0)
    with pytest.raises(ValueError, match="repa_step"):
        MethodOptions(repa_step=0.0)


def test_tmpd_model_error_is_small_for_a_gaussian_prior_or_a_linear_pde(helmholtz_setting):
    # Tweedie moment projection is exact for a Gaussian prior and nearly so on a linear PDE's Gaussian
    # data; a network prior of a nonlinear PDE gets the larger model error (TMPD_MODEL_ERROR).
    from pdeinv.sampling.methods.tmpd import TMPD_MODEL_ERROR, TMPDConfig, tmpd_sampler_units

    class NetworkLike(DenseJointGaussianPrior):
        is_gaussian = False

    setting = helmholtz_setting
    linear = setting["problem"].select(torch.arange(1))
    nonlinear = linear.select(torch.arange(1))
    nonlinear.operator = object()  # not a deepinv LinearPhysics
    network = NetworkLike(setting["grf"], setting["operator"])
    noise = {}
    for name, problem, prior in (
        ("gaussian, nonlinear", nonlinear, setting["prior"]),
        ("network, nonlinear", nonlinear, network),
        ("network, linear", linear, network),
    ):
        (term,) = tmpd_sampler_units(problem, TMPDConfig(steps=2), prior).terms(problem.measurements)
        noise[name] = term.noise_std
    small, large = TMPD_MODEL_ERROR[True], TMPD_MODEL_ERROR[False]
    assert noise == {"gaussian, nonlinear": small, "network, nonlinear": large, "network, linear": small}
