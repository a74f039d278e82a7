r"""Latent-space methods, registered with :mod:`pdeinv.sampling.methods` when this package is imported.

Every method runs the posterior sampler in a latent prior's space (``prior.space``), its terms
seeing the decoded field; DPS-type steps are converted from their publications' DDPM/DDIM grids as
in :func:`pdeinv.sampling.methods.dps.vp_guidance`, with the latent state in units of the
publication's latents (Stable Diffusion's scaled latents, std about 1) and the residual in units of
its images (std 0.5 in :math:`[-1, 1]`): :math:`c_x = \sigma_\text{data}/1`, :math:`c_r = 1/0.5`.

- ``latent-dps``: Latent DPS, :math:`\omega \nabla_{z_t}\|y - A D(\hat z_0)\|` per DDIM step (PSLD with
  :math:`\gamma = 0`);
- ``psld`` (Rout et al. 2023): plus :math:`\gamma\|E(A^\top y + (I - A^\top A) D(\hat z_0)) - \hat z_0\|`
  (:class:`~pdeinv.latent.psld.GluingTerm`), :math:`\omega = 1`, :math:`\gamma = 0.1`, 1000 DDIM steps;
- ``resample`` (Song et al. 2024): DPS steps :math:`\zeta\bar\alpha_t` on 500 DDIM steps, hard data
  consistency by latent optimisation every 10 DDIM steps in the last two thirds, then stochastic
  resampling (:class:`~pdeinv.latent.resample.ReSampleProjection`);
- ``+repa`` (Align & Invert, Sfountouris et al. 2025): :class:`~pdeinv.latent.repa.RepaTerm` with the step
  :math:`\eta\lambda_\text{repa}\nabla/\max(\mathrm{snr}, 1)` of the publication's linear flow (1000 steps
  for Latent DPS, 250 for ReSample), mapped onto the EDM grid
  (:func:`~pdeinv.sampling.methods.units.flow_step_weights`), at every step, with the
  publication's :math:`(\lambda_\text{repa}, \eta)` for the task (:class:`AlignInvertConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pdeinv.latent.psld import GluingTerm
from pdeinv.latent.repa import RepaTerm, measurement_proxy
from pdeinv.latent.resample import ReSampleConfig, ReSampleProjection
from pdeinv.sampling.methods import register, register_modifier, run_guided
from pdeinv.sampling.methods.guided import GuidedConfig, GuidedPreset, channel_std
from pdeinv.sampling.methods.units import DDPM_STEPS, check_positive, flow_step_weights, step_scale
from pdeinv.sampling.methods.dps import vp_guidance
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.schedule import GuidanceSchedule
from pdeinv.sampling.terms import ObservationTerm


def latent_space(prior, method: str):
    """The prior's latent space, or a clear error for a field-space prior."""
    space = getattr(prior, "space", None)
    if space is None or getattr(space, "field_space", True):
        raise ValueError(
            f"{method} runs in latent space and needs a latent prior (e.g. --prior ns-latent, trained with "
            f"`pdeinv train prior --autoencoder DIR`); {type(prior).__name__} is a field-space prior"
        )
    return space


@dataclass(frozen=True)
class LatentDPSConfig(GuidedConfig):
    r"""Latent DPS / PSLD in their units (Stable Diffusion latents, images in :math:`[-1, 1]`).

    Parameters
    ----------
    omega : float
        :math:`\omega`, the measurement step per DDIM step.
    gamma : float
        :math:`\gamma`, the gluing step (0: Latent DPS).
    steps : int
        Sampler steps (1000 DDIM steps).
    latent_std, data_std : float
        Standard deviations of the publication's latents and images.
    """

    omega: float = 1.0
    gamma: float = 0.0
    steps: int = DDPM_STEPS
    latent_std: float = 1.0
    data_std: float = 0.5

    def __post_init__(self) -> None:
        check_positive(omega=self.omega, latent_std=self.latent_std, data_std=self.data_std)
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")


@dataclass(frozen=True)
class PSLDConfig(LatentDPSConfig):
    """PSLD's published :math:`\\gamma = 0.1` (with :math:`\\omega = 1`)."""

    gamma: float = 0.1


def latent_units(prior, latent_std: float, data_std: float) -> tuple[float, float]:
    """``(c_x, c_r)``: the latent prior's latent and field units over the publication's."""
    return float(prior.sigma_data) / latent_std, 1.0 / data_std


def latent_dps_sampler_units(problem: InverseProblem, config: LatentDPSConfig, prior, method: str) -> GuidedPreset:
    """Latent DPS (and PSLD's gluing term when ``gamma > 0``) in the sampler's units."""
    space = latent_space(prior, method)
    c_x, c_r = latent_units(prior, config.latent_std, config.data_std)
    sampler, step = vp_guidance(config.omega, config.steps, c_x, c_r)
    glue = GuidanceSchedule(
        weight=config.gamma / config.omega * step_scale(c_x, c_x) / step_scale(c_x, c_r), step_weights=step.step_weights
    )
    channel, scale = problem.channel(problem.observed), 1.0 / channel_std(prior, problem, problem.observed)

    def terms(y):
        listed = [ObservationTerm(problem.sensor, y, channel, loss="norm", scale=scale, schedule=step)]
        if config.gamma > 0:
            listed.append(GluingTerm(problem.sensor, y, channel, space, schedule=glue))
        return listed

    return GuidedPreset(sampler, terms, step)


@register("latent-dps", LatentDPSConfig)
def latent_dps(problem: InverseProblem, config: LatentDPSConfig, options: MethodOptions) -> Reconstruction:
    """Latent DPS (module docstring)."""
    preset = latent_dps_sampler_units(problem, config, options.prior, "latent-dps")
    return run_guided(preset, problem, options, config.modifiers)


@register("psld", PSLDConfig)
def psld(problem: InverseProblem, config: PSLDConfig, options: MethodOptions) -> Reconstruction:
    """PSLD (module docstring)."""
    preset = latent_dps_sampler_units(problem, config, options.prior, "psld")
    return run_guided(preset, problem, options, config.modifiers)


@dataclass(frozen=True)
class ReSampleMethodConfig(GuidedConfig):
    r"""ReSample's parameters in its units (LDM latents, 500 DDIM steps on the 1000-step DDPM schedule).

    Parameters
    ----------
    zeta : float
        DPS step :math:`\zeta\bar\alpha_t` per DDIM step (its code's ``scale``: 0.5 times :math:`\bar\alpha_t`).
    steps : int
        Sampler steps (500).
    ddim_steps : int
        DDIM steps the schedule below is stated on.
    start_fraction : float
        Hard data consistency from this fraction of the steps on (the last two thirds).
    every : int
        Every ``every`` DDIM steps (10).
    iterations, lr : float
        Latent optimisation: at most 500 AdamW iterations at 5e-3.
    resampling : float
        :math:`c` of the resampling variance (40).
    latent_std, data_std : float
        Standard deviations of the publication's latents and images.
    """

    zeta: float = 0.5
    steps: int = 500
    ddim_steps: int = 500
    start_fraction: float = 1.0 / 3.0
    every: int = 10
    iterations: int = 500
    lr: float = 5e-3
    resampling: float = 40.0
    latent_std: float = 1.0
    data_std: float = 0.5

    def __post_init__(self) -> None:
        check_positive(zeta=self.zeta, lr=self.lr, latent_std=self.latent_std, data_std=self.data_std)

    def projection(self, steps: int) -> ReSampleConfig:
        """The hook's settings on ``steps`` sampler steps (``every`` rescaled from the DDIM steps)."""
        every = max(1, round(self.every * steps / self.ddim_steps))
        return ReSampleConfig(
            start_fraction=self.start_fraction, every=every, iterations=self.iterations, lr=self.lr,
            resampling=self.resampling,
        )


@register("resample", ReSampleMethodConfig)
def resample(problem: InverseProblem, config: ReSampleMethodConfig, options: MethodOptions) -> Reconstruction:
    """ReSample (module docstring)."""
    prior = options.prior
    latent_space(prior, "resample")
    c_x, c_r = latent_units(prior, config.latent_std, config.data_std)
    stride = DDPM_STEPS // config.ddim_steps
    sampler, step = vp_guidance(config.zeta, config.steps, c_x, c_r, stride=stride, alpha_bar_power=1.0)
    channel, scale = problem.channel(problem.observed), 1.0 / channel_std(prior, problem, problem.observed)
    hook = config.projection(config.steps)

    def terms(y):
        return [ObservationTerm(problem.sensor, y, channel, loss="norm", scale=scale, schedule=step)]

    preset = GuidedPreset(sampler, terms, step, projection=lambda y: ReSampleProjection(terms(y), hook))
    return run_guided(preset, problem, options, config.modifiers)


# Align & Invert's README: (lambda_repa, eta, flow steps) per solver and task.
ALIGN_INVERT_PUBLISHED = {
    ("latent-dps", "super-resolution"): (0.01, 2.0, 1000),
    ("latent-dps", "gaussian-deblur"): (0.05, 0.25, 1000),
    ("latent-dps", "motion-deblur"): (0.01, 0.5, 1000),
    ("latent-dps", "inpainting"): (0.01, 0.5, 1000),
    ("resample", "super-resolution"): (0.05, 3.25, 250),
    ("resample", "gaussian-deblur"): (0.05, 0.75, 250),
    ("resample", "motion-deblur"): (0.05, 0.75, 250),
}


def align_invert_task(sensor) -> str | None:
    """The Align & Invert task a sensor corresponds to (``None`` for one it publishes no setting for)."""
    from deepinv.physics import Inpainting

    from pdeinv.operators import PointObservation
    from pdeinv.operators.blur import GaussianBlur, MotionBlur
    from pdeinv.operators.downsampling import Downsampling

    kinds = [
        ((PointObservation, Inpainting), "inpainting"), (Downsampling, "super-resolution"),
        (GaussianBlur, "gaussian-deblur"), (MotionBlur, "motion-deblur"),
    ]
    return next((kind for cls, kind in kinds if isinstance(sensor, cls)), None)


@dataclass(frozen=True)
class AlignInvertConfig:
    r"""Align & Invert's alignment step, in its units.

    Per step of its linear flow (``t`` from 1 to 0, :math:`\mathrm{snr} = t/(1-t)`) the authors' code
    moves the state by :math:`-\eta\,\nabla_{x_t}\big(\|y - A\hat x\| + \lambda_\text{repa} L_\text{repa}\big)
    / \max(\mathrm{snr}, 1)`; this is the :math:`\lambda_\text{repa} L_\text{repa}` part
    (:class:`~pdeinv.latent.repa.RepaTerm`), added to the base method's own measurement step. Its
    steps are summed onto the sampler's grid (:func:`~pdeinv.sampling.methods.units.flow_step_weights`),
    so the alignment accumulated between two noise levels is the publication's for any number of steps.

    Parameters
    ----------
    lam : float
        :math:`\lambda_\text{repa}` (``--l_repa``: 0.01 or 0.05 in the publication).
    eta : float
        :math:`\eta` (``--learning_rate``: 0.25 to 3.25).
    paper_steps : int
        Steps of that flow (1000 for Latent DPS, 250 for ReSample).
    cutoff : float
        Fraction of the steps the term acts in (the authors' code: all, 1).
    latent_std : float
        Standard deviation of the publication's latents.
    """

    lam: float = 0.01
    eta: float = 2.0
    paper_steps: int = 1000
    cutoff: float = 1.0
    latent_std: float = 1.0

    def __post_init__(self) -> None:
        check_positive(eta=self.eta, latent_std=self.latent_std)
        if not (self.lam >= 0 and 0 <= self.cutoff <= 1):
            raise ValueError(f"need lam >= 0 and cutoff in [0, 1], got lam={self.lam}, cutoff={self.cutoff}")
        if isinstance(self.paper_steps, bool) or not isinstance(self.paper_steps, int) or self.paper_steps < 2:
            raise ValueError(f"paper_steps must be an integer >= 2, got {self.paper_steps!r}")

    @classmethod
    def published(cls, base: str, sensor) -> AlignInvertConfig:
        """The README's setting for solver ``base`` (``resample``; any other: Latent DPS's) on ``sensor``'s task.

        Raises
        ------
        ValueError
            For a task the publication gives no setting for (pass ``repa_weight`` and ``repa_step``).
        """
        solver = "resample" if base == "resample" else "latent-dps"
        key = (solver, align_invert_task(sensor))
        if key not in ALIGN_INVERT_PUBLISHED:
            known = ", ".join(task for name, task in ALIGN_INVERT_PUBLISHED if name == solver)
            raise ValueError(
                f"Align & Invert publishes (lambda_repa, eta) for {solver} on {known}, not for a "
                f"{type(sensor).__name__} sensor; set repa_weight and repa_step "
                "(pdeinv bench --repa-weight, --repa-step)"
            )
        lam, eta, steps = ALIGN_INVERT_PUBLISHED[key]
        return cls(lam=lam, eta=eta, paper_steps=steps)

    def terms(self, preset: GuidedPreset, problem: InverseProblem, options: MethodOptions, y):
        """The alignment term on ``preset``'s sampler grid."""
        from pdeinv.latent.checkpoint import repa_encoder

        prior = options.prior
        schedule = self.schedule(preset.config.sigmas(), float(prior.sigma_data))
        proxy = measurement_proxy(problem.sensor, y, problem.channel(problem.observed))
        return [RepaTerm(getattr(prior, "denoiser", prior), repa_encoder(prior), proxy, schedule)]

    def schedule(self, sigmas, sigma_data: float) -> GuidanceSchedule:
        r"""The term's weight per sampler step on noise levels ``sigmas`` ``(N + 1,)``.

        With :math:`c_x = \sigma_\text{data}/` ``latent_std`` (the sampler's latent unit over the
        publication's), step :math:`i` takes :math:`-\lambda c_x^2 w_i \nabla_x L_\text{repa}`,
        :math:`w_i` the flow's :math:`\eta (1 + \mathrm{snr})^2/\max(\mathrm{snr}, 1)` summed over the
        flow steps whose level :math:`c_x\,\mathrm{snr}` lies in :math:`(\sigma_{i+1}, \sigma_i]`.
        """
        c_x = sigma_data / self.latent_std
        weights = flow_step_weights(self.eta, self.paper_steps, sigmas, c_x)
        return GuidanceSchedule(weight=self.lam * c_x**2, step_weights=weights, stop_fraction=self.cutoff)


@register_modifier("+repa", AlignInvertConfig)
def repa(problem: InverseProblem, options: MethodOptions, base: str) -> AlignInvertConfig:
    """Align & Invert's term: the publication's setting for ``base`` on the task, ``options.repa_*`` where given."""
    chosen = {"lam": options.repa_weight, "eta": options.repa_step}
    chosen = {name: value for name, value in chosen.items() if value is not None}
    if len(chosen) == 2 or problem is None:
        config = AlignInvertConfig()
    else:
        config = AlignInvertConfig.published(base, problem.sensor)
    return dataclasses.replace(config, cutoff=options.repa_cutoff, **chosen)
