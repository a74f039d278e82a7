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
from pdeinv.sampling.particles.kernel import check_features, log_kernel_sum
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


class ScoreDistillation(ParticleTerm):
    r"""RED-diff / SDS with weight :math:`\sigma/\alpha`.

    Loss :math:`w\,\langle \mathrm{sg}[z - D_\theta(z_t, \sigma_t)], z\rangle / d`.
    """

    name = "score distillation"

    def loss(self, step: ParticleStep) -> torch.Tensor:
        z = step.prior_state
        return self.weight * _surrogate(z.detach() - step.denoised, z)


FeatureMap = Callable[[ParticleStep], torch.Tensor]


def field_features(step: ParticleStep) -> torch.Tensor:
    """The decoded normalised field of each particle, flattened: ``(B, C S^2)``."""
    return step.field.flatten(1)


def state_features(step: ParticleStep) -> torch.Tensor:
    """The particle state itself, flattened: ``(B, d)`` (encoder features in a latent space)."""
    return step.particles.flatten(1)


FEATURES = {"field": field_features, "latent": state_features}


class Repulsion(ParticleTerm):
    r"""Particle repulsion :math:`w\,\sigma_t^2 \log \sum_{j \ne i} k(f_i, f_j)` (RLSD).

    :math:`k` is the RBF kernel with the median bandwidth (:mod:`~pdeinv.sampling.particles.kernel`)
    on features :math:`f_i` of the particles (``"field"``: the decoded field; ``"latent"``: the
    state, i.e. the encoder features; or a callable ``step -> (B, F)``). The factor
    :math:`\sigma_t^2` is the one of a score correction :math:`\tilde s = s - \gamma \nabla \log \sum_j k`
    in the distillation gradient :math:`\sigma^2 (-\tilde s) + \dots`, so repulsion is strong at high
    noise and fades as the particles settle.

    Raises
    ------
    ValueError
        Fewer than 2 particles per measurement with ``weight > 0``; features of the wrong size.
    """

    name = "repulsion"

    def __init__(self, weight: float = 1.0, features: str | FeatureMap = "field"):
        super().__init__(weight)
        if isinstance(features, str) and features not in FEATURES:
            raise ValueError(f"unknown features {features!r}; choose one of {sorted(FEATURES)} or pass a callable")
        self.features = FEATURES[features] if isinstance(features, str) else features

    def check(self, per_group: int) -> None:
        if self.weight > 0 and per_group < 2:
            raise ValueError(
                f"repulsion needs at least 2 particles per measurement, got {per_group}; use samples >= 2 "
                "(RLSD reports N = 4) or the non-repulsive variant (weight 0)"
            )

    def loss(self, step: ParticleStep) -> torch.Tensor:
        if self.weight == 0:
            return step.particles.new_zeros(step.particles.shape[0])
        features = check_features(self.features(step), step.particles.shape[0], step.per_group)
        return self.weight * step.sigma**2 * log_kernel_sum(features).flatten()


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
