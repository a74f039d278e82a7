r"""Loss terms of the particle methods (RLSD, DWGF).

A term maps a :class:`~pdeinv.sampling.particles.engine.ParticleStep` to a per-particle loss
``(B,)``; the engine sums the terms and takes one Adam step. Terms whose gradient is given rather
than derived are written as surrogates :math:`\langle \mathrm{sg}[g], z \rangle / d` (``sg`` =
stop-gradient, :math:`d` = the number of state coordinates), whose gradient is :math:`g / d`.
Notation: :math:`z` particles (or ``step.prior_state``, their decoded field, in a space that
only parametrises the prior's fields), :math:`x` auxiliary variables, :math:`\mathcal D` =
``space.decode``, :math:`z_t = z + \sigma_t \varepsilon`, :math:`D_\theta` the prior's denoiser, :math:`r(f)` the
measurement residual of a normalised field :math:`f` in the observed channel's normalised units.

Score distillation in EDM form: with :math:`\hat\varepsilon = (z_t - D_\theta(z_t))/\sigma` the
RED-diff/SDS residual :math:`g = \hat\varepsilon - \varepsilon` times the weight :math:`\sigma/\alpha`
(:math:`\alpha = 1` here) is :math:`\sigma g = z - D_\theta(z_t, \sigma)`; the same expression
results from the variance-preserving form, so the weight :math:`\sigma/\alpha` of the reference
code is built in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdeinv.sampling.particles.engine import ParticleStep
from pdeinv.sampling.particles.kernel import BANDWIDTHS, check_features, log_kernel_sum
from pdeinv.sampling.terms import ObservationTerm, select_channels


def _randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x)


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def _surrogate(gradient: torch.Tensor, variable: torch.Tensor) -> torch.Tensor:
    """Per-particle :math:`\\langle \\mathrm{sg}[g], z \\rangle / d`, gradient :math:`g / d`."""
    return _mean(gradient.detach() * variable)


class ParticleTerm:
    """Base class: a name, a weight and a per-particle loss ``(B,)``."""

    name = "term"

    def __init__(self, weight: float = 1.0):
        if not weight >= 0:
            raise ValueError(f"{self.name}: weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def check(self, per_group: int) -> None:
        """Raise a ValueError if the term cannot run with ``per_group`` particles per measurement."""

    def loss(self, step: ParticleStep) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(step)")


class Measurement:
    r"""Residual :math:`r(f) = s_c\,(P(\mathrm{phys}(f)_c) - y)` of normalised fields ``(B, C, S, S)``, ``(B, M)``.

    Wraps :class:`~pdeinv.sampling.terms.ObservationTerm` (its ``residual``): ``sensor`` acts on the
    physical channel ``channel``; ``scale`` :math:`s_c` is the inverse of that channel's std.
    """

    def __init__(self, sensor, y: torch.Tensor, channel: str, prior, scale: float):
        self.observation = ObservationTerm(sensor, y, channel, loss="mse", scale=scale)
        self.prior, self.channel = prior, channel

    def residual(self, field: torch.Tensor) -> torch.Tensor:
        physical = self.prior.to_physical(field)
        return self.observation.residual(select_channels(physical, self.prior.channels, [self.channel]))


def noisy_field_features(step: ParticleStep, noisy: torch.Tensor) -> torch.Tensor:
    r"""The decoded noisy state :math:`\mathcal D(z_t)` of each particle, flattened: ``(B, C S^2)``.

    RLSD's code puts its kernel on DINO features of the decoded noisy latent; a field has no
    such image network, so the features are the decoded field itself. In a space that only
    parametrises the prior's fields (``parametrises_field``) the noise is added to the decoded
    field, which is then already :math:`\mathcal D(z_t)`.
    """
    field = noisy if getattr(step.space, "parametrises_field", False) else step.space.decode(noisy)
    return field.flatten(1)


FeatureMap = Callable[[ParticleStep, torch.Tensor], torch.Tensor]


class ScoreDistillation(ParticleTerm):
    r"""RED-diff / SDS with weight :math:`\sigma/\alpha`, with RLSD's repulsion inside its gradient.

    Loss :math:`w\,\langle \mathrm{sg}[g], z\rangle / d` with

    .. math:: g = z - D_\theta(z_t, \sigma_t)
              + \gamma\,\sigma_t^2\,\nabla_{z_t} \log \textstyle\sum_{j \ne i} k\big(f(z_t^i), f(z_t^j)\big),

    the repulsion entering as the score correction :math:`\tilde s = s_\theta - \gamma \nabla \log
    \sum_j k` of RLSD's code (its ``noise_pred = e - eps - gamma sqrt(1 - abar) nabla_log``, in VE form
    :func:`~pdeinv.sampling.methods.units.particle_units`): the gradient is taken at the noisy state
    :math:`z_t` with the neighbours and the bandwidth held fixed, and applied to :math:`z`.
    :math:`k` is the RBF kernel (:mod:`~pdeinv.sampling.particles.kernel`) on features :math:`f` of
    the noisy state (default :func:`noisy_field_features`).

    Parameters
    ----------
    weight : float
        :math:`w` (RLSD: :math:`\lambda/\rho`).
    repulsion : float
        :math:`\gamma` (0: plain score distillation).
    bandwidth : {"per-particle", "pooled"}
        Kernel bandwidth (:func:`~pdeinv.sampling.particles.kernel.median_bandwidth`).
    features : callable, optional
        ``features(step, noisy) -> (B, F)``, differentiable in ``noisy``.
    """

    name = "score distillation"

    def __init__(self, weight: float = 1.0, repulsion: float = 0.0, bandwidth: str = "per-particle",
                 features: FeatureMap | None = None):
        super().__init__(weight)
        if not repulsion >= 0:
            raise ValueError(f"{self.name}: repulsion must be >= 0, got {repulsion}")
        if bandwidth not in BANDWIDTHS:
            raise ValueError(f"unknown bandwidth {bandwidth!r}; choose one of {BANDWIDTHS}")
        self.repulsion, self.bandwidth = float(repulsion), bandwidth
        self.features = noisy_field_features if features is None else features

    def check(self, per_group: int) -> None:
        if self.repulsion == 0:
            return
        least = 3 if self.bandwidth == "per-particle" else 2
        if per_group < least:
            raise ValueError(
                f"repulsion with the {self.bandwidth} bandwidth needs at least {least} particles per measurement, "
                f"got {per_group}; use samples >= {least} (RLSD reports N = 4) or the non-repulsive variant (gamma 0)"
            )

    def repulsion_gradient(self, step: ParticleStep) -> torch.Tensor:
        r""":math:`\nabla_{z_t} \log \sum_{j \ne i} k_{ij}` per particle, shaped like ``step.prior_state``."""
        noisy = step.noisy.detach().requires_grad_(True)
        with torch.enable_grad():
            features = check_features(self.features(step, noisy), noisy.shape[0], step.per_group)
            potential = log_kernel_sum(features, self.bandwidth).sum()
            return torch.autograd.grad(potential, noisy)[0]

    def loss(self, step: ParticleStep) -> torch.Tensor:
        z = step.prior_state
        gradient = z.detach() - step.denoised
        if self.repulsion > 0:
            gradient = gradient + self.repulsion * step.sigma**2 * self.repulsion_gradient(step)
        return self.weight * _surrogate(gradient, z)


class Coupling(ParticleTerm):
    r"""Half-quadratic coupling :math:`\tfrac w2 \overline{(x - \mathcal D(z))^2}` (mean over field coordinates).

    ``acts_on="particles"`` differentiates in :math:`z` with :math:`x` fixed; ``"aux"`` in :math:`x`
    with :math:`\mathcal D(z)` fixed.
    """

    name = "coupling"

    def __init__(self, weight: float = 1.0, acts_on: str = "particles"):
        super().__init__(weight)
        if acts_on not in ("particles", "aux"):
            raise ValueError(f"acts_on must be 'particles' or 'aux', got {acts_on!r}")
        self.acts_on = acts_on

    def loss(self, step: ParticleStep) -> torch.Tensor:
        if self.acts_on == "particles":
            difference = step.aux.detach() - step.field
        else:
            difference = step.aux - step.field.detach()
        return 0.5 * self.weight * _mean(difference**2)


class DataFit(ParticleTerm):
    r""":math:`\tfrac w2 \overline{r(x)^2}` of the auxiliary variables (mean over measurements)."""

    name = "data fit"

    def __init__(self, measurement: Measurement, weight: float = 1.0):
        super().__init__(weight)
        self.measurement = measurement

    def loss(self, step: ParticleStep) -> torch.Tensor:
        return 0.5 * self.weight * _mean(self.measurement.residual(step.aux) ** 2)


class DecoderLikelihood(ParticleTerm):
    r"""The likelihood through the decoder (DWGF).

    Loss :math:`\tfrac w2 \overline{r(\mathcal D(z) + s\,n)^2}`, :math:`n \sim N(0, I)`.
    """

    name = "decoder likelihood"

    def __init__(self, measurement: Measurement, weight: float = 1.0, decoder_std: float = 0.0):
        super().__init__(weight)
        self.measurement, self.decoder_std = measurement, float(decoder_std)

    def loss(self, step: ParticleStep) -> torch.Tensor:
        field = step.field
        if self.decoder_std > 0:
            field = field + self.decoder_std * _randn_like(field, step.generator)
        return 0.5 * self.weight * _mean(self.measurement.residual(field) ** 2)


def mixture_denoiser(step: ParticleStep) -> torch.Tensor:
    r"""Denoiser of the particle mixture :math:`\mu = \frac1N \sum_j \delta_{z_j}` at :math:`z_t`.

    .. math:: D_\mu(z_t^i) = \sum_j \operatorname{softmax}_j\!\Big(-\frac{\|z_t^i - z^j\|^2}{2\sigma_t^2}\Big) z^j,

    so that :math:`\nabla \log \mu_t(z_t^i) = (D_\mu(z_t^i) - z_t^i)/\sigma_t^2` (the exact score of
    the particles pushed through the forward kernel). Returns a detached tensor shaped like
    ``step.prior_state``.
    """
    z = step.prior_state.detach()
    clean = step.grouped(z).flatten(2)
    noisy = step.grouped(step.noisy).flatten(2)
    distances = (noisy[:, :, None, :] - clean[:, None, :, :]).pow(2).sum(-1)
    weights = torch.softmax(-distances / (2 * step.sigma**2), dim=-1)
    return torch.einsum("gij,gjd->gid", weights, clean).reshape(z.shape)


class MixtureRegulariser(ParticleTerm):
    r"""DWGF's diffusion regulariser: :math:`\gamma \langle \mathrm{sg}[D_\mu(z_t) - D_\theta(z_t)], z\rangle / d`.

    The gradient :math:`\gamma\,\sigma_t^2 (\nabla \log \mu_t - \nabla \log p_{\theta,t})` of
    :math:`\gamma\,\mathrm{KL}(\mu_t \| p_{\theta, t})` with the weight :math:`\sigma/\alpha` (EDM
    form, see the module docstring). For one particle :math:`D_\mu(z_t) = z` and this is score
    distillation; with several, the mixture couples them.
    """

    name = "diffusion regulariser"

    def loss(self, step: ParticleStep) -> torch.Tensor:
        return self.weight * _surrogate(mixture_denoiser(step) - step.denoised, step.prior_state)


class AutoencoderScore(ParticleTerm):
    r"""DWGF's encoder-decoder prior score.

    :math:`\nabla \log p(x_0) \approx (\mathcal D(\mathcal E(\tilde x)) - x_0)/\rho^2`.

    Surrogate :math:`w\,\langle \mathrm{sg}[-(\mathcal D(\mathcal E(\tilde x)) - x_0)], x_0 \rangle / n`,
    :math:`x_0 = \mathcal D(z)`, :math:`\tilde x = x_0 + s\,n`; its gradient in :math:`z` is
    :math:`-w J_{\mathcal D}^\top (\mathcal D(\mathcal E(\tilde x)) - x_0) / n`. Zero in field space
    (:math:`\mathcal D \circ \mathcal E = I`), where the method leaves it out.
    """

    name = "autoencoder score"

    def __init__(self, weight: float = 0.1, decoder_std: float = 0.01):
        super().__init__(weight)
        self.decoder_std = float(decoder_std)

    def loss(self, step: ParticleStep) -> torch.Tensor:
        field = step.field
        with torch.no_grad():
            perturbed = field.detach()
            if self.decoder_std > 0:
                perturbed = perturbed + self.decoder_std * _randn_like(field, step.generator)
            reconstructed = step.space.decode(step.space.encode(perturbed))
        return self.weight * _surrogate(-(reconstructed - field.detach()), field)
