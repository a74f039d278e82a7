r"""Training the two networks of latent space with the one :class:`~pdeinv.priors.training.Trainer`.

- :class:`AutoencoderTrainer`: the :class:`~pdeinv.latent.autoencoder.FieldAutoencoder` on
  normalised fields, loss :meth:`~pdeinv.latent.autoencoder.FieldAutoencoder.training_loss`; each
  checkpoint refits the latent statistics of the EMA model and records its reconstruction error.
- :func:`latent_training_data`: the training fields encoded by a trained autoencoder, so that an
  ordinary EDM prior (``fno`` or ``unet`` backbone) trains on latents ``(N, L, S/r, S/r)``;
  :class:`LatentDenoiserTrainer` adds the ``latent`` section (which autoencoder, its weights'
  SHA-256) to the card.
- :class:`SurrogateTrainer`: the physics encoder of REPA (a neural-operator surrogate of the PDE).
- :func:`repa_trainer`: any denoiser trainer plus REPA's alignment loss.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from pdeinv.latent.autoencoder import AutoencoderConfig, FieldAutoencoder, config_dict, relative_l2
from pdeinv.latent.checkpoint import AUTOENCODER_FORMAT, latent_section
from pdeinv.priors.checkpoint import FORMAT_VERSION
from pdeinv.priors.data import TrainingData
from pdeinv.priors.training import Trainer, TrainConfig, build_model

STATISTICS_SAMPLES = 512


class AutoencoderTrainer(Trainer):
    """Trains a :class:`FieldAutoencoder`; ``config.backbone_options`` are :class:`AutoencoderConfig` fields."""

    def options_class(self, config: TrainConfig) -> type:
        return AutoencoderConfig

    def options_description(self, config: TrainConfig) -> str:
        return "the autoencoder (pdeinv train autoencoder)"

    def build(self, config: TrainConfig, data: TrainingData) -> tuple[FieldAutoencoder, dict]:
        defaults = {"channels": len(data.channels), "periodic": data.grid == "periodic"}
        ae_config = AutoencoderConfig(**{**defaults, **config.backbone_options})
        card = {
            "format": AUTOENCODER_FORMAT,
            "format_version": FORMAT_VERSION,
            "autoencoder": config_dict(ae_config),
            "normalization": {"channels": list(data.channels), "mean": data.mean, "std": data.std},
            "resolution": data.resolution,
            "data": data.provenance,
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = FieldAutoencoder(
                ae_config, channels=data.channels, mean=data.mean, std=data.std, resolution=data.resolution, card=card
            )
        if ae_config.linear_code:
            model.init_linear_code(data.fields[:STATISTICS_SAMPLES])
        return model, card

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        return self.model.training_loss(x0, self.generator)

    def card_for_checkpoint(self) -> dict:
        """Refit the EMA model's latent statistics and record its reconstruction error on training fields."""
        fields = self.fields[:STATISTICS_SAMPLES]
        self.ema.fit_latent_statistics(fields)
        with torch.no_grad():
            error = torch.cat([relative_l2(self.ema(chunk), chunk) for chunk in fields.split(64)])
        card = super().card_for_checkpoint()
        card["latent_statistics"] = {
            "shift": self.ema.latent_shift.tolist(),
            "scale": self.ema.latent_scale.tolist(),
            "n_samples": len(fields),
        }
        card["quality"] = {"train_relative_l2_normalized_mean": float(error.mean())}
        return card


@torch.no_grad()
def latent_training_data(data: TrainingData, autoencoder: FieldAutoencoder, reference: str) -> TrainingData:
    """Encode normalised training fields ``(N, C, S, S)`` into standardised latents ``(N, L, S/r, S/r)``.

    Parameters
    ----------
    data : TrainingData
        Fields with the same channels and normalisation as the autoencoder's training data.
    autoencoder : FieldAutoencoder
        Trained autoencoder.
    reference : str
        How to find the autoencoder again (a shipped name or a directory), stored in the card.

    Raises
    ------
    ValueError
        If the channels or the normalisation differ from the autoencoder's.
    """
    if tuple(data.channels) != tuple(autoencoder.channels):
        raise ValueError(
            f"the data's channels {data.channels} differ from the autoencoder's {autoencoder.channels}; "
            "pass --channels matching the autoencoder or train an autoencoder on these channels"
        )
    if not torch.allclose(torch.tensor(data.mean), autoencoder.mean, rtol=1e-4, atol=1e-8) or not torch.allclose(
        torch.tensor(data.std), autoencoder.std, rtol=1e-4
    ):
        raise ValueError("the data's normalisation differs from the autoencoder's: train both on the same data file")
    autoencoder = autoencoder.eval()
    latents = torch.cat([autoencoder.encode(chunk) for chunk in data.fields.split(64)])
    names = tuple(f"latent{i}" for i in range(latents.shape[1]))
    provenance = {**data.provenance, "space": "latent", "autoencoder": reference}
    return TrainingData(latents, names, [0.0] * len(names), [1.0] * len(names), provenance)


class LatentDenoiserTrainer(Trainer):
    """Trains an EDM prior on latents; the card's ``latent`` section names and fingerprints the autoencoder."""

    autoencoder: FieldAutoencoder
    reference: str

    def build(self, config: TrainConfig, data: TrainingData):
        if config.augment_symmetries:
            raise ValueError("--augment-symmetries acts on fields, not on latents; drop it with --autoencoder")
        model, card = build_model(config, data)
        card["latent"] = latent_section(self.autoencoder, self.reference)
        model.card = card
        return model, card


def latent_trainer(autoencoder: FieldAutoencoder, reference: str) -> type[LatentDenoiserTrainer]:
    """A :class:`LatentDenoiserTrainer` class bound to ``autoencoder`` (``train`` builds the trainer itself)."""
    return type("BoundLatentDenoiserTrainer", (LatentDenoiserTrainer,), {"autoencoder": autoencoder, "reference": reference})


class SurrogateTrainer(Trainer):
    r"""Trains the :class:`~pdeinv.latent.encoders.PhysicsEncoder` surrogate on joint fields.

    Loss: mean relative L2 error :math:`\lVert G(f_\text{in}) - f_\text{out}\rVert / \lVert f_\text{out}\rVert`
    on normalised fields; ``config.backbone_options`` are :class:`PhysicsEncoderConfig` fields.
    """

    def options_class(self, config: TrainConfig) -> type:
        from pdeinv.latent.encoders import PhysicsEncoderConfig

        return PhysicsEncoderConfig

    def options_description(self, config: TrainConfig) -> str:
        return "the surrogate (pdeinv train surrogate)"

    def build(self, config: TrainConfig, data: TrainingData):
        from pdeinv.latent.encoders import ENCODER_FORMAT, PhysicsEncoder, PhysicsEncoderConfig

        if len(data.channels) < 2:
            raise ValueError(f"a surrogate maps an input field to an output field; the data has {data.channels}")
        encoder_config = PhysicsEncoderConfig(**{"channels": len(data.channels), **config.backbone_options})
        card = {
            "format": ENCODER_FORMAT,
            "kind": "physics",
            "config": asdict(encoder_config),
            "normalization": {"channels": list(data.channels), "mean": data.mean, "std": data.std},
            "resolution": data.resolution,
            "data": data.provenance,
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = PhysicsEncoder(encoder_config)
        return model, card

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        target = x0[:, [self.model.config.out_channel]]
        return relative_l2(self.model.surrogate(x0), target).mean()


class RepaMixin:
    """Adds REPA's alignment loss to a denoiser trainer (see :mod:`pdeinv.latent.repa`).

    Class attributes bound by :func:`repa_trainer`: ``encoder`` (frozen), ``encoder_reference``,
    ``target_fields`` (normalised fields ``(N, C, S, S)`` aligned with the training samples),
    ``repa_weight`` and ``repa_layer``.
    """

    encoder: torch.nn.Module
    encoder_reference: str
    target_fields: torch.Tensor
    repa_weight: float = 0.5
    repa_layer: str | None = None

    def build(self, config: TrainConfig, data: TrainingData):
        from pdeinv.latent.checkpoint import encoder_section
        from pdeinv.latent.encoders import token_grid
        from pdeinv.latent.repa import DEFAULT_LAYERS, RepaHead, RepaTargets, layer_width

        if config.augment_symmetries:
            raise ValueError("REPA's targets are computed once per training sample; drop --augment-symmetries")
        model, card = super().build(config, data)
        self.targets = RepaTargets.compute(self.encoder, self.target_fields).tokens
        layer = self.repa_layer or DEFAULT_LAYERS[config.backbone]
        width = layer_width(model, layer, data.fields[:1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            model.repa = RepaHead(layer, width, self.targets.shape[-1], token_grid(self.targets.shape[1]))
        card["repa"] = {
            **model.repa.section(),
            "weight": self.repa_weight,
            "encoder": encoder_section(self.encoder, self.encoder_reference),
        }
        model.card = card
        return model, card

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        from pdeinv.latent.repa import FeatureTap, feature_module
        from pdeinv.priors.edm import edm_loss, sample_training_sigma

        cfg = self.config
        sigma = sample_training_sigma(len(x0), cfg.edm, self.generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=self.generator).to(x0.device)
        head = self.model.repa
        with FeatureTap(feature_module(self.model, head.layer)) as tap:
            denoising = edm_loss(self.net, x0, sigma, noise, cfg.edm.sigma_data)
        target = self.targets[self.batch_index.to(self.targets.device)].to(x0)
        alignment = -F.cosine_similarity(head.project(tap.features), target, dim=-1).mean()
        return denoising + self.repa_weight * alignment


def repa_trainer(base: type[Trainer], encoder, reference: str, target_fields: torch.Tensor, weight: float, layer):
    """``base`` (a denoiser trainer class) with REPA's alignment loss against the frozen ``encoder``."""
    if weight < 0:
        raise ValueError(f"the REPA weight must be non-negative, got {weight}")
    encoder = encoder.eval().requires_grad_(False)
    attributes = {
        "encoder": encoder,
        "encoder_reference": reference,
        "target_fields": target_fields,
        "repa_weight": weight,
        "repa_layer": layer,
    }
    return type(f"Repa{base.__name__}", (RepaMixin, base), attributes)
