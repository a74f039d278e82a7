r"""REPA (Yu et al. 2024) for pdeinv's denoisers, and the alignment term of Align & Invert (2025).

Training. With :math:`h_\ell(x_t, \sigma)` the denoiser backbone's features after layer
:math:`\ell` (average-pooled to the encoder's ``n x n`` token grid), :math:`P_\phi` a token-wise MLP
projector and :math:`e(x_0)` the tokens ``(N, D)`` of a frozen representation encoder of the clean
*field* (decoded, for a latent prior), the loss is

.. math::

    L = L_\text{EDM} + \lambda\, \frac1N \sum_{n=1}^N -\cos\big(e_n(x_0),\, P_\phi(h_\ell)_n\big),
    \qquad \lambda = 0.5 \text{ (REPA's default).}

Sampling (``+repa``, Align & Invert). The term

.. math::

    L_\text{repa}(x_t) = \sum_{n=1}^N \Big(1 - \cos\big(e_n(\tilde x),\, P_\phi(h_\ell(x_t, \sigma))_n\big)\Big)

(summed over the :math:`N` tokens) pulls the denoiser's projected features towards those of a proxy
:math:`\tilde x` built from the measurements (no gradient, :func:`measurement_proxy`): the
measurement itself when it is a field of the target's shape, the current reconstruction with the
measured values pasted in for a point or mask sensor (inpainting), :math:`A^\dagger y` pasted in
otherwise. Its step (:mod:`pdeinv.latent.methods`) is Align & Invert's
:math:`\eta\lambda\nabla/\max(\mathrm{snr}, 1)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting
from torch import nn

from pdeinv.latent.encoders import as_tokens, token_grid
from pdeinv.operators import PointObservation
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import GuidanceState, Term, channel_index

DEFAULT_LAYERS = {"fno": "blocks.1", "unet": "net.mid_block"}
REPA_WEIGHT = 0.5


class Projector(nn.Module):
    """REPA's token-wise MLP ``Linear-SiLU-Linear-SiLU-Linear``: ``(B, N, C) -> (B, N, D)``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256):
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


class RepaHead(nn.Module):
    """Projector plus where to read the backbone's features: layer name and token grid.

    Parameters
    ----------
    layer : str
        Dotted name of a backbone submodule (e.g. ``"blocks.1"`` of ``fno``, ``"net.mid_block"`` of ``unet``).
    in_dim, out_dim : int
        Feature width of that layer and the encoder's token size ``D``.
    grid : int
        Token grid side ``n`` (``N = n^2``); the features are average-pooled to it.
    hidden : int
        Projector width.
    """

    def __init__(self, layer: str, in_dim: int, out_dim: int, grid: int, hidden: int = 256):
        super().__init__()
        self.layer, self.grid = layer, grid
        self.projector = Projector(in_dim, out_dim, hidden)

    def section(self) -> dict:
        """The card's description of this head (without the encoder)."""
        p = self.projector
        return {"layer": self.layer, "grid": self.grid, "in_dim": p.in_dim, "out_dim": p.out_dim, "hidden": p.hidden}

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` backbone features to projected tokens ``(B, grid^2, D)``."""
        return self.projector(as_tokens(F.adaptive_avg_pool2d(features, self.grid)))


class FeatureTap:
    """Context manager recording the output of ``module`` on each forward call (``.features``)."""

    def __init__(self, module: nn.Module):
        self.module, self.features, self.handle = module, None, None

    def _hook(self, module, inputs, output):
        self.features = output[0] if isinstance(output, tuple) else output

    def __enter__(self):
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def feature_module(denoiser: nn.Module, layer: str) -> nn.Module:
    """The backbone submodule ``layer`` of an EDM denoiser, with an error listing valid names."""
    modules = dict(denoiser.backbone.named_modules())
    if layer not in modules:
        names = [n for n in modules if n and n.count(".") <= 1][:20]
        raise ValueError(f"the backbone has no layer {layer!r}; choose one of {names}")
    return modules[layer]


def layer_width(denoiser: nn.Module, layer: str, example: torch.Tensor) -> int:
    """Channels of ``layer``'s output on an example input ``(B, C, S, S)``."""
    with torch.no_grad(), FeatureTap(feature_module(denoiser, layer)) as tap:
        denoiser(example, 1.0)
    return int(tap.features.shape[1])


def attach_head(denoiser: nn.Module, section: dict) -> RepaHead:
    """Build the head a card's ``repa`` section describes and attach it as ``denoiser.repa``."""
    head = RepaHead(section["layer"], section["in_dim"], section["out_dim"], section["grid"], section["hidden"])
    denoiser.repa = head
    return head


def projected_features(denoiser: nn.Module, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(x, sigma), P(h_l))``: the denoised estimate and the projected tokens ``(B, N, D)``."""
    head = _head(denoiser)
    with FeatureTap(feature_module(denoiser, head.layer)) as tap:
        denoised = denoiser(x, sigma)
    return denoised, head.project(tap.features)


def misalignment(projected: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Per-sample :math:`\frac1N \sum_n (1 - \cos(t_n, p_n))` of tokens ``(B, N, D)``, shape ``(B,)``.

    ``reduction="sum"`` drops the :math:`1/N` (Align & Invert's sampling term); ``"mean"`` is REPA's training loss.

    Raises
    ------
    ValueError
        If the token counts or sizes differ (encoder and projector do not match).
    """
    if projected.shape[-1] != target.shape[-1]:
        raise ValueError(
            f"the encoder gives {target.shape[-1]}-dimensional features but the projector outputs "
            f"{projected.shape[-1]}; train the projector with this encoder (REPA head out_dim must equal the "
            "encoder's feature size)"
        )
    if projected.shape[1] != target.shape[1]:
        raise ValueError(
            f"the encoder gives {target.shape[1]} tokens but the projector {projected.shape[1]}; "
            "use the encoder the prior was trained with"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    error = 1.0 - F.cosine_similarity(projected, target.to(projected), dim=-1)
    return error.mean(dim=1) if reduction == "mean" else error.sum(dim=1)


def _head(denoiser: nn.Module) -> RepaHead:
    head = getattr(denoiser, "repa", None)
    if head is None:
        raise ValueError(
            "this prior has no REPA projector; train one with `pdeinv train prior --repa-encoder ...` to use +repa"
        )
    return head


@dataclass
class RepaTargets:
    """Encoder tokens of every training sample, ``(N, tokens, D)``, computed once (frozen encoder)."""

    tokens: torch.Tensor

    @classmethod
    @torch.no_grad()
    def compute(cls, encoder: nn.Module, fields: torch.Tensor, batch_size: int = 64) -> RepaTargets:
        """Tokens of normalised fields ``(N, C, S, S)``."""
        return cls(torch.cat([as_tokens(encoder(chunk)) for chunk in fields.split(batch_size)]))


class RepaTerm(Term):
    """The Align & Invert alignment loss ``(B,)``, summed over the tokens (module docstring).

    Parameters
    ----------
    denoiser : nn.Module
        The REPA-trained EDM denoiser (on the sampler's state space) with its ``repa`` head.
    encoder : nn.Module
        The frozen encoder the head was trained against.
    proxy : callable
        ``proxy(state) -> (B, C, S, S)`` normalised proxy field (no gradient needed).
    schedule : GuidanceSchedule, optional
        Weight and schedule (Align & Invert's step, :mod:`pdeinv.latent.methods`).
    """

    name = "repa"

    def __init__(self, denoiser, encoder, proxy, schedule: GuidanceSchedule | None = None):
        super().__init__(schedule, None)
        _head(denoiser)
        self.denoiser, self.encoder, self.proxy = denoiser, encoder, proxy

    def loss(self, state: GuidanceState) -> torch.Tensor:
        head = _head(self.denoiser)
        with FeatureTap(feature_module(self.denoiser, head.layer)) as tap:
            state.denoise(state.x, state.sigma)
        projected = head.project(tap.features)
        with torch.no_grad():
            target = as_tokens(self.encoder(self.proxy(state).detach()))
        token_grid(target.shape[1])
        return misalignment(projected, target, reduction="sum")


def measurement_proxy(sensor, y: torch.Tensor, channel: str):
    r"""Align & Invert's proxy: the estimate's observed channel replaced by what the measurements give.

    - a point or mask sensor (:math:`A A^\top = I`): :math:`A^\top y + (I - A^\top A)\hat x`, the
      reconstruction with the measured values pasted in (inpainting);
    - ``y`` shaped like the field ``(B, 1, S, S)`` (deblurring): :math:`y` itself;
    - otherwise :math:`A^\dagger y` (``A_dagger``; super-resolution), or the estimate itself
      when the sensor has no pseudo-inverse.
    """
    selection = isinstance(sensor, (PointObservation, Inpainting))

    def proxy(state: GuidanceState) -> torch.Tensor:
        field = state.field.detach()
        physical = state.prior.to_physical(field)
        c = channel_index(state.prior.channels, channel)
        f = physical[:, [c]]
        obs = y.to(f).expand(f.shape[0], *y.shape[1:])
        if selection:
            f = sensor.A_adjoint(obs) + f - sensor.A_adjoint(sensor.A(f))
        elif obs.shape == f.shape:
            f = obs
        elif callable(getattr(sensor, "A_dagger", None)):
            f = sensor.A_dagger(obs)
        return state.prior.to_normalized(torch.cat([physical[:, :c], f, physical[:, c + 1 :]], dim=1))

    return proxy
