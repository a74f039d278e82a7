"""Imaging bench tasks on Navier-Stokes fields: shapes, noise levels, methods end to end.

Fields are drawn in-process from the task's Gaussian random field (no data files). The diffusion
methods run on a test-local exact two-channel prior (a mixture of isotropic Gaussians with the
channel names of ``ns-joint``), so a run takes a fraction of a second.
"""

from __future__ import annotations

import pytest
import torch

from pdeinv.bench.tasks import IMAGING_NOISE, TASKS, get_task
from pdeinv.datasets import ns_vorticity_grf
from pdeinv.priors.mixture import GaussianMixturePrior
from pdeinv.sampling import MethodOptions, solve

SHAPES_64 = {
    "ns-deblur-64": (1, 64, 64),
    "ns-inpaint-box-64": (1, 64, 64),
    "ns-inpaint-random-64": (1, 64, 64),
    "ns-sr4-64": (1, 16, 16),
    "ns-phase-retrieval-64": (1, 128, 128),
}


def _fields(n: int, resolution: int = 64) -> torch.Tensor:
    return ns_vorticity_grf(resolution).sample(n, torch.Generator().manual_seed(3)).double()


def test_every_imaging_task_has_both_tiers():
    for name in SHAPES_64:
        assert name in TASKS and name.removesuffix("-64") in TASKS
        assert get_task(name.removesuffix("-64")).resolution == 128


@pytest.mark.parametrize("name", sorted(SHAPES_64))
def test_measurements_have_documented_shape_and_noise(name):
    task = get_task(name)
    fields = _fields(6)
    problem = task.problem(fields, fields)
    assert tuple(problem.measurements.shape) == (6, *SHAPES_64[name])
    assert problem.observed == problem.target == "output" and problem.noise_std == IMAGING_NOISE
    noise = problem.measurements - problem.sensor.A(fields)
    if "inpaint" in name:
        observed = problem.sensor.mask.expand_as(noise) > 0
        assert int(observed[0].sum()) == task.n_points
        assert torch.all(noise[~observed] == 0)
        noise = noise[observed]
    assert abs(float(noise.std()) / IMAGING_NOISE - 1) < 0.05
    assert abs(float(noise.mean())) < 0.1 * IMAGING_NOISE


def test_noise_of_a_sample_does_not_depend_on_n():
    task = get_task("ns-deblur-64")
    fields = _fields(3)
    assert torch.equal(task.problem(fields, fields).measurements[:2], task.problem(fields[:2], fields[:2]).measurements)


def test_pinv_of_decimation_fits_the_measurements_below_the_noise_level():
    # Decimation is onto, so the least-squares inverse reproduces y: A(pinv(y)) = y, here up to deepinv's
    # conjugate-gradient tolerance, far below the noise the task adds.
    problem = get_task("ns-sr4-64").problem(_fields(2), _fields(2))
    reconstruction = solve("pinv", problem, MethodOptions())
    misfit = problem.sensor.A(reconstruction.mean) - problem.measurements
    assert float(misfit.abs().max()) < 0.1 * IMAGING_NOISE


def test_pinv_of_box_inpainting_is_the_zero_filled_measurement():
    problem = get_task("ns-inpaint-box-64").problem(_fields(2), _fields(2))
    reconstruction = solve("pinv", problem, MethodOptions())
    assert torch.allclose(reconstruction.mean, problem.measurements)


def test_pinv_refuses_problems_that_observe_another_field():
    fields = _fields(1)
    problem = get_task("ns-forward-64").problem(fields, fields)
    with pytest.raises(ValueError, match="observed == target"):
        solve("pinv", problem, MethodOptions())


@pytest.mark.parametrize("method", ["dps", "fundps", "daps"])
def test_diffusion_methods_run_on_an_imaging_task(method):
    task = get_task("ns-inpaint-box-64")
    truth = _fields(2)
    problem = task.problem(truth, truth)
    std = 0.2
    means = torch.stack([torch.zeros(2, 64, 64), torch.ones(2, 64, 64)]).double()
    prior = GaussianMixturePrior(means, component_std=1.0, channels=("vorticity[0]", "vorticity[-1]"))
    prior.std.fill_(std)
    steps = 2 if method == "daps" else 4
    reconstruction = solve(method, problem, MethodOptions(steps=steps, samples=2, prior=prior, batch_size=2))
    assert tuple(reconstruction.samples.shape) == (2, 2, 1, 64, 64)
    assert torch.isfinite(reconstruction.mean).all() and reconstruction.nfe > 0
