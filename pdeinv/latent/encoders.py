r"""Frozen representation encoders for REPA: fields ``(B, C, S, S)`` to tokens ``(B, N, D)``.

Any ``torch.nn.Module`` mapping a normalised field to tokens ``(B, N, D)`` (or to a feature map
``(B, D, h, w)``, read as :math:`N = hw` tokens) can serve. Three are built in:

- :class:`PhysicsEncoder`: the hidden features of a Fourier-neural-operator surrogate of the PDE
  (input field to output field), trained with ``pdeinv train surrogate``; its features
  after ``depth`` spectral blocks, average-pooled to a ``grid x grid`` token map.
- :class:`AutoencoderFeatures`: the latent autoencoder's own encoder, up to its middle block.
- :class:`ViTEncoder`: a DINOv2-style vision transformer (patch tokens after the final norm),
  loaded from a local directory (``config.json`` + ``model.safetensors``); nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.files import atomic_write

ENCODER_FORMAT = "pdeinv-encoder"


def as_tokens(features: torch.Tensor) -> torch.Tensor:
    """``(B, D, h, w)`` feature maps to ``(B, hw, D)`` tokens; ``(B, N, D)`` tokens pass through."""
    if features.ndim == 4:
        return features.flatten(2).transpose(1, 2)
    if features.ndim == 3:
        return features
    raise ValueError(f"an encoder must return (B, N, D) tokens or (B, D, h, w) maps, got shape {tuple(features.shape)}")


class SpectralConv2d(nn.Module):
    r"""Fourier layer :math:`\mathcal F^{-1}(R \cdot \mathcal F h)` keeping ``modes`` frequencies per axis."""

    def __init__(self, width: int, modes: int):
        super().__init__()
        self.modes = modes
        scale = 1.0 / width
        self.weight = nn.Parameter(scale * torch.randn(2, width, width, 2 * modes, modes, dtype=torch.cfloat))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, W, S, S) -> (B, W, S, S)``; ``S >= 2 * modes``."""
        s = h.shape[-1]
        m = min(self.modes, s // 2)
        spectrum = torch.fft.rfft2(h, norm="ortho")
        out = torch.zeros_like(spectrum)
        rows = torch.cat([torch.arange(m), torch.arange(s - m, s)]).to(h.device)
        block = spectrum[:, :, rows, :m]
        weight = torch.cat([self.weight[0, :, :, :m, :m], self.weight[0, :, :, -m:, :m]], dim=2)
        out[:, :, rows, :m] = torch.einsum("bixy,ioxy->boxy", block, weight)
        return torch.fft.irfft2(out, s=h.shape[-2:], norm="ortho")


@dataclass(frozen=True)
class PhysicsEncoderConfig:
    """Hyper-parameters of :class:`PhysicsEncoder`.

    Parameters
    ----------
    in_channel, out_channel : int
        Indices of the PDE's input and output fields among the prior's channels.
    channels : int
        Channels of the fields it reads.
    width, modes, n_layers : int
        Hidden width, Fourier modes per axis and spectral blocks of the surrogate.
    depth : int
        Blocks after which the features are read (1..n_layers).
    grid : int
        Token grid (features average-pooled to ``grid x grid``).
    """

    in_channel: int = 0
    out_channel: int = 1
    channels: int = 2
    width: int = 32
    modes: int = 12
    n_layers: int = 4
    depth: int = 2
    grid: int = 16

    def __post_init__(self):
        if not 1 <= self.depth <= self.n_layers:
            raise ValueError(f"depth must be in 1..n_layers = {self.n_layers}, got {self.depth}")


class PhysicsEncoder(nn.Module):
    r"""FNO surrogate :math:`G: f_\text{in} \mapsto f_\text{out}` whose hidden features are REPA's target.

    ``surrogate(field)`` predicts the (normalised) output channel ``(B, 1, S, S)`` from the input
    channel of a joint field; ``forward(field)`` returns the tokens ``(B, grid^2, width)`` after
    ``depth`` blocks (the representation).
    """

    def __init__(self, config: PhysicsEncoderConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.lift = nn.Conv2d(1, w, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(w, config.modes) for _ in range(config.n_layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(w, w, 1) for _ in range(config.n_layers))
        self.head = nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.GELU(), nn.Conv2d(2 * w, 1, 1))

    def hidden(self, field: torch.Tensor, depth: int) -> torch.Tensor:
        """Features ``(B, width, S, S)`` after ``depth`` blocks."""
        h = self.lift(field[:, [self.config.in_channel]])
        for spectral, pointwise in list(zip(self.spectral, self.pointwise))[:depth]:
            h = F.gelu(spectral(h) + pointwise(h))
        return h

    def surrogate(self, field: torch.Tensor) -> torch.Tensor:
        """Predicted output channel ``(B, 1, S, S)`` of a normalised joint field ``(B, C, S, S)``."""
        return self.head(self.hidden(field, self.config.n_layers))

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, grid^2, width)`` of a normalised joint field ``(B, C, S, S)``."""
        h = self.hidden(field, self.config.depth)
        return as_tokens(F.adaptive_avg_pool2d(h, self.config.grid))


class AutoencoderFeatures(nn.Module):
    """The latent autoencoder's encoder up to its middle block: ``(B, C, S, S) -> (B, (S/r)^2, width)``."""

    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        encoder = self.autoencoder.net.encoder
        h = encoder.conv_in(field)
        for block in encoder.down_blocks:
            h = block(h)
        return as_tokens(encoder.mid_block(h))


@dataclass(frozen=True)
class ViTConfig:
    """A DINOv2-style ViT: ``patch``-size patches of a ``channels x image`` field, ``depth`` pre-norm blocks."""

    image: int = 64
    patch: int = 4
    channels: int = 2
    dim: int = 64
    depth: int = 2
    heads: int = 2


class ViTBlock(nn.Module):
    """Pre-norm transformer block: attention and MLP residuals."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """DINOv2-style ViT returning its normalised patch tokens ``(B, (image/patch)^2, dim)`` (no CLS)."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        n = (config.image // config.patch) ** 2
        self.patch_embed = nn.Conv2d(config.channels, config.dim, config.patch, stride=config.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, n + 1, config.dim))
        self.blocks = nn.ModuleList(ViTBlock(config.dim, config.heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        if field.shape[-1] != self.config.image or field.shape[1] != self.config.channels:
            raise ValueError(
                f"this ViT reads ({self.config.channels}, {self.config.image}, {self.config.image}) fields, "
                f"got {tuple(field.shape[1:])}"
            )
        x = as_tokens(self.patch_embed(field))
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1:]


ENCODERS = {"physics": (PhysicsEncoderConfig, PhysicsEncoder), "vit": (ViTConfig, ViTEncoder)}


def save_encoder(encoder: nn.Module, directory: str | Path, extra: dict | None = None) -> Path:
    """Save a :class:`PhysicsEncoder` or :class:`ViTEncoder` as ``model.safetensors`` + ``card.json``.

    Each file is written to a temporary name and renamed, so a killed save leaves no truncated file.
    """
    from safetensors.torch import save_file

    kind = next((k for k, (_, cls) in ENCODERS.items() if isinstance(encoder, cls)), None)
    if kind is None:
        raise ValueError(f"save_encoder saves PhysicsEncoder or ViTEncoder, not {type(encoder).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / "model.safetensors") as tmp:
        save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()}, str(tmp))
    card = {"format": ENCODER_FORMAT, "kind": kind, "config": asdict(encoder.config), **(extra or {})}
    with atomic_write(directory / "card.json") as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return directory


def load_encoder(name_or_path: str | Path) -> nn.Module:
    """Load a frozen encoder saved by :func:`save_encoder` (or ``pdeinv train surrogate``).

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing directory, a card of another kind or weights that do not fit it.
    """
    from safetensors.torch import load_file

    from pdeinv.priors.checkpoint import resolve

    directory = resolve(name_or_path)
    card = json.loads((directory / "card.json").read_text())
    if card.get("format") != ENCODER_FORMAT or card.get("kind") not in ENCODERS:
        raise ValueError(
            f"{directory} is not a pdeinv encoder (card format {card.get('format')!r}, kind {card.get('kind')!r}); "
            f"expected format {ENCODER_FORMAT!r} and kind one of {sorted(ENCODERS)}"
        )
    config_class, encoder_class = ENCODERS[card["kind"]]
    encoder = encoder_class(config_class(**card["config"]))
    try:
        encoder.load_state_dict(load_file(str(directory / "model.safetensors")))
    except RuntimeError as err:
        raise ValueError(f"{directory}/model.safetensors does not fit its card ({err})") from err
    encoder.card = card
    return encoder.eval().requires_grad_(False)


def token_grid(n_tokens: int) -> int:
    """Side of the square token grid of ``n_tokens`` tokens (ValueError if not a square)."""
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(f"the encoder gives {n_tokens} tokens, which is not a square grid; REPA needs h x w = n^2")
    return side
