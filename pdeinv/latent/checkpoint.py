"""Checkpoints of latent space: the autoencoder's, and the latent prior's link to its autoencoder.

An autoencoder directory holds ``model.safetensors`` and a ``card.json`` with
``"format": "pdeinv-autoencoder"``, its :class:`~pdeinv.latent.autoencoder.AutoencoderConfig`
(``autoencoder``), the field ``normalization``, ``resolution``, ``data`` and ``training``.

A latent prior is an ordinary prior checkpoint (``"format": "pdeinv-prior"``) trained on latents,
whose card has a ``latent`` section::

    "latent": {"autoencoder": "ns-autoencoder", "autoencoder_sha256": "...",
               "field": {"channels": [...], "mean": [...], "std": [...], "resolution": 64}}

:func:`load_latent_prior` loads both and refuses an autoencoder whose weights differ from the one
the prior was trained with.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pdeinv.latent.autoencoder import AutoencoderConfig, FieldAutoencoder
from pdeinv.priors.checkpoint import CARD, WEIGHTS, _check_shapes, _read_weights, prior_from_card, resolve

AUTOENCODER_FORMAT = "pdeinv-autoencoder"


def read_autoencoder_card(directory: str | Path) -> dict:
    """Read ``card.json`` of an autoencoder directory.

    Raises
    ------
    FileNotFoundError, ValueError
        If the card is missing or is not an autoencoder card.
    """
    import json

    path = Path(directory) / CARD
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: an autoencoder checkpoint needs {CARD} beside {WEIGHTS}")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the autoencoder checkpoint is corrupt") from err
    found = card.get("format") if isinstance(card, dict) else None
    if found != AUTOENCODER_FORMAT:
        raise ValueError(
            f"{path} is not an autoencoder card (format {found!r}, expected {AUTOENCODER_FORMAT!r}); "
            "train one with `pdeinv train autoencoder`"
        )
    return card


def load_autoencoder(name_or_path: str | Path, device: str | torch.device = "cpu") -> FieldAutoencoder:
    """Load a trained :class:`FieldAutoencoder` from a directory or a shipped name (eval mode)."""
    directory = resolve(name_or_path)
    card = read_autoencoder_card(directory)
    norm = card["normalization"]
    model = FieldAutoencoder(
        AutoencoderConfig(**card["autoencoder"]),
        channels=norm["channels"],
        mean=norm["mean"],
        std=norm["std"],
        resolution=card["resolution"],
        card=card,
    )
    weights = _read_weights(directory / WEIGHTS)
    _check_shapes(model.state_dict(), weights, directory / WEIGHTS)
    model.load_state_dict(weights)
    return model.to(device).eval()


def fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes and float32 values, complex as (real, imag), in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        values = torch.view_as_real(tensor.detach().cpu()) if tensor.is_complex() else tensor.detach().cpu()
        digest.update(values.to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def latent_section(autoencoder: FieldAutoencoder, reference: str) -> dict:
    """The ``latent`` card section of a prior trained on ``autoencoder``'s latents."""
    return {
        "autoencoder": str(reference),
        "autoencoder_sha256": fingerprint(autoencoder),
        "field": {
            "channels": list(autoencoder.channels),
            "mean": autoencoder.mean.tolist(),
            "std": autoencoder.std.tolist(),
            "resolution": autoencoder.resolution,
        },
    }


def check_pairing(card: dict, autoencoder: FieldAutoencoder, where: str = "the latent prior") -> None:
    """Raise ValueError unless ``autoencoder`` is the one the latent prior with ``card`` was trained on."""
    section = card.get("latent")
    if section is None:
        raise ValueError(f"{where} is not a latent prior: its card has no 'latent' section")
    found = fingerprint(autoencoder)
    if found != section["autoencoder_sha256"]:
        raise ValueError(
            f"{where} was trained on the latents of autoencoder {section['autoencoder']!r} "
            f"(weights sha256 {section['autoencoder_sha256'][:12]}...), but the autoencoder given has weights "
            f"sha256 {found[:12]}...; its latents mean something else. Pass the autoencoder the prior was "
            "trained with, or train a latent prior on this autoencoder (`pdeinv train prior --autoencoder DIR`)"
        )
    latent_channels = card["backbone"]["config"].get("channels")
    if latent_channels is not None and latent_channels != autoencoder.config.latent_channels:
        raise ValueError(
            f"{where} has {latent_channels} latent channels, the autoencoder {autoencoder.config.latent_channels}"
        )


def locate(reference: str, beside: Path | None = None) -> Path:
    """A checkpoint a card refers to: the path as recorded, else the same name beside ``beside``, else shipped."""
    path = Path(reference)
    if path.is_dir():
        return path
    if beside is not None and (Path(beside) / path.name).is_dir():
        return Path(beside) / path.name
    return resolve(path.name)


def load_latent_prior(card: dict, directory: Path, autoencoder=None, device: str | torch.device = "cpu"):
    """Build the :class:`~pdeinv.latent.space.LatentPrior` of a latent prior checkpoint.

    Parameters
    ----------
    card : dict
        The prior's card (with its ``latent`` section).
    directory : Path
        The prior's checkpoint directory.
    autoencoder : FieldAutoencoder or str or Path, optional
        The autoencoder (default: the one the card names, resolved as a directory, relative to
        ``directory``, or a shipped name).

    Raises
    ------
    ValueError
        If the autoencoder is not the one the prior was trained on.
    """
    from pdeinv.latent.space import LatentPrior

    if autoencoder is None:
        autoencoder = locate(card["latent"]["autoencoder"], Path(directory).parent)
    if not isinstance(autoencoder, FieldAutoencoder):
        autoencoder = load_autoencoder(autoencoder)
    check_pairing(card, autoencoder, where=f"the latent prior in {directory}")
    denoiser = prior_from_card(card)
    if "repa" in card:
        from pdeinv.latent.repa import attach_head

        attach_head(denoiser, card["repa"])
    weights = _read_weights(Path(directory) / WEIGHTS)
    _check_shapes(denoiser.state_dict(), weights, Path(directory) / WEIGHTS)
    denoiser.load_state_dict(weights)
    return LatentPrior(denoiser.eval(), autoencoder).to(device).eval()


def encoder_section(encoder, reference: str) -> dict:
    """The ``encoder`` entry of a card's ``repa`` section: kind, where to find it, weights' SHA-256."""
    from pdeinv.latent.encoders import AutoencoderFeatures

    if isinstance(encoder, AutoencoderFeatures):
        return {"kind": "autoencoder", "reference": "autoencoder", "sha256": fingerprint(encoder.autoencoder)}
    card = getattr(encoder, "card", {})
    return {"kind": card.get("kind", type(encoder).__name__), "reference": str(reference), "sha256": fingerprint(encoder)}


def repa_encoder(prior):
    """The frozen encoder a REPA-trained prior was aligned with, checked against the card's SHA-256.

    Raises
    ------
    ValueError
        If the prior has no REPA section, or the encoder found is not the one it was trained with.
    """
    from pdeinv.latent.encoders import AutoencoderFeatures, load_encoder

    section = prior.card.get("repa")
    if section is None:
        raise ValueError("this prior was not trained with REPA (its card has no 'repa' section); +repa needs one")
    spec = section["encoder"]
    if spec["kind"] == "autoencoder":
        if not hasattr(prior, "autoencoder"):
            raise ValueError("the prior was aligned with an autoencoder's encoder but is not a latent prior")
        encoder = AutoencoderFeatures(prior.autoencoder)
        found = fingerprint(prior.autoencoder)
    else:
        encoder = load_encoder(locate(spec["reference"]))
        found = fingerprint(encoder)
    if found != spec["sha256"]:
        raise ValueError(
            f"the REPA encoder {spec['reference']!r} has weights sha256 {found[:12]}..., but the prior was aligned "
            f"with sha256 {spec['sha256'][:12]}...; use the encoder the prior was trained with"
        )
    return encoder.eval().requires_grad_(False)
