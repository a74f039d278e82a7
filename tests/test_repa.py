"""REPA: projector alignment loss in training, pluggable frozen encoders, the +repa sampling term."""

from __future__ import annotations

import pytest
import torch

from pdeinv.latent.encoders import PhysicsEncoder, PhysicsEncoderConfig, ViTConfig, ViTEncoder, load_encoder, save_encoder
from pdeinv.latent.repa import RepaTerm, measurement_proxy, misalignment, projected_features
from pdeinv.latent.training import SurrogateTrainer, repa_trainer
from pdeinv.operators import PointObservation
from pdeinv.priors import load
from pdeinv.priors.data import TrainingData
from pdeinv.priors.training import Trainer, TrainConfig, train
from pdeinv.sampling import solve
from pdeinv.sampling.sampler import PosteriorSampler, SamplerConfig
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import GuidanceState

FNO = {"width": 8, "n_modes": 4, "n_layers": 2, "embedding_dim": 8}


def _data(n=8, s=16) -> TrainingData:
    fields = torch.randn(n, 2, s, s, generator=torch.Generator().manual_seed(0))
    return TrainingData(fields, ("a", "b"), [0.0, 0.0], [1.0, 1.0], {"path": "synthetic"})


def _config(out, **kw) -> TrainConfig:
    base = dict(out=str(out), steps=3, batch_size=4, checkpoint_every=3, log_every=1, warmup=1, progress=False)
    return TrainConfig(**{**base, "backbone_options": FNO, **kw})


def test_misalignment_is_one_minus_cosine():
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    assert torch.allclose(misalignment(a, a), torch.zeros(1))
    b = torch.tensor([[[0.0, 3.0], [0.0, -1.0]]])  # orthogonal, then opposite: (1 + 2) / 2
    assert torch.allclose(misalignment(a, b), torch.tensor([1.5]))


def test_projector_and_encoder_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="encoder gives 8-dimensional features but the projector outputs 4"):
        misalignment(torch.randn(1, 16, 4), torch.randn(1, 16, 8))


def test_tiny_vit_saved_locally_loads_and_gives_patch_tokens(tmp_path):
    vit = ViTEncoder(ViTConfig(image=16, patch=4, channels=2, dim=8, depth=1, heads=2))
    save_encoder(vit, tmp_path / "vit")
    again = load_encoder(tmp_path / "vit")
    x = torch.randn(2, 2, 16, 16)
    assert torch.allclose(again(x), vit.eval()(x), atol=1e-5) and again(x).shape == (2, 16, 8)
    assert not any(p.requires_grad for p in again.parameters())


@pytest.fixture(scope="module")
def repa_prior(tmp_path_factory):
    """A field-space fno prior trained 3 steps with REPA against a tiny local ViT."""
    root = tmp_path_factory.mktemp("repa")
    vit = ViTEncoder(ViTConfig(image=16, patch=4, channels=2, dim=8, depth=1, heads=2))
    save_encoder(vit, root / "vit")
    encoder = load_encoder(root / "vit")
    data = _data()
    trainer = repa_trainer(Trainer, encoder, str(root / "vit"), data.fields, 0.5, None)
    train(_config(root / "prior"), data, trainer_class=trainer)
    return root, data, encoder


def test_repa_training_records_the_head_and_loads(repa_prior):
    root, data, encoder = repa_prior
    prior = load(root / "prior")
    section = prior.card["repa"]
    assert section["weight"] == 0.5 and section["grid"] == 4 and section["out_dim"] == 8
    assert section["encoder"]["kind"] == "vit"
    denoised, projected = projected_features(prior, data.fields[:2], 0.5)
    assert denoised.shape == (2, 2, 16, 16) and projected.shape == (2, 16, 8)


def test_repa_loss_is_edm_loss_plus_weighted_negative_cosine(repa_prior, tmp_path):
    """The trainer's loss equals EDM loss + 0.5 * mean(-cos) recomputed independently from the same draws."""
    import torch.nn.functional as F

    from pdeinv.latent.repa import FeatureTap, feature_module
    from pdeinv.priors.edm import edm_loss, sample_training_sigma

    root, data, encoder = repa_prior
    trainer = repa_trainer(Trainer, encoder, "vit", data.fields, 0.5, None)(_config(tmp_path / "t"), data)
    x0 = trainer._next_batch()
    state = trainer.generator.get_state()
    loss = trainer.loss(x0)
    trainer.generator.set_state(state)
    sigma = sample_training_sigma(len(x0), trainer.config.edm, trainer.generator)
    noise = torch.randn(x0.shape, generator=trainer.generator)
    with FeatureTap(feature_module(trainer.model, "blocks.1")) as tap:
        denoising = edm_loss(trainer.model, x0, sigma, noise, 1.0)
    tokens = torch.nn.functional.adaptive_avg_pool2d(tap.features, 4).flatten(2).transpose(1, 2)
    target = encoder(data.fields[trainer.batch_index])
    expected = denoising - 0.5 * F.cosine_similarity(trainer.model.repa.projector(tokens), target, dim=-1).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_repa_term_sums_the_misalignment_against_the_measurement_proxy(repa_prior):
    root, data, encoder = repa_prior
    prior = load(root / "prior")
    sensor = PointObservation(16, indices=torch.tensor([[1, 2], [5, 9]]))
    y = torch.tensor([[[0.3, -0.2]]])
    proxy = measurement_proxy(sensor, y, "b")
    term = RepaTerm(prior, encoder, proxy, schedule=GuidanceSchedule(weight=1.0))
    sampler = PosteriorSampler(prior, SamplerConfig(steps=3, integrator="euler"), [term])
    result = sampler.sample(2, torch.Generator().manual_seed(0))
    assert result.nfe == 6  # one network evaluation for the step, one for the term's features
    x = torch.randn(1, 2, 16, 16)
    state = GuidanceState(x, x, 1.0, 3, 4, prior, lambda v: v, prior.denoise)
    pasted = proxy(state)  # at every step, late ones included: the measured values pasted in
    assert torch.allclose(pasted[0, 1, 1, 2], torch.tensor(0.3))
    assert torch.allclose(pasted[0, 1, 5, 9], torch.tensor(-0.2))
    assert torch.equal(pasted[0, 0], x[0, 0])
    _, projected = projected_features(prior, x, 1.0)
    target = encoder(pasted)
    tokens = target.flatten(2).transpose(1, 2) if target.ndim == 4 else target
    assert torch.allclose(term.loss(state), misalignment(projected, tokens, reduction="sum"), rtol=1e-5)
    assert torch.allclose(term.loss(state), tokens.shape[1] * misalignment(projected, tokens), rtol=1e-5)


def test_repa_weight_step_and_cutoff_reach_the_term_of_a_plus_repa_method(repa_prior):
    from pdeinv.operators import Helmholtz
    from pdeinv.sampling import InverseProblem, MethodOptions
    from pdeinv.sampling.methods import configure

    root, _, _ = repa_prior
    operator, sensor = Helmholtz(16), PointObservation(16, indices=torch.tensor([[3, 4], [9, 7]]))
    source = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    problem = InverseProblem(operator, sensor, sensor.A(operator.A(source)), "output", "input", "a", "b", "helmholtz")
    (default,) = configure("dps+repa", problem, MethodOptions()).modifiers
    # point sensor: the publication's box-inpainting setting, at every step as in its authors' code
    assert (default.lam, default.eta, default.paper_steps, default.cutoff) == (0.01, 0.5, 1000, 1.0)
    options = MethodOptions(steps=4, prior=load(root / "prior"), repa_weight=0.2, repa_step=3.0, repa_cutoff=0.6)
    (config,) = configure("dps+repa", problem, options).modifiers
    assert (config.lam, config.eta, config.cutoff) == (0.2, 3.0, 0.6)
    result = solve("dps+repa", problem, options)
    assert torch.isfinite(result.mean).all()


def test_align_and_invert_published_settings_per_solver_and_task():
    from pdeinv.latent.methods import AlignInvertConfig
    from pdeinv.operators import BoxInpainting, Downsampling, FourierPhaseRetrieval, GaussianBlur

    published = AlignInvertConfig.published
    assert published("latent-dps", Downsampling(64, factor=4)) == AlignInvertConfig(lam=0.01, eta=2.0)
    assert published("psld", GaussianBlur(64, sigma_px=1.5)) == AlignInvertConfig(lam=0.05, eta=0.25)
    assert published("latent-dps", BoxInpainting(16, box=0.5)) == AlignInvertConfig(lam=0.01, eta=0.5)
    assert published("resample", Downsampling(64, factor=4)) == AlignInvertConfig(lam=0.05, eta=3.25, paper_steps=250)
    with pytest.raises(ValueError, match="set repa_weight and repa_step"):
        published("resample", BoxInpainting(16, box=0.5))
    with pytest.raises(ValueError, match="FourierPhaseRetrieval"):
        published("latent-dps", FourierPhaseRetrieval(16, oversampling=2.0))


def test_align_and_invert_step_equals_the_publications_flow_step_by_hand():
    # Align & Invert, 4 flow steps t = 0.75, 0.5, 0.25 (snr 3, 1, 1/3; the t = 1 step starts at infinite
    # noise): x^F <- x^F - eta * grad_{x^F}(lam * sum_n (1 - cos)) / max(snr, 1), with x^F = (1 - t) z + t n
    # and z the publication's latent. The sampler's state is x = c_x (z + snr n), noise level c_x snr.
    from pdeinv.latent.methods import AlignInvertConfig

    lam, eta, sigma_data = 0.05, 3.25, 0.5
    config = AlignInvertConfig(lam=lam, eta=eta, paper_steps=4)
    edm = torch.tensor([10.0, 1.0, 0.3, 0.01, 0.0], dtype=torch.float64)  # one flow step in each of the first 3
    schedule = config.schedule(edm, sigma_data)
    c_x = sigma_data / config.latent_std
    generator = torch.Generator().manual_seed(0)
    projection = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(1, 4, 5, generator=generator, dtype=torch.float64)

    def term(state):  # features of the state (B, 4 tokens, 3) projected and compared with the target tokens
        return misalignment(state.reshape(1, 4, 3) @ projection, target, reduction="sum").sum()

    x = torch.randn(1, 12, generator=generator, dtype=torch.float64)
    for step, t in enumerate((0.75, 0.5, 0.25)):
        snr = t / (1 - t)
        flow = ((1 - t) * x / c_x).requires_grad_(True)  # the same state in the publication's coordinates
        paper = -eta * lam * torch.autograd.grad(term(flow * c_x / (1 - t)), flow)[0] / max(snr, 1.0)
        state = x.clone().requires_grad_(True)
        ours = -schedule(float(edm[step]), step, 4) * torch.autograd.grad(term(state), state)[0]
        assert torch.allclose(ours, paper * c_x / (1 - t), rtol=1e-12)
    assert schedule(float(edm[3]), 3, 4) == 0.0  # no flow step below sigma = 0.01
    assert all(schedule.active(float(edm[i]), i, 4) for i in range(4))  # cutoff 1: every step


def test_prior_without_repa_head_refuses_the_term(tmp_path):
    data = _data()
    train(_config(tmp_path / "plain"), data)
    prior = load(tmp_path / "plain")
    with pytest.raises(ValueError, match="no REPA projector"):
        RepaTerm(prior, torch.nn.Identity(), lambda s: s.field)


def test_surrogate_trainer_learns_the_physics_encoder(tmp_path):
    data = _data()
    options = {"width": 8, "modes": 4, "n_layers": 2, "depth": 1, "grid": 4}
    train(_config(tmp_path / "sur", backbone_options=options), data, trainer_class=SurrogateTrainer)
    encoder = load_encoder(tmp_path / "sur")
    assert isinstance(encoder, PhysicsEncoder) and encoder.config == PhysicsEncoderConfig(**options)
    assert encoder(data.fields[:2]).shape == (2, 16, 8)
