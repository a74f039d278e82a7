"""The method registry: every method runs on a tiny problem, a new method registers from here, and
two implementations of DPS (pdeinv's EDM mapping and deepinv's VP sampler) agree.

The tiny problem is a Helmholtz inverse problem on an 8 x 8 grid with an exact joint Gaussian prior
over (source, solution) (dense linear algebra), in field space and behind a linear 'latent' space.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest
import torch

from pdeinv.bench.tasks import get_task
from pdeinv.datasets import helmholtz_source_grf
from pdeinv.operators import Helmholtz, PointObservation, random_points
from pdeinv.priors import load
from pdeinv.priors.base import FieldPrior
from pdeinv.priors.consistent import OperatorConsistentPrior, consistent_if_linear
from pdeinv.priors.edm import GaussianPart
from pdeinv.sampling import InverseProblem, MethodOptions, Reconstruction, solve
from pdeinv.sampling.methods import METHODS, MODIFIERS, configure, method_config, method_names, register, split_method

from dense import ScaledSpace, as_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

S = 8


class JointGaussian(FieldPrior):
    """Exact denoiser of (a, A a), a ~ N(0, C), on standardised channels (dense, for tiny grids)."""

    is_gaussian = True

    def __init__(self, grf, operator):
        cov, a = as_matrix(grf.covariance, S), as_matrix(operator.A, S)
        std = [float(torch.diagonal(cov).mean().sqrt()), float(torch.diagonal(a @ cov @ a.T).mean().sqrt())]
        super().__init__(("source", "solution"), mean=[0.0, 0.0], std=std, resolution=S)
        self.cov, self.a = cov, a

    def denoise(self, x, sigma):
        std = self.std.double()
        sigma = float(torch.as_tensor(sigma).reshape(-1)[0])
        n_a, n_u = (sigma * std[0]) ** 2, (sigma * std[1]) ** 2
        x_a, x_u = (x[:, c].reshape(len(x), -1).double() * std[c] for c in (0, 1))
        eye = torch.eye(S * S, dtype=torch.float64)
        gain = eye / n_a + self.a.T @ self.a / n_u
        mean_a = torch.linalg.solve(eye + self.cov @ gain, self.cov @ (x_a / n_a + x_u @ self.a / n_u).T).T
        return torch.stack([mean_a / std[0], mean_a @ self.a.T / std[1]], 1).reshape(x.shape).to(x.dtype)


class LatentJointGaussian(JointGaussian):
    """The same prior seen through :class:`~dense.ScaledSpace`: D_z(z, s) = 2 D_x(z / 2, s / 2)."""

    def __init__(self, grf, operator):
        super().__init__(grf, operator)
        self.space = ScaledSpace()

    def denoise(self, z, sigma):
        return 2.0 * super().denoise(0.5 * z, 0.5 * torch.as_tensor(sigma))


@pytest.fixture(scope="module")
def tiny():
    grf, operator = helmholtz_source_grf(S), Helmholtz(S)
    sources = grf.sample(2, torch.Generator().manual_seed(0), dtype=torch.float64)
    sensor = PointObservation(S, indices=random_points(6, S, seed=0))
    problem = InverseProblem(
        operator, sensor, sensor.A(operator.A(sources)), "output", "input", "source", "solution", "helmholtz", grf
    )
    return problem, JointGaussian(grf, operator), LatentJointGaussian(grf, operator)


LATENT = ("latent-dps", "psld", "resample")
ONE_STEP = {"resample": {"iterations": 2}}  # ReSample's 500 AdamW iterations are not needed to run one step


def test_every_registered_method_runs_one_step(tiny):
    problem, field_prior, latent_prior = tiny
    for name in sorted(METHODS):
        prior = latent_prior if name in LATENT else field_prior
        options = MethodOptions(steps=2 if name == "deepinv-dps" else 1, samples=3, prior=prior, seed=0)
        posed = dataclasses.replace(problem, target="output") if name == "pinv" else problem  # pinv inverts P only
        config = dataclasses.replace(configure(name, posed, options), **ONE_STEP.get(name, {}))
        result = solve(name, posed, options, config=config)
        assert result.mean.shape == (problem.n, 1, S, S), name
        assert torch.isfinite(result.mean).all(), name


def test_suffixes_compose_and_are_recorded(tiny):
    problem, field_prior, _ = tiny
    options = MethodOptions(steps=3, prior=field_prior, equireg_weight=0.02)
    config = method_config("fundps+equireg", problem, options)
    assert config["name"] == "FunDPSConfig" and config["steps"] == 3
    (equireg,) = config["modifiers"]
    assert equireg["alpha"] == 0.02 and equireg["group"] == "paper"
    method, suffixes = split_method("psld+repa+equireg")
    assert method.name == "psld" and suffixes == ("+repa", "+equireg")
    assert {"+equireg", "+equireg-d4", "+repa"} <= set(MODIFIERS)
    result = solve("dps+equireg-d4", problem, MethodOptions(steps=2, prior=field_prior))
    assert torch.isfinite(result.mean).all()
    with pytest.raises(ValueError, match="applies to diffusion methods"):
        split_method("kriging+equireg")
    with pytest.raises(ValueError, match="unknown suffix"):
        split_method("dps+nothing")
    with pytest.raises(ValueError, match="unknown method"):
        solve("dsp", problem, options)
    with pytest.raises(ValueError, match="takes a FunDPSConfig"):
        solve("fundps", problem, options, config=configure("dps"))


@dataclass(frozen=True)
class PaddingConfig:
    """A test method's one parameter."""

    value: float = 0.25


@pytest.fixture
def registered():
    @register("test-constant", PaddingConfig, kind="baseline")
    def constant(problem, config, options) -> Reconstruction:
        return Reconstruction(torch.full((problem.n, 1, problem.resolution, problem.resolution), config.value))

    yield constant
    del METHODS["test-constant"]


def test_a_method_registered_here_runs_without_editing_the_package(tiny, registered):
    problem, _, _ = tiny
    assert "test-constant" in method_names()
    result = solve("test-constant", problem, MethodOptions())
    assert torch.equal(result.mean, torch.full((problem.n, 1, S, S), 0.25))
    assert method_config("test-constant") == {"name": "PaddingConfig", "value": 0.25}
    result = solve("test-constant", problem, MethodOptions(), config=PaddingConfig(2.0))
    assert float(result.mean.max()) == 2.0
    with pytest.raises(ValueError, match="already registered"):
        register("test-constant", PaddingConfig, kind="baseline")(registered)
    with pytest.raises(ValueError, match="cannot contain"):
        register("bad+name", PaddingConfig)
    with pytest.raises(ValueError, match="needs a 'modifiers' field"):
        register("bad-guided", PaddingConfig, kind="guided")


COMMAND_MODULES = ("commands.py", "evaluate_command.py")  # the CLI layer, above every package


def test_sampling_and_priors_do_not_import_the_latent_package():
    """The latent package plugs itself in; the layers above it never name it in an import."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "pdeinv"
    pattern = re.compile(r"^\s*(from pdeinv\.latent|import pdeinv\.latent|from pdeinv import latent)", re.M)
    offenders = [
        str(path.relative_to(root))
        for package in ("sampling", "priors")
        for path in (root / package).rglob("*.py")
        if path.name not in COMMAND_MODULES and pattern.search(path.read_text())
    ]
    assert offenders == []


def paired_difference(first: torch.Tensor, second: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the paired differences of two error vectors."""
    difference = first - second
    return float(difference.mean()), float(difference.std() / math.sqrt(len(difference)))


def relative(estimate, truth):
    return (estimate - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)


@pytest.mark.slow
def test_dps_and_deepinv_dps_agree_on_the_same_prior_and_data():
    """pdeinv's DPS on the EDM grid and deepinv's DPS on its VP grid, both with DPS's zeta = 1, on the
    Gaussian part of the Helmholtz prior at 64 x 64: their errors on 8 inverse problems agree within
    three standard errors of the paired difference, and both recover the source."""
    task = get_task("helmholtz-inverse-64")
    grf, operator = helmholtz_source_grf(64), Helmholtz(64)
    sources = grf.sample(8, torch.Generator().manual_seed(3), dtype=torch.float64)
    problem = task.problem(sources, operator.A(sources))
    network = load("helmholtz-joint")
    base = network.with_prior(GaussianPart(network.prior)) if isinstance(network, OperatorConsistentPrior) else None
    prior = base or consistent_if_linear(GaussianPart(network), operator, "source", "solution")
    options = MethodOptions(steps=1000, prior=prior, seed=0, batch_size=8)
    ours = relative(solve("dps", problem, options).mean, sources)
    theirs = relative(solve("deepinv-dps", problem, options).mean, sources)
    mean, error = paired_difference(ours, theirs)
    assert abs(mean) < 3 * error + 0.01, (ours, theirs)
    assert float(ours.mean()) < 0.35 and float(theirs.mean()) < 0.35


def test_bench_records_the_method_configuration(tmp_path):
    import json

    from pdeinv.bench.runner import BenchConfig, run_benchmark
    from pdeinv.datasets import generate, make_config

    data = generate(make_config("helmholtz", 64, 1, 2), tmp_path / "helmholtz_64_test.h5", progress=False)
    config = BenchConfig("helmholtz-inverse-64", "fundps+equireg", n=1, steps=2, data=str(data), gaussian_part=True)
    record = json.loads(json.dumps(run_benchmark(config)))
    recorded = record["method_config"]
    assert recorded["name"] == "FunDPSConfig" and recorded["steps"] == 2
    assert (recorded["obs_weight"], recorded["obs_loss"], recorded["paper_points"]) == (5000.0, "l2", 500)
    assert recorded["modifiers"] == [{"alpha": 0.01, "group": "paper", "feature_sigma": 0.05, "reduction": "norm"}]


def test_bench_counts_network_and_gaussian_part_evaluations_apart(tmp_path):
    """With --gaussian-above the record's NFE counts the network's evaluations only: a 2-step DPS run evaluates
    the prior at sigma = 315 (above the level 10: the Gaussian part), then twice at 0.02 (the network)."""
    import json

    from pdeinv.bench.runner import BenchConfig, run_benchmark, run_label
    from pdeinv.datasets import generate, make_config

    data = generate(make_config("helmholtz", 64, 1, 2), tmp_path / "helmholtz_64_test.h5", progress=False)
    config = BenchConfig("helmholtz-inverse-64", "dps", n=1, steps=2, data=str(data), gaussian_above=10.0)
    record = json.loads(json.dumps(run_benchmark(config)))
    plain = run_benchmark(dataclasses.replace(config, gaussian_above=None))
    assert plain["nfe"] == 3 and "gaussian_nfe" not in plain
    assert (record["nfe"], record["gaussian_nfe"], record["gaussian_above"]) == (2, 1, 10.0)
    assert run_label(record) == "dps (Gaussian part at sigma >= 10)"
    assert record["rel_l2"] != plain["rel_l2"]
    for bad, message in (({"gaussian_part": True}, "drop --gaussian-above"), ({"prior": "exact"}, "exact prior"),
                         ({"gaussian_above": -1.0}, "noise level > 0")):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(config, **bad)


def test_equireg_draws_its_elements_without_moving_the_samplers_noise(tiny):
    """The tiny prior is D4-equivariant, so a squared-norm EquiReg penalty is ~0 and its gradient too: with the
    elements drawn from the term's own generator, dps and dps+equireg give the same samples, batch after batch."""
    from pdeinv.sampling.methods.equireg import EquiRegConfig

    problem, field_prior, _ = tiny
    options = MethodOptions(steps=6, prior=field_prior, seed=4, batch_size=1)
    plain = solve("dps", problem, options)
    config = configure("dps", problem, options)
    config = dataclasses.replace(config, modifiers=(EquiRegConfig(group="d4", reduction="sqnorm"),))
    regularised = solve("dps", problem, options, config=config)
    assert torch.allclose(plain.mean, regularised.mean, rtol=1e-6, atol=1e-9 * float(plain.mean.abs().max()))
