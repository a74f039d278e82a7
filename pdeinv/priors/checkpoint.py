"""Prior checkpoints: ``model.safetensors`` (EMA weights) + ``card.json`` in one directory.

The card is the single description of a trained prior::

    {"format": "pdeinv-prior", "format_version": 1,
     "backbone": {"name": "fno", "config": {...}},
     "preconditioning": {"type": "edm", "sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2},
     "normalization": {"channels": [...], "mean": [...], "std": [...]},
     "resolution": 64,
     "data": {"path": ..., "n_samples": ..., "attrs": {"pde": ..., "seed": ..., ...}},
     "training": {"command": ..., "steps": ..., "wall_time_s": ..., "device": ..., "config": {...}},
     "quality": {...}}                      # filled in by pdeinv.priors.quality when measured

``load(name_or_path)`` rebuilds the :class:`~pdeinv.priors.edm.EDMDenoiser` from the card and
checks the weights against it. Packages that extend the card register how: a section whose prior
is built elsewhere (``latent``: a latent prior, registered by :mod:`pdeinv.latent`) with
:func:`register_card_loader`, a section that adds a head to the network (``repa``) with
:func:`register_card_head`.
All writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pdeinv.errors import NonFiniteError
from pdeinv.files import atomic_write
from pdeinv.plugins import load_plugins
from pdeinv.priors.base import FieldPrior
from pdeinv.priors.backbones import BACKBONES, build_backbone
from pdeinv.priors.edm import EDMConfig, EDMDenoiser
from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser

FORMAT = "pdeinv-prior"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CARD = "card.json"
SHIPPED = Path(__file__).parent / "checkpoints"
CARD_LOADERS: dict = {}  # card section -> loader(card, directory, device=...) -> prior
CARD_HEADS: dict = {}  # card section -> attach(network, section)
EXTENSIONS = ("latent", "repa")  # card sections that a plugin (pdeinv.plugins) handles


def register_card_loader(section: str, loader) -> None:
    """Build the priors whose card has ``section`` with ``loader(card, directory, device=...)``."""
    CARD_LOADERS[section] = loader


def register_card_head(section: str, attach) -> None:
    """Call ``attach(network, card[section])`` on a prior whose card has ``section``, before its weights load."""
    CARD_HEADS[section] = attach


def _unhandled(card: dict, directory: Path) -> None:
    """Load the plugins when the card has a section no registered loader or head handles yet."""
    def missing() -> list[str]:
        return [s for s in EXTENSIONS if s in card and s not in CARD_LOADERS and s not in CARD_HEADS]

    if missing():
        load_plugins()
    if missing():
        raise ValueError(f"{directory} has a {missing()[0]!r} section that no installed pdeinv plugin handles")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (:func:`pdeinv.files.atomic_write`), flushed to disk."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def write_card(directory: Path, card: dict) -> None:
    """Write ``card.json`` atomically."""
    atomic_write_bytes(Path(directory) / CARD, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())


def save_prior(prior: EDMDenoiser, directory: str | Path, card: dict) -> Path:
    """Save a prior's weights (safetensors) and its card (JSON) into ``directory``.

    Parameters
    ----------
    prior : EDMDenoiser
        The prior, usually the EMA copy of a trained model.
    directory : str or Path
        Created if missing.
    card : dict
        The card (see the module docstring); stored as ``card.json`` and on ``prior.card``.

    Raises
    ------
    NonFiniteError
        If a weight is NaN or infinite (nothing is written).
    """
    from safetensors.torch import save

    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in prior.state_dict().items()}
    check_finite_tensors(tensors, f"the prior to save into {directory}", "nothing was written")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS, save(tensors))
    write_card(directory, card)
    prior.card = dict(card)
    return directory


def shipped_priors() -> list[str]:
    """Names of the priors shipped in ``pdeinv/priors/checkpoints/`` (not the autoencoders and encoders beside them)."""
    if not SHIPPED.is_dir():
        return []
    cards = [p / CARD for p in SHIPPED.iterdir() if (p / CARD).is_file()]
    return sorted(c.parent.name for c in cards if json.loads(c.read_text()).get("format") == FORMAT)


def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint directory for a path or a shipped prior name.

    Raises
    ------
    FileNotFoundError
        If it is neither an existing directory nor a shipped name.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if (SHIPPED / str(name_or_path)).is_dir():
        return SHIPPED / str(name_or_path)
    raise FileNotFoundError(
        f"no prior checkpoint at {str(name_or_path)!r}: expected a directory holding {WEIGHTS} and {CARD} "
        f"(written by `pdeinv train prior --out DIR`) or a shipped prior name, one of {shipped_priors()}"
    )


def read_card(directory: str | Path) -> dict:
    """Read and check ``card.json`` of a checkpoint directory.

    Raises
    ------
    FileNotFoundError, ValueError
        If the card is missing, not valid JSON or not a pdeinv prior card.
    """
    path = Path(directory) / CARD
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a prior checkpoint needs {CARD} beside {WEIGHTS}")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-save the checkpoint with `pdeinv train`") from err
    if isinstance(card, dict) and card.get("format") == "pdeinv-autoencoder":
        raise ValueError(f"{path} describes an autoencoder, not a prior; load it with pdeinv.latent.load_autoencoder")
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pdeinv prior card: expected \"format\": \"{FORMAT}\"")
    missing = [k for k in ("backbone", "preconditioning", "normalization", "resolution") if k not in card]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing} that a pdeinv prior card must have")
    return card


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked to be finite.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If it is not a readable safetensors file.
    NonFiniteError
        If a tensor holds NaN or infinite values (the message names it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a prior checkpoint needs {WEIGHTS} beside {CARD}")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err}); the checkpoint is corrupt") from err
    check_finite_tensors(weights, str(path))
    return weights


def check_finite_tensors(
    tensors: dict[str, torch.Tensor],
    where: str,
    hint: str = "the weights are unusable (the run that wrote them diverged): use an earlier checkpoint or retrain",
) -> None:
    """Raise :class:`~pdeinv.errors.NonFiniteError` naming the first tensor of ``tensors`` with NaN or inf."""
    for name, tensor in tensors.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise NonFiniteError(
                f"{where}: tensor {name!r} holds {bad} NaN or infinite value(s) of {tensor.numel()}; {hint}"
            )


def prior_from_card(card: dict) -> EDMDenoiser:
    """Build an (untrained) :class:`EDMDenoiser` exactly as the card describes it."""
    backbone = card["backbone"]
    if backbone.get("name") not in BACKBONES:
        raise ValueError(f"card names backbone {backbone.get('name')!r}; expected one of {sorted(BACKBONES)}")
    pre = card["preconditioning"]
    if pre.get("type") != "edm":
        raise ValueError(f"card names preconditioning {pre.get('type')!r}; only 'edm' is supported")
    norm = card["normalization"]
    base = pre.get("gaussian_base")
    if base is not None:
        base = SpectralGaussianDenoiser(base["basis"], len(norm["channels"]), base["resolution"])
    return EDMDenoiser(
        build_backbone(backbone["name"], **backbone.get("config", {})),
        EDMConfig(sigma_data=pre["sigma_data"], p_mean=pre["p_mean"], p_std=pre["p_std"]),
        channels=norm["channels"],
        mean=norm["mean"],
        std=norm["std"],
        resolution=card["resolution"],
        card=card,
        base=base,
        residual=pre.get("residual", "edm"),
    )


def _check_shapes(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], where: Path) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{k}: card gives {tuple(expected[k].shape)}, weights have {tuple(found[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if expected[k].shape != found[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}")
        if wrong:
            parts.append("shape mismatches " + "; ".join(wrong[:5]))
        raise ValueError(
            f"{where} does not match the model its card describes ({', '.join(parts)}); "
            "the card and weights come from different runs or backbones"
        )


def weights_for_model(model: torch.nn.Module, directory: Path) -> dict[str, torch.Tensor]:
    """The finite tensors of ``directory``'s weights, checked to match ``model``'s names and shapes.

    Raises
    ------
    ValueError
        For a corrupt file, a non-finite tensor or a tensor the model lacks or shapes differently.
    """
    weights = _read_weights(directory / WEIGHTS)
    _check_shapes(model.state_dict(), weights, directory / WEIGHTS)
    return weights


def load(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    consistent: bool = False,
    solver_dt: float | None = None,
) -> FieldPrior:
    """Load a trained prior from a checkpoint directory or a shipped name.

    Parameters
    ----------
    name_or_path : str or Path
        Directory with ``model.safetensors`` and ``card.json``, or a name from :func:`shipped_priors`.
    device : str or torch.device
        Where to put the prior.
    consistent : bool
        Return a joint prior in operator-consistent form even when it was not trained in it: its
        solution channel is the solve of its input channel (:mod:`pdeinv.priors.consistent`; for
        Navier-Stokes the projection onto the solutions).
    solver_dt : float, optional
        Time step of that form's solve for a time-dependent PDE (default: the training data's).

    Returns
    -------
    EDMDenoiser or OperatorConsistentPrior
        In eval mode, implementing the prior contract (``denoise``, ``channels``, ``mean``, ``std``, ...);
        an :class:`~pdeinv.priors.consistent.OperatorConsistentPrior` around the network when it was
        trained in that form (card key ``operator_consistent``).

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing, corrupt or mismatched checkpoint, saying what was expected; for ``consistent``
        on a latent prior, and for ``solver_dt`` without the consistent form or a time-dependent PDE.
    """
    directory = resolve(name_or_path)
    card = read_card(directory)
    wants_form = consistent or "operator_consistent" in card
    if solver_dt is not None and not wants_form:
        raise ValueError("solver_dt sets the solve of the operator-consistent form; pass consistent=True")
    _unhandled(card, directory)
    for section, loader in CARD_LOADERS.items():
        if section in card:
            if consistent:
                raise ValueError(
                    f"{directory} is a {section} prior; the operator-consistent form needs a joint field prior"
                )
            return loader(card, directory, device=device)
    prior = prior_from_card(card)
    for section, attach in CARD_HEADS.items():
        if section in card:
            attach(prior, card[section])
    prior.load_state_dict(weights_for_model(prior, directory))
    prior = prior.to(device).eval()
    if wants_form:
        from pdeinv.priors.consistent import consistent_from_card

        prior = consistent_from_card(prior, card, solver_dt).to(device).eval()
    return prior
