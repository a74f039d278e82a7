"""Latent space: autoencoder, latent prior, pairing checks, Latent DPS / PSLD / ReSample pieces."""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.latent import AutoencoderConfig, FieldAutoencoder, LatentPrior, LatentSpace, load_autoencoder
from pdeinv.latent.psld import GluingTerm
from pdeinv.latent.resample import ReSampleConfig, ReSampleProjection
from pdeinv.latent.training import AutoencoderTrainer, latent_trainer, latent_training_data
from pdeinv.operators import PointObservation
from pdeinv.priors import load
from pdeinv.priors.data import TrainingData
from pdeinv.priors.training import TrainConfig, train
from pdeinv.sampling.sampler import PosteriorSampler, SamplerConfig
from pdeinv.sampling.terms import GuidanceState, ObservationTerm

TINY = {"block_out_channels": [8, 8], "norm_num_groups": 4}


def _data(n=16, s=16, seed=0) -> TrainingData:
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 2 * math.pi, s + 1)[:-1]
    phase = torch.rand(n, 2, 1, 1, generator=g) * 2 * math.pi
    fields = torch.sin(x.reshape(1, 1, -1, 1) + phase) * torch.cos(x.reshape(1, 1, 1, -1))
    fields = fields + 0.1 * torch.randn(n, 2, s, s, generator=g)
    return TrainingData(fields, ("a", "b"), [0.5, -1.0], [2.0, 3.0], {"path": "synthetic", "grid": "periodic"})


def _config(out, **kw) -> TrainConfig:
    base = dict(out=str(out), steps=4, batch_size=4, checkpoint_every=4, log_every=2, warmup=1, progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny autoencoder and a tiny latent prior trained on it through the training entry point."""
    root = tmp_path_factory.mktemp("latent")
    data = _data()
    torch.manual_seed(0)
    train(_config(root / "ae", backbone_options=TINY), data, trainer_class=AutoencoderTrainer)
    ae = load_autoencoder(root / "ae")
    latents = latent_training_data(data, ae, str(root / "ae"))
    options = {"width": 8, "n_modes": 4, "n_layers": 2, "embedding_dim": 8}
    train(_config(root / "latent", backbone_options=options), latents, trainer_class=latent_trainer(ae, str(root / "ae")))
    return root, data, ae


def test_autoencoder_shapes_and_periodic_padding():
    ae = FieldAutoencoder(AutoencoderConfig(periodic=True, **TINY), channels=("a", "b"), mean=[0, 0], std=[1, 1], resolution=16)
    z = ae.encode(torch.randn(3, 2, 16, 16))
    assert z.shape == (3, 4, 8, 8) and ae.latent_shape(32) == (4, 16, 16)
    assert ae.decode(z).shape == (3, 2, 16, 16)
    convs = [m for m in ae.modules() if isinstance(m, torch.nn.Conv2d) and m.padding != (0, 0)]
    assert convs and all(m.padding_mode == "circular" for m in convs)


def test_latent_statistics_standardise_the_encoder_mean():
    ae = FieldAutoencoder(AutoencoderConfig(**TINY), channels=("a", "b"), mean=[0, 0], std=[1, 1], resolution=16)
    fields = _data(32).fields
    ae.fit_latent_statistics(fields)
    z = ae.encode(fields)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4)


def test_linear_code_starts_at_the_local_principal_component_reconstruction(tmp_path):
    import numpy as np

    config = AutoencoderConfig(linear_code=True, latent_channels=3, **TINY)
    fields = _data(20).fields
    ae = FieldAutoencoder(config, channels=("a", "b"), mean=[0, 0], std=[1, 1], resolution=16)
    ae.init_linear_code(fields)
    with torch.no_grad():
        rebuilt = ae.decode(ae.encode(fields)).numpy()
    # independent reference: SVD of the 2 x 2 blocks (8 numbers each), keeping 3 directions
    blocks = fields.numpy().reshape(20, 2, 8, 2, 8, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    top = np.linalg.svd(blocks, full_matrices=False)[2][:3].T
    reference = (blocks @ top @ top.T).reshape(20, 8, 8, 2, 2, 2).transpose(0, 3, 1, 4, 2, 5).reshape(20, 2, 16, 16)
    assert np.abs(rebuilt - reference).max() < 1e-4 * np.abs(fields.numpy()).max()
    assert np.abs(reference - fields.numpy()).max() > 0.05  # three of eight directions: not the identity
    with pytest.raises(ValueError, match="linear_code=True"):
        FieldAutoencoder(AutoencoderConfig(**TINY), channels=("a", "b"), mean=[0, 0], std=[1, 1], resolution=16).init_linear_code(fields)
    train(_config(tmp_path / "ae", backbone_options={**TINY, "linear_code": True}), _data(), trainer_class=AutoencoderTrainer)
    again = load_autoencoder(tmp_path / "ae")
    assert again.config.linear_code and again.code_in is not None
    assert torch.isfinite(again(fields)).all()


def test_trained_autoencoder_card_and_roundtrip(trained):
    root, data, ae = trained
    card = ae.card
    assert card["format"] == "pdeinv-autoencoder" and card["training"]["steps"] == 4
    assert card["normalization"]["channels"] == ["a", "b"]
    assert 0 < card["quality"]["train_relative_l2_normalized_mean"]
    again = load_autoencoder(root / "ae")
    x = data.fields[:2]
    assert torch.equal(again.encode(x), ae.encode(x))


def test_latent_prior_loads_with_its_autoencoder(trained):
    root, _, ae = trained
    prior = load(root / "latent")
    assert isinstance(prior, LatentPrior) and isinstance(prior.space, LatentSpace)
    assert prior.channels == ("a", "b") and prior.resolution == 16
    assert prior.space.state_shape(2, 16) == (4, 8, 8)
    z = torch.randn(2, 4, 8, 8)
    assert prior.denoise(z, 0.5).shape == z.shape
    with pytest.raises(ValueError, match="latent prior"):
        load(root / "latent", consistent=True)
    from pdeinv.operators import Helmholtz
    from pdeinv.priors.consistent import consistent_if_linear

    assert consistent_if_linear(prior, Helmholtz(16), "a", "b") is prior


def test_latent_prior_with_the_wrong_autoencoder_is_refused(trained):
    from pdeinv.latent.checkpoint import load_latent_prior, read_autoencoder_card
    from pdeinv.priors.checkpoint import read_card

    root, data, _ = trained
    torch.manual_seed(1)
    train(_config(root / "other-ae", backbone_options=TINY, seed=1), data, trainer_class=AutoencoderTrainer)
    assert read_autoencoder_card(root / "other-ae")["format"] == "pdeinv-autoencoder"
    with pytest.raises(ValueError, match="trained on the latents of autoencoder"):
        load_latent_prior(read_card(root / "latent"), root / "latent", autoencoder=root / "other-ae")
    with pytest.raises(ValueError, match="describes an autoencoder, not a prior"):
        load(root / "ae")


def test_latent_sampler_decodes_and_guides_through_the_decoder(trained):
    root, data, _ = trained
    prior = load(root / "latent")
    sensor = PointObservation(16, indices=torch.tensor([[3, 4], [10, 12], [7, 1]]))
    truth = prior.to_physical(data.fields[:1])[:, [1]]
    y = sensor.A(truth)
    term = ObservationTerm(sensor, y, "b", loss="sqnorm")
    sampler = PosteriorSampler(prior, SamplerConfig(steps=4, integrator="euler"), [term], space=prior.space)
    result = sampler.sample(2, torch.Generator().manual_seed(0))
    assert result.normalized.shape == (2, 2, 16, 16) and result.nfe == 4
    z = torch.randn(2, 4, 8, 8, requires_grad=True)
    state = GuidanceState(z, prior.denoise(z, 1.0), 1.0, 0, 4, prior, prior.space.decode, prior.denoise, field_space=False)
    (grad,) = torch.autograd.grad(term.loss(state).sum(), z)
    assert grad.abs().sum() > 0


def test_gluing_pastes_the_measurements_into_the_observed_channel(trained):
    root, data, _ = trained
    prior = load(root / "latent")
    idx = torch.tensor([[3, 4], [10, 12]])
    sensor = PointObservation(16, indices=idx)
    y = torch.tensor([[[5.0, -7.0]]])
    term = GluingTerm(sensor, y, "b", prior.space)
    z = torch.randn(1, 4, 8, 8)
    state = GuidanceState(z, z, 1.0, 0, 4, prior, prior.space.decode, prior.denoise, field_space=False)
    glued = prior.to_physical(term.glued(state))
    expected = state.physical.clone()
    expected[0, 1, 3, 4], expected[0, 1, 10, 12] = 5.0, -7.0
    assert torch.allclose(glued, expected, atol=1e-5)
    assert term.loss(state).shape == (1,)
    with pytest.raises(ValueError, match="needs a latent space"):
        GluingTerm(sensor, y, "b", None)


def test_resampling_variance_is_resamples_vp_formula():
    """gamma^2 in EDM units equals ReSample's 40 (1-a_prev)/(1-a)(1-a/a_prev), rescaled by 1/a_prev."""
    sigma, sigma_next = 2.0, 0.7
    a, a_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    vp = 40 * (1 - a_prev) / (1 - a) * (1 - a / a_prev)
    projection = ReSampleProjection([object()], ReSampleConfig(start_fraction=0, every=1, iterations=1))
    captured = {}

    class Context:
        step, n_steps, generator = 0, 10, torch.Generator().manual_seed(0)

        @staticmethod
        def denoise(x, s):
            return torch.zeros_like(x)

    projection.optimise = lambda z, context: z  # isolate the resampling step
    x = torch.ones(20000, 1)
    out = projection(x, sigma, sigma_next, Context)
    gamma2 = vp / a_prev
    captured["mean"] = (sigma_next**2) / (gamma2 + sigma_next**2)
    captured["var"] = gamma2 * sigma_next**2 / (gamma2 + sigma_next**2)
    assert abs(out.mean() - captured["mean"]) < 0.02
    assert abs(out.var() - captured["var"]) / captured["var"] < 0.05


def test_latent_methods_need_a_latent_prior():
    from pdeinv.latent.methods import latent_space

    with pytest.raises(ValueError, match="needs a latent prior"):
        latent_space(object(), "psld")


def test_reconstruction_errors_per_channel(trained):
    import numpy as np

    from pdeinv.latent.quality import reconstruction_errors

    _, data, ae = trained
    physical = data.fields[:3] * torch.tensor([2.0, 3.0]).reshape(1, 2, 1, 1) + torch.tensor([0.5, -1.0]).reshape(1, 2, 1, 1)
    errors = reconstruction_errors(ae, physical)
    with torch.no_grad():
        rebuilt = ae(data.fields[:3]).numpy() * np.array([2.0, 3.0]).reshape(1, 2, 1, 1) + np.array([0.5, -1.0]).reshape(1, 2, 1, 1)
    truth = physical.numpy()
    expected = np.linalg.norm((rebuilt - truth).reshape(3, 2, -1), axis=-1) / np.linalg.norm(truth.reshape(3, 2, -1), axis=-1)
    assert errors.shape == (3, 2) and np.allclose(errors.numpy(), expected, rtol=1e-4)


def test_shipped_latent_prior_loads_with_its_shipped_autoencoder():
    from pdeinv.priors.checkpoint import shipped_priors

    prior = load("ns-latent")
    assert isinstance(prior, LatentPrior) and prior.channels == ("vorticity[0]", "vorticity[-1]")
    assert prior.space.state_shape(2, 64) == (4, 32, 32)
    assert "ns-latent" in shipped_priors() and "ns-autoencoder" not in shipped_priors()
    floor = load_autoencoder("ns-autoencoder").card["quality"]["test"]
    assert floor["n"] >= 32 and all(floor[c]["mean"] < 0.02 for c in ("vorticity[0]", "vorticity[-1]"))


def test_shipped_helmholtz_latent_priors_round_trip_fields_through_their_autoencoder():
    from pdeinv.datasets.grf import helmholtz_source_grf
    from pdeinv.latent.checkpoint import fingerprint, repa_encoder
    from pdeinv.latent.encoders import PhysicsEncoder
    from pdeinv.operators import Helmholtz

    prior = load("helmholtz-latent")
    assert isinstance(prior, LatentPrior) and prior.channels == ("source", "solution")
    assert prior.space.state_shape(2, 64) == (4, 32, 32)
    aligned = load("helmholtz-latent-repa")
    assert fingerprint(aligned.autoencoder) == fingerprint(prior.autoencoder)
    assert aligned.card["repa"]["encoder"]["kind"] == "physics" and isinstance(repa_encoder(aligned), PhysicsEncoder)
    source = helmholtz_source_grf(64).sample(4, torch.Generator().manual_seed(7))
    with torch.no_grad():
        field = prior.to_normalized(torch.cat([source, Helmholtz(64, k=1.0).A(source)], dim=1))
        decoded = prior.space.decode(prior.space.encode(field))
    error = (decoded - field).flatten(2).norm(dim=2) / field.flatten(2).norm(dim=2)
    # The card's floor on 32 test fields is 0.86 % (source) and 0.39 % (solution); these are 4 new pairs.
    assert float(error[:, 0].mean()) < 0.02 and float(error[:, 1].mean()) < 0.02
