"""Particle methods (RLSD, DWGF): kernel, terms, engine, latent plumbing, mode coverage, bench records.

References are closed forms: the RBF kernel and its gradient, the mixture prior's exact denoiser
(checked against Tweedie's formula by autograd of the noisy log-density), the particle-mixture
denoiser, the diversity of hand-made sample sets, and the modes of a posterior known exactly.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pdeinv.bench import runner
from pdeinv.bench.diversity import pairwise_cosine, pairwise_relative_distance
from pdeinv.bench.runner import BenchConfig, run_benchmark
from pdeinv.datasets import generate, make_config
from pdeinv.priors.mixture import GaussianMixturePrior
from pdeinv.sampling import MethodOptions, solve
from pdeinv.sampling.particles import (
    DWGFConfig,
    ParticleConfig,
    ParticleSolver,
    RLSDConfig,
    ScoreDistillation,
    dwgf_solver,
    kernel_matrix,
    log_kernel_sum,
    median_bandwidth,
    rlsd_solver,
    run_particles,
)
from pdeinv.sampling.particles.engine import ParticleStep
from pdeinv.sampling.particles.modes import AmbiguousMixture
from pdeinv.sampling.particles.terms import MixtureRegulariser, mixture_denoiser

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(particles, sigma=0.5, per_group=2, prior=None, noise=None):
    from pdeinv.sampling.sampler import FieldSpace

    step = ParticleStep(particles, None, sigma, 0, 1, per_group, prior, FieldSpace(), torch.Generator(), [0])
    if noise is not None:
        step.noise = noise
    return step


# kernel -------------------------------------------------------------------------------------------


def test_bandwidth_gives_non_zero_repulsion_for_two_particles():
    # h = d^2 / log 3, so k_12 = exp(-log 3) = 1/3 (the reference's log(N - 1) would give h = inf, k = 1).
    f = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]], dtype=torch.float64, requires_grad=True)
    k = kernel_matrix(f)
    assert k[0, 0, 1].item() == pytest.approx(1 / 3, rel=1e-12)
    potential = log_kernel_sum(f)
    assert potential[0, 0].item() == pytest.approx(-math.log(3), rel=1e-12)
    gradient = torch.autograd.grad(potential.sum(), f)[0]
    h = 25 / math.log(3)
    expected = -2 / h * (f[0, 0] - f[0, 1]).detach()  # moves particle 0 away from particle 1
    assert torch.allclose(gradient[0, 0], expected, rtol=1e-12)
    assert torch.allclose(gradient[0, 1], -expected, rtol=1e-12)


def test_repulsion_gradient_matches_its_closed_form_for_three_particles():
    f = torch.randn(2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f.requires_grad_(True)
    gradient = torch.autograd.grad(log_kernel_sum(f).sum(), f)[0]
    d2 = torch.cdist(f, f).detach() ** 2
    upper = torch.triu_indices(3, 3, offset=1)
    h = d2[:, upper[0], upper[1]].median(dim=1).values / math.log(4)
    for g in range(2):
        k = torch.exp(-d2[g] / h[g]).fill_diagonal_(0)
        weights = k / k.sum(1, keepdim=True)
        expected = -2 / h[g] * (weights.sum(1, keepdim=True) * f[g] - weights @ f[g]).detach()
        assert torch.allclose(gradient[g], expected, rtol=1e-10)


def test_per_particle_bandwidth_is_each_particles_median_over_log_n_minus_1():
    # RLSD's code: h_i = median_j(|f_i - f_j|)^2 / log(N - 1) over i's N - 1 neighbours.
    f = torch.tensor([[[0.0], [1.0], [3.0], [7.0]]], dtype=torch.float64)
    h = median_bandwidth(torch.cdist(f, f) ** 2, "per-particle")[0, :, 0]
    # neighbours' distances: 0 -> (1, 3, 7), 1 -> (1, 2, 6), 3 -> (3, 2, 4), 7 -> (7, 6, 4)
    assert torch.allclose(h, torch.tensor([9.0, 4.0, 9.0, 36.0], dtype=torch.float64) / math.log(3), rtol=1e-12)
    with pytest.raises(ValueError, match="needs N >= 3"):
        median_bandwidth(torch.zeros(1, 2, 2), "per-particle")


def test_repulsion_rejects_too_few_particles_and_mismatched_features():
    with pytest.raises(ValueError, match="at least 3 particles"):
        ScoreDistillation(1.0, repulsion=0.1).check(2)
    ScoreDistillation(1.0, repulsion=0.1, bandwidth="pooled").check(2)
    ScoreDistillation(1.0, repulsion=0.0).check(1)  # the non-repulsive variant runs with one particle
    step = _step(torch.zeros(4, 1, 2, 2), per_group=2, prior=GaussianMixturePrior(torch.zeros(1, 1, 2, 2), 1.0))
    with pytest.raises(ValueError, match=r"features have shape \(3, 4\) but there are 4 particles"):
        ScoreDistillation(1.0, 0.1, "pooled", features=lambda s, z: torch.zeros(3, 4)).loss(step)
    with pytest.raises(ValueError, match="2-D tensor"):
        ScoreDistillation(1.0, 0.1, "pooled", features=lambda s, z: z).loss(step)
    with pytest.raises(ValueError, match="unknown bandwidth"):
        ScoreDistillation(1.0, 0.1, bandwidth="global")


def test_rlsd_refuses_too_few_particles_with_repulsion_and_runs_without():
    setting = AmbiguousMixture()
    prior, problem = setting.prior().double(), setting.problem(2, torch.Generator().manual_seed(0))
    options = MethodOptions(steps=3, samples=2, prior=prior)
    with pytest.raises(ValueError, match="samples >= 3"):
        run_particles(rlsd_solver, RLSDConfig(), problem, options)
    result = run_particles(rlsd_solver, RLSDConfig(gamma=0.0), problem, dataclasses.replace(options, samples=1))
    assert tuple(result.samples.shape) == (2, 1, 1, 4, 4)


# priors and terms ---------------------------------------------------------------------------------


def test_mixture_denoiser_is_tweedies_formula():
    # E[x0 | x] = x + sigma^2 grad log p_sigma(x), p_sigma the mixture with variances s^2 + sigma^2.
    g = torch.Generator().manual_seed(1)
    means = torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    prior = GaussianMixturePrior(means, component_std=0.4, weights=weights).double()
    x = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    sigma = 0.7
    variance = 0.4**2 + sigma**2
    squared = (x.flatten(1)[:, None] - means.flatten(1)[None]).pow(2).sum(-1)
    log_density = torch.logsumexp(weights.log() - squared / (2 * variance), dim=1).sum()
    score = torch.autograd.grad(log_density, x)[0]
    assert torch.allclose(prior.denoise(x.detach(), sigma), x.detach() + sigma**2 * score, rtol=1e-10)


def test_mixture_denoiser_of_particles_is_the_posterior_over_particles():
    particles = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64).reshape(2, 1, 1, 2)
    noise = torch.tensor([[0.5, 0.0], [0.0, 0.0]], dtype=torch.float64).reshape(2, 1, 1, 2)
    step = _step(particles, sigma=1.0, noise=noise)
    # particle 0 at z_t = (0.5, 0): distances 0.25 and 2.25, weights softmax(-d/2).
    w = torch.softmax(torch.tensor([-0.125, -1.125], dtype=torch.float64), 0)
    expected = w[0] * particles[0].flatten() + w[1] * particles[1].flatten()
    assert torch.allclose(mixture_denoiser(step)[0].flatten(), expected)
    one = _step(particles[:1], sigma=1.0, per_group=1, noise=noise[:1])
    assert torch.equal(mixture_denoiser(one), particles[:1])  # one particle: DWGF's regulariser is SDS


def test_dwgf_regulariser_with_one_particle_is_score_distillation():
    means = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    prior = GaussianMixturePrior(means, component_std=1.0).double()
    z = torch.ones(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    noise = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    grads = []
    for term in (MixtureRegulariser(0.3), ScoreDistillation(0.3)):
        step = _step(z, sigma=2.0, per_group=1, prior=prior, noise=noise)
        grads.append(torch.autograd.grad(term.loss(step).sum(), z)[0])
    # Gaussian N(0, 1): D(z_t) = z_t / (1 + sigma^2) = (1 + 2 * 0.5) / 5; gradient 0.3 (z - D) / 4.
    expected = torch.full_like(z, 0.3 * (1 - 2 / 5) / 4)
    assert torch.allclose(grads[0], expected, rtol=1e-12) and torch.allclose(grads[1], expected, rtol=1e-12)


def test_diversity_metrics_of_known_sets():
    s = torch.randn(1, 1, 1, 4, 4, dtype=torch.float64)
    opposite = torch.cat([s, -s], 1)
    assert pairwise_relative_distance(opposite).item() == pytest.approx(2.0, rel=1e-12)
    assert pairwise_cosine(opposite).item() == pytest.approx(-1.0, rel=1e-12)
    same = s.expand(1, 3, 1, 4, 4)
    assert pairwise_relative_distance(same).item() == pytest.approx(0.0, abs=1e-12)
    assert pairwise_cosine(same).item() == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="K >= 2"):
        pairwise_cosine(s)


# engine, latent space -----------------------------------------------------------------------------


class FlatSpace:
    """A linear invertible latent space: the state is the flattened field ``(C S S,)``."""

    field_space = False

    def __init__(self, channels: int, resolution: int):
        self.shape = (channels, resolution, resolution)

    def encode(self, field):
        return field.flatten(1)

    def decode(self, state):
        return state.reshape(-1, *self.shape)

    def state_shape(self, channels, resolution):
        return (channels * resolution * resolution,)


class LatentMixturePrior(GaussianMixturePrior):
    """The mixture prior seen through :class:`FlatSpace`: ``denoise`` on flat states, ``space`` attached."""

    def __init__(self, means, component_std):
        super().__init__(means, component_std)
        self.space = FlatSpace(means.shape[1], means.shape[-1])

    def denoise(self, x, sigma):
        return super().denoise(self.space.decode(x), sigma).flatten(1)


@pytest.mark.parametrize("method", ["rlsd", "dwgf"])
def test_latent_particles_through_a_linear_invertible_space_match_field_space(method):
    # The flat space draws the same noise in the same order and Adam acts per coordinate, so the run
    # in latent space must reproduce the field-space run; the autoencoder term is zero (D(E(x)) = x; with
    # decoder_std = 0 it draws no noise, so both runs consume the same random numbers).
    setting = AmbiguousMixture()
    field_prior = setting.prior().double()
    latent_prior = LatentMixturePrior(setting.means(), setting.component_std).double()
    problem = setting.problem(3, torch.Generator().manual_seed(2))
    if method == "rlsd":
        build, config = rlsd_solver, RLSDConfig(steps=20)
    else:
        build, config = dwgf_solver, DWGFConfig(decoder_std=0.0, steps=20)
    results = [
        run_particles(build, config, problem, MethodOptions(samples=3, prior=p, seed=4))
        for p in (field_prior, latent_prior)
    ]
    assert torch.allclose(results[0].samples, results[1].samples, atol=1e-10)
    assert results[0].nfe == 20


def test_engine_rejects_empty_methods_and_non_finite_gradients():
    prior = GaussianMixturePrior(torch.zeros(1, 1, 2, 2), 1.0)
    with pytest.raises(ValueError, match="at least one particle term"):
        ParticleSolver(prior, ParticleConfig(steps=2), [])
    with pytest.raises(FloatingPointError, match="not finite"):
        ParticleSolver(prior, ParticleConfig(steps=2), [ScoreDistillation(float("inf"))]).run(
            1, 1, torch.Generator(), 2
        )


class _Pull(ScoreDistillation):
    """A quadratic pull of the particles towards 1, independent of the noise level (for the engine's bookkeeping)."""

    def loss(self, step):
        return 0.5 * ((step.particles - 1.0) ** 2).sum()


def test_steps_per_level_reuse_the_levels_one_network_evaluation():
    prior = GaussianMixturePrior(torch.zeros(1, 1, 2, 2, dtype=torch.float64), 1.0).double()
    calls = []
    denoise = prior.denoise
    prior.denoise = lambda x, sigma: calls.append(sigma) or denoise(x, sigma)
    config = ParticleConfig(steps=5, steps_per_level=3, lr=0.1)
    result = ParticleSolver(prior, config, [ScoreDistillation(1.0)]).run(1, 1, torch.Generator().manual_seed(0), 2)
    assert result.nfe == 5 and len(calls) == 5  # one evaluation per level, not per optimiser step
    assert calls == sorted(calls, reverse=True)


def test_steps_per_level_take_that_many_optimiser_steps():
    # A level-independent loss: T levels with K steps each is the same Adam trajectory as K T levels with one.
    prior = GaussianMixturePrior(torch.zeros(1, 1, 2, 2, dtype=torch.float64), 1.0).double()

    def final(steps, per_level):
        config = ParticleConfig(steps=steps, steps_per_level=per_level, lr=0.05)
        return ParticleSolver(prior, config, [_Pull()]).run(1, 1, torch.Generator().manual_seed(0), 2).fields

    assert torch.allclose(final(4, 3), final(12, 1), rtol=0, atol=1e-12)
    assert not torch.allclose(final(4, 1), final(12, 1))
    with pytest.raises(ValueError, match="steps_per_level must be a positive integer"):
        ParticleConfig(steps_per_level=0)


# the exact multi-modal posterior ------------------------------------------------------------------


def test_repulsion_covers_more_posterior_modes():
    # 4 equally likely posterior modes, 4 particles per measurement, 32 measurements.
    setting = AmbiguousMixture(hidden=2)
    prior, problem = setting.prior().double(), setting.problem(32, torch.Generator().manual_seed(0))
    covered = {}
    for gamma in (0.0, 0.8):
        config = RLSDConfig(gamma=gamma, steps=100)  # the code's form: kernel on the noisy states
        options = MethodOptions(samples=4, prior=prior, batch_size=32, seed=1)
        result = run_particles(rlsd_solver, config, problem, options)
        covered[gamma] = setting.modes_covered(result.samples).double().mean().item()
        hidden = result.samples.flatten(2)[..., setting.hidden_pixels].abs()
        assert hidden.median().item() == pytest.approx(setting.amplitude, abs=0.15)  # particles sit on modes
    assert covered[0.8] >= covered[0.0] + 0.2, covered  # 2.88 -> 3.12 modes of 4 (standard error about 0.1)


def test_particle_methods_run_from_the_registry():
    setting = AmbiguousMixture()
    problem = setting.problem(2, torch.Generator().manual_seed(0))
    problem.input_channel = "field"  # the registry checks the prior covers both roles
    for method in ("rlsd", "rlsd-norep", "dwgf"):
        result = solve(method, problem, MethodOptions(steps=3, samples=3, prior=setting.prior().double()))
        assert tuple(result.samples.shape) == (2, 3, 1, 4, 4) and result.nfe == 3


# bench record -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helmholtz_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "helmholtz_64_test.h5"
    generate(make_config("helmholtz", resolution=64, n=2, seed=2), path)
    return path


def test_bench_records_single_sample_error_and_diversity(helmholtz_file, monkeypatch):
    means = torch.zeros(2, 2, 64, 64)
    means[1] += 1.0
    prior = GaussianMixturePrior(means, 0.5, channels=("source", "solution"))
    monkeypatch.setattr(runner, "load", lambda name, device="cpu": prior)
    settings = dict(n=2, steps=2, data=str(helmholtz_file), raw_prior=True)
    record = run_benchmark(BenchConfig("helmholtz-inverse-64", "dwgf", samples=3, **settings))
    assert {"rel_l2_single", "rel_l2_single_std", "diversity"} <= set(record)
    assert set(record["diversity"]) == {"pairwise_relative_distance", "pairwise_cosine"}
    assert record["rel_l2_single"] > 0 and -1 <= record["diversity"]["pairwise_cosine"] <= 1
    per_sample = record["per_sample"]
    assert sum(per_sample["pairwise_cosine"]) / 2 == pytest.approx(record["diversity"]["pairwise_cosine"])
    assert sum(per_sample["rel_l2_single"]) / 2 == pytest.approx(record["rel_l2_single"])
    single = run_benchmark(BenchConfig("helmholtz-inverse-64", "dwgf", **settings))
    assert "diversity" not in single and "rel_l2_single" not in single
    assert record["particle_state"] == "auto"
    joint = run_benchmark(BenchConfig("helmholtz-inverse-64", "dwgf", samples=2, particle_state="joint", **settings))
    assert joint["particle_state"] == "joint"
    assert "dwgf (mean of 2 samples, raw, joint state)" in runner.results_table([record, joint])
    tuned = BenchConfig("helmholtz-inverse-64", "dwgf", method_preset="calibrated", method_options=[("gamma", "0.3")],
                        **settings)
    tuned = run_benchmark(tuned)
    assert tuned["method_config"]["gamma"] == 0.3 and tuned["method_config"]["lr"] == 0.2
    assert (tuned["method_preset"], tuned["method_options"]) == ("calibrated", {"gamma": "0.3"})
    assert "dwgf (calibrated, gamma=0.3)" in runner.results_table([record, tuned])
    assert record["method_config"]["lr"] == 1.0 and "method_preset" not in record


def test_particle_methods_run_in_the_latent_space_of_a_latent_prior():
    # pdeinv.latent's LatentPrior carries its autoencoder as prior.space; here an untrained tiny autoencoder
    # and an exact mixture prior on its latents. DWGF then adds the encoder-decoder prior-score term.
    from pdeinv.latent import AutoencoderConfig, FieldAutoencoder, LatentPrior
    from pdeinv.operators.inpainting import BoxInpainting
    from pdeinv.sampling import InverseProblem
    from pdeinv.sampling.particles.terms import AutoencoderScore

    torch.manual_seed(0)
    tiny = {"block_out_channels": [8, 8], "norm_num_groups": 4}
    config = AutoencoderConfig(**tiny)
    autoencoder = FieldAutoencoder(config, channels=("a", "b"), mean=[0, 0], std=[1, 1], resolution=16)
    latent_shape = autoencoder.latent_shape(16)
    means = torch.stack([torch.zeros(latent_shape), torch.ones(latent_shape)])
    prior = LatentPrior(GaussianMixturePrior(means, 0.5), autoencoder)
    sensor = BoxInpainting(16, box=0.5)
    y = sensor.A(torch.randn(2, 1, 16, 16))
    problem = InverseProblem(None, sensor, y, "output", "output", "a", "b", None, grid="periodic")
    solver = dwgf_solver(problem, prior, y.repeat_interleave(2, 0), DWGFConfig())
    assert any(isinstance(t, AutoencoderScore) for t in solver.particle_terms)
    autoencoder.eval()
    for build, config in ((rlsd_solver, RLSDConfig()), (dwgf_solver, DWGFConfig())):
        result = run_particles(build, config, problem, MethodOptions(steps=3, samples=3, prior=prior))
        assert tuple(result.samples.shape) == (2, 3, 1, 16, 16) and torch.isfinite(result.samples).all()
        assert result.nfe == 3


# the solved state on a linear PDE -----------------------------------------------------------------


def _helmholtz_inverse(size=16, n=4, points=30):
    from pdeinv.datasets import helmholtz_source_grf
    from pdeinv.operators import Helmholtz, PointObservation, random_points
    from pdeinv.sampling import InverseProblem

    grf, operator = helmholtz_source_grf(size), Helmholtz(size)
    sources = grf.sample(n, torch.Generator().manual_seed(0), dtype=torch.float64)
    sensor = PointObservation(size, indices=random_points(points, size, seed=0))
    y = sensor.A(operator.A(sources))
    problem = InverseProblem(operator, sensor, y, "output", "input", "source", "solution", "helmholtz", grf)
    return problem, sources


def test_solved_space_decodes_to_solutions_of_the_pde():
    from pdeinv.sampling.particles.solved_space import SolvedSpace

    problem, _ = _helmholtz_inverse()
    prior = GaussianMixturePrior(torch.zeros(1, 2, 16, 16), 1.0, channels=("solution", "source"))
    prior.mean.copy_(torch.tensor([0.1, -0.2]))
    prior.std.copy_(torch.tensor([0.03, 2.0]))
    space = SolvedSpace(problem.operator, prior.double(), "source", "solution")
    state = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    field = space.decode(state)
    physical = prior.to_physical(field)
    source, solution = physical[:, 1:], physical[:, :1]
    # the finite-difference stencil, independent of the DST solve behind A, vanishes on the interior
    residual = problem.operator.residual(source, solution)[..., 1:-1, 1:-1]
    assert residual.abs().max() < 1e-10 * source.abs().max()
    assert torch.equal(space.encode(field), state) and space.state_shape(2, 16) == (1, 16, 16)
    with pytest.raises(ValueError, match="exactly"):
        SolvedSpace(problem.operator, GaussianMixturePrior(torch.zeros(1, 3, 4, 4), 1.0), "source", "solution")


def test_state_space_solves_linear_pdes_only():
    from pdeinv.sampling.particles.methods import state_space
    from pdeinv.sampling.particles.solved_space import SolvedSpace
    from pdeinv.sampling.sampler import FieldSpace

    problem, _ = _helmholtz_inverse()
    prior = GaussianMixturePrior(torch.zeros(1, 2, 16, 16), 1.0, channels=("source", "solution"))
    assert isinstance(state_space(prior, problem), SolvedSpace)
    assert isinstance(state_space(prior, problem, "joint"), FieldSpace)
    nonlinear = problem.select(torch.arange(2))
    nonlinear.operator = object()  # not a deepinv LinearPhysics
    assert isinstance(state_space(prior, nonlinear), FieldSpace)
    with pytest.raises(ValueError, match="unknown particle state"):
        state_space(prior, problem, "latent")
    with pytest.raises(ValueError, match="unknown particle state"):
        MethodOptions(particle_state="latent")


def test_solved_state_carries_sparse_solution_data_to_the_source():
    # Helmholtz inverse with the exact joint Gaussian prior: observing the solution at 30 of 256 points,
    # DWGF on the joint field learns about the source only through the denoiser; on the solved state the
    # data reach the source through the adjoint. Its particle mean must approach the exact kriging mean.
    from pdeinv.priors.gaussian import helmholtz_joint_prior
    from pdeinv.sampling.baselines import kriging_baseline

    problem, sources = _helmholtz_inverse()
    prior = helmholtz_joint_prior(16).double()
    exact = kriging_baseline(problem, MethodOptions()).mean
    errors = {}
    for state in ("joint", "solved"):
        config = DWGFConfig.preset("calibrated", decoder_std=0.0)
        options = MethodOptions(samples=4, prior=prior, seed=0, particle_state=state)
        result = run_particles(dwgf_solver, config, problem, options)
        errors[state] = float(((result.mean - exact).norm() / exact.norm()))
    truth_gap = float((exact - sources).norm() / sources.norm())
    assert errors["solved"] < 0.5 * errors["joint"], errors
    assert errors["solved"] < truth_gap, (errors, truth_gap)


def test_solved_state_on_navier_stokes_decodes_through_the_coarse_solve():
    # a nonlinear PDE: the particles are initial vorticities, decoded by the (coarse-step) solve
    from pdeinv.datasets import ns_vorticity_grf
    from pdeinv.operators import NavierStokes2D, PointObservation, random_points
    from pdeinv.sampling import InverseProblem, solve
    from pdeinv.sampling.particles.methods import state_space

    grf, operator = ns_vorticity_grf(16), NavierStokes2D(16, time=0.2, dt=1e-3)
    w0 = grf.sample(2, torch.Generator().manual_seed(1))
    sensor = PointObservation(16, indices=random_points(30, 16, seed=0))
    y = sensor.A(operator.A(w0))
    problem = InverseProblem(operator, sensor, y, "output", "input", "vorticity[0]", "vorticity[-1]", "navier-stokes", grf)
    prior = GaussianMixturePrior(torch.zeros(1, 2, 16, 16), 1.0, channels=("vorticity[0]", "vorticity[-1]"))
    prior.std.copy_(torch.tensor([2.0, 1.5]))
    space = state_space(prior, problem.with_solver_dt(1e-2), "solved")
    physical = prior.to_physical(space.decode(torch.randn(3, 1, 16, 16)))
    coarse_residual = operator.residual(physical[:, :1], physical[:, 1:], dt=1e-2)
    assert coarse_residual.abs().max() < 1e-5 * physical[:, 1:].abs().max()
    options = MethodOptions(steps=3, samples=2, prior=prior, particle_state="solved", solver_dt=1e-2)
    result = solve("dwgf", problem, options)
    assert tuple(result.samples.shape) == (2, 2, 1, 16, 16) and torch.isfinite(result.samples).all()
