r"""Classical and reference baselines on an :class:`~pdeinv.sampling.problem.InverseProblem`.

- :func:`kriging_baseline`: the exact Gaussian posterior (linear operator, GRF input): the Bayes limit.
- :func:`interpolate_then_solve`: interpolate the observed field from the points, then apply
  :math:`A` (forward) or :math:`A^\dagger` (inverse of a linear operator).
- :func:`adjoint_inversion`: the MAP estimate
  :math:`\min_\xi \tfrac12 \|(P\,T(\mu + C^{1/2}\xi) - y)/\sigma\|^2 + \tfrac12\|\xi\|^2` by L-BFGS with
  gradients through the (differentiable) solver, :math:`T \in \{I, A\}` the observed field.
  Where the input is not Gaussian but a thresholded Gaussian level set (Darcy), the input is
  :math:`g(C^{1/2}\xi)` with the PDE's smooth level-set map :math:`g` (level-set inversion).
- :func:`deepinv_dps`: deepinv's own ``deepinv.sampling.DPS`` on pdeinv's prior and operators, with DPS's step.
- :func:`pseudo_inverse`: the sensor's own ``A_dagger(y)`` for problems whose observed field is the
  target (the imaging tasks): the exact pseudo-inverse of linear imaging operators (mask, blur
  (unregularised, so noise is amplified), decimation) and Fienup's error reduction for phase retrieval.
"""

from __future__ import annotations

import deepinv as dinv
import numpy as np
import torch
from scipy.interpolate import griddata

from pdeinv.pdes import get_pde, pde_names
from pdeinv.sampling.kriging import Kriging, KrigingObservation, LinearGaussianModel
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction
from pdeinv.sampling.progress import measurement_batches
from pdeinv.sampling.terms import channel_index

ADJOINT_STEPS = {"linear": 1000, "nonlinear": 50}
RELATIVE_TIKHONOV = 1e-2


def _require_gaussian_input(problem: InverseProblem, method: str) -> None:
    if problem.input_prior is None:
        raise ValueError(f"{method} needs the Gaussian random field of the input (InverseProblem.input_prior)")


def kriging_baseline(problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    """Exact posterior mean and standard deviation of the target (``nfe = 0``)."""
    _require_gaussian_input(problem, "kriging")
    if not problem.linear:
        raise ValueError(
            f"kriging is exact only for a linear operator with a Gaussian input; {problem.pde} is nonlinear. "
            "Use 'adjoint' or a diffusion method"
        )
    model = LinearGaussianModel.from_grf(problem.input_prior, problem.operator)
    observation = KrigingObservation(problem.sensor, problem.observed, problem.noise_std)
    kriging = Kriging(model, [observation], problem.target)
    mean = kriging.mean([problem.measurements.double()])
    std = kriging.variance().sqrt().expand_as(mean)
    return Reconstruction(mean, std.clone(), None, 0)


def _grid_points(problem: InverseProblem) -> np.ndarray:
    s = problem.resolution
    spacing = 1.0 / (s - 1 if problem.grid == "vertex" else s)
    axis = np.arange(s) * spacing
    x, y = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1)


def _interpolate(problem: InverseProblem, values: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation on the Delaunay triangulation, nearest value outside the hull.

    On the periodic grid the points are tiled 3 x 3 so that the interpolant wraps around.
    """
    points = problem.sensor.coordinates.numpy()
    if problem.grid == "periodic":
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=np.float64)
        points = (points[None] + shifts[:, None]).reshape(-1, 2)
        values = np.tile(values, 9)
    targets = _grid_points(problem)
    linear = griddata(points, values, targets, method="linear")
    outside = np.isnan(linear)
    linear[outside] = griddata(points, values, targets[outside], method="nearest")
    return linear.reshape(problem.resolution, problem.resolution)


def interpolate_then_solve(problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    """Interpolate the observed field, then map it to the target with :math:`A` or :math:`A^\\dagger`."""
    values = problem.measurements.double()[:, 0].numpy()
    field = torch.from_numpy(np.stack([_interpolate(problem, v) for v in values]))[:, None]
    if problem.observed == problem.target:
        return Reconstruction(field)
    if problem.observed == "input":
        return Reconstruction(problem.operator.A(field))
    if not problem.linear:
        raise ValueError(
            f"interp-solve recovers an input from an interpolated output only for a linear operator with an "
            f"exact pseudo-inverse; {problem.pde} is nonlinear. Use 'adjoint' or a diffusion method"
        )
    return Reconstruction(problem.operator.A_dagger(field))


def adjoint_inversion(problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    r"""MAP estimate under the GRF prior by L-BFGS through the solver.

    ``options.steps`` caps the iterations (default 1000 for a linear operator, 50 for a
    nonlinear one, where each iteration is a solve and its adjoint). The measurements are optimised
    in groups of ``options.batch_size`` (one L-BFGS run each), so a field's estimate does not depend
    on how many others are in the run beyond its group.

    The data weight is :math:`1/\sigma^2` with :math:`\sigma = \max(\sigma_y, 10^{-2}\,\mathrm{rms}(y))`,
    a Tikhonov level that keeps exact (noise-free) data well-posed; for a linear operator the
    result is the kriging mean with that noise level.
    """
    parametrisation = _input_parametrisation(problem)
    chunks = measurement_batches(problem.n, options.batch_size)
    return Reconstruction(torch.cat([_map_estimate(problem.select(c), options, *parametrisation) for c in chunks]))


def _input_parametrisation(problem: InverseProblem):
    """``(grf, g)``: the input is ``g(C^{1/2} xi)`` with white ``xi`` (``g`` the identity for a Gaussian input).

    Raises
    ------
    ValueError
        If the input is neither Gaussian nor a level set with a smooth map (:class:`~pdeinv.pdes.PDESpec`).
    """
    if problem.input_prior is not None:
        return problem.input_prior, lambda field: field
    spec = get_pde(problem.pde) if problem.pde in pde_names() else None
    if spec is None or spec.data_field is None or spec.level_set_input is None:
        raise ValueError(
            "adjoint needs the Gaussian random field of the input (InverseProblem.input_prior) or, for a "
            "thresholded input, the PDE's level-set field and map (PDESpec.data_field, level_set_input)"
        )
    level_set_field = spec.data_field(problem.resolution)
    return level_set_field, spec.level_set_input(level_set_field)


def _map_estimate(problem: InverseProblem, options: MethodOptions, grf, to_input) -> torch.Tensor:
    """The MAP estimate of :func:`adjoint_inversion` for ``problem``'s measurements, optimised jointly.

    The input is ``to_input(grf.covariance_sqrt(xi))`` (:func:`_input_parametrisation`).
    """
    dtype = torch.float64 if problem.linear else torch.float32
    y = problem.measurements.to(dtype)
    level = max(problem.noise_std, RELATIVE_TIKHONOV * float(y.pow(2).mean().sqrt()))
    observe = problem.operator.A if problem.observed == "output" else (lambda a: a)
    s = problem.resolution
    xi = torch.zeros(problem.n, 1, s, s, dtype=dtype, device=y.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [xi],
        lr=1.0,
        max_iter=options.steps or ADJOINT_STEPS["linear" if problem.linear else "nonlinear"],
        history_size=20,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        misfit = (problem.sensor.A(observe(to_input(grf.covariance_sqrt(xi)))) - y) / level
        loss = 0.5 * misfit.pow(2).sum() + 0.5 * xi.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        return problem.to_target("input")(to_input(grf.covariance_sqrt(xi))).detach()


class PriorDenoiser(dinv.models.Denoiser):
    r"""A pdeinv prior as a deepinv ``Denoiser`` on fields in DPS's units.

    The prior's normalised fields :math:`z` are presented as :math:`x = z / c` with
    :math:`c = \sigma_\text{data} / s` (:math:`s` = DPS's data std, 0.5 for images in :math:`[-1, 1]`),
    so deepinv's noise schedule has the signal-to-noise ratios DPS's DDPM schedule has on its data:
    :math:`D_x(x, \sigma) = D_z(c x, c \sigma) / c`. Every call counts one network evaluation.

    Parameters
    ----------
    prior : pdeinv.priors.base.FieldPrior
        The prior.
    data_std : float
        :math:`s`.
    """

    def __init__(self, prior, data_std: float = 0.5):
        super().__init__()
        self.prior = prior
        self.scale = float(prior.sigma_data) / data_std
        self.calls = 0

    def forward(self, x: torch.Tensor, sigma, *args, **kwargs) -> torch.Tensor:
        self.calls += 1
        dtype = self.prior.mean.dtype
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device).reshape(-1)
        denoised = self.prior.denoise(self.scale * x.to(dtype), self.scale * sigma)
        return denoised.to(x.dtype) / self.scale


class DDPMStepFidelity(dinv.sampling.DPSDataFidelity):
    r"""deepinv's DPS data fidelity whose weight makes each ancestral step take DPS's step :math:`\zeta`.

    deepinv adds the fidelity's gradient to the score, which its ancestral solver multiplies by
    :math:`s_0 s_1 (\sigma_0^2 - \sigma_1^2)` on a step from :math:`t_0` to :math:`t_1`
    (:math:`x^{VP} = s\,x^{VE}`); DPS instead subtracts :math:`\zeta \nabla_{x^{VP}} \|y - A\hat x_0\|`
    once per step. The weight at the step from noise level :math:`\sigma_0` is therefore
    :math:`\zeta / (s_0 s_1 (\sigma_0^2 - \sigma_1^2))`. The estimate is not clipped (fields are unbounded).

    Parameters
    ----------
    denoiser : deepinv.models.Denoiser
        The denoiser.
    zeta : float
        DPS's step.
    sde : deepinv.sampling.DiffusionSDE
        The variance-preserving SDE (``scale_t``, ``sigma_t``).
    timesteps : torch.Tensor
        The solver's decreasing time steps.
    """

    def __init__(self, denoiser, zeta: float, sde, timesteps: torch.Tensor):
        super().__init__(denoiser=denoiser, weight=zeta, clip=None)
        t = timesteps.to(torch.float64)
        scale, level = sde.scale_t(t).to(torch.float64), sde.sigma_t(t).to(torch.float64)
        self.levels = level[:-1]
        self.weights = zeta / (scale[:-1] * scale[1:] * (level[:-1] ** 2 - level[1:] ** 2))

    def forward(self, x, y, physics, sigma, *args, **kwargs):
        sigma0 = float(torch.as_tensor(sigma).reshape(-1)[0])
        index = int(torch.argmin((self.levels.log() - torch.log(torch.tensor(sigma0, dtype=torch.float64))).abs()))
        self.weight = float(self.weights[index])
        return super().forward(x, y, physics, sigma, *args, **kwargs)


def deepinv_dps(problem: InverseProblem, config, options: MethodOptions) -> Reconstruction:
    r"""deepinv's DPS sampler (VP schedule, ancestral DDPM solver) with DPS's step, on the joint prior.

    ``config`` carries DPS's :math:`\zeta`, the number of steps and DPS's data std; the state is in
    DPS's units (:class:`PriorDenoiser`), the residual of the observed channel too (its normalised
    units divided by the same :math:`c`), and each step subtracts :math:`\zeta \nabla \|r\|` in
    VP coordinates (:class:`DDPMStepFidelity`): DPS's own update, which pdeinv's ``dps`` maps onto
    the EDM grid.
    """
    prior = options.prior
    problem.check_prior(prior)
    observed_index = channel_index(prior.channels, problem.channel(problem.observed))
    target_index = channel_index(prior.channels, problem.channel(problem.target))
    denoiser = PriorDenoiser(prior, config.data_std)
    std = float(prior.std[observed_index])
    dtype = prior.mean.dtype

    def measure(x: torch.Tensor) -> torch.Tensor:
        physical = prior.to_physical(denoiser.scale * x.to(dtype))
        return problem.sensor.A(physical[:, [observed_index]]) / (std * denoiser.scale)

    physics = dinv.physics.Physics(A=measure)
    k, s = options.samples, problem.resolution
    generator = torch.Generator(device=prior.mean.device).manual_seed(options.seed)
    sampler = dinv.sampling.DPS(
        denoiser, num_steps=config.steps, rng=generator, minus_one_one=False, dtype=torch.float64
    )
    sampler.data_fidelity = DDPMStepFidelity(denoiser, config.zeta, sampler.sde, sampler.solver.timesteps)
    results = []
    for rows in measurement_batches(problem.n, options.batch_size):
        y = (problem.measurements[rows].to(dtype) / (std * denoiser.scale)).repeat_interleave(k, 0)
        x = sampler(y.double(), physics, x_init=(y.shape[0], len(prior.channels), s, s))
        physical = prior.to_physical(denoiser.scale * x.to(dtype)).detach()
        results.append(physical[:, [target_index]].reshape(len(rows), k, 1, s, s))
    samples = torch.cat(results)
    nfe = denoiser.calls // max(1, -(-problem.n // options.batch_size))
    return Reconstruction(samples.mean(1), samples.std(1) if k > 1 else None, samples, nfe)


def pseudo_inverse(problem: InverseProblem, options: MethodOptions) -> Reconstruction:
    r"""The sensor's pseudo-inverse :math:`\hat x = P^\dagger y` (deepinv's ``A_dagger``), ``nfe = 0``.

    Defined where the sensor reads the target field itself (``observed == target``), as in the
    imaging tasks; returns ``(n, 1, S, S)`` in the units of ``y``.
    """
    if problem.observed != problem.target:
        raise ValueError(
            "pinv inverts the sensor only, so it needs a problem that observes the recovered field "
            f"(observed == target); this one observes the {problem.observed} and recovers the {problem.target}. "
            "Use kriging, interp-solve or adjoint"
        )
    mean = problem.sensor.A_dagger(problem.measurements.double())
    return Reconstruction(mean, None, None, 0)
