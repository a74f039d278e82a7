r"""Quality figures of a trained joint prior, measured on its unconditional samples.

Physics consistency
    For joint (input, solution) samples :math:`(a_i, u_i)` in physical units,
    :math:`r_i = \lVert A(a_i) - u_i\rVert / \lVert u_i\rVert` (norms over the grid); the figure
    is the median over samples. The same figure on data samples (resampled to the same grid)
    gives the floor set by the data itself.
Spectrum ratio
    The radially averaged power spectrum :math:`P_c(k) = \mathrm{mean}_i \sum_{|\kappa| \in [k - 1/2, k + 1/2)}
    |\hat x_{i,c}(\kappa)|^2` of each channel (unitary 2-D DFT, integer wavenumber shells
    :math:`k = 1, \dots, S/4`), as the ratio samples / data per shell (1 is perfect).
Darcy (binary permeability, 3 or 12)
    The physics consistency solves with the sampled permeability thresholded at 7.5 (the form in
    which a sample is used), and two more figures describe the binary structure: the *binary
    fraction*, the fraction of sampled nodes within ``BINARY_TOLERANCE`` = 10 % of the gap
    (0.9) of 3 or 12 (1 for the data), and the *high fraction*, the fraction of nodes above 7.5,
    for samples and data (the level set is symmetric, so about 0.5).

``evaluate_checkpoint`` measures both and writes them into the checkpoint's card under
``quality["<S>"]`` (``S`` the evaluation grid size).
"""

from __future__ import annotations

import json
import time

import torch

from pdeinv.pdes import get_pde, pde_names
from pdeinv.pdes.darcy import DARCY_HIGH, DARCY_LOW, DARCY_THRESHOLD
from pdeinv.priors.sample import HeunConfig, heun_sample

QUALITY_SIGMA_MAX = 500.0
BINARY_TOLERANCE = 0.1 * (DARCY_HIGH - DARCY_LOW)


def operator_for(attrs: dict, resolution: int):
    """The forward operator of data whose HDF5 root attributes are ``attrs``, at grid size ``resolution``.

    Raises
    ------
    ValueError
        If the ``pde`` attribute names no known operator.
    """
    pde = attrs.get("pde")
    if pde not in pde_names():
        raise ValueError(f"no forward operator known for pde={pde!r}; expected one of {', '.join(pde_names())}")
    return get_pde(pde).build_operator(resolution, json.loads(attrs.get("generation_config", "{}")))


def binarize(a: torch.Tensor) -> torch.Tensor:
    """A permeability estimate thresholded to its two values: ``12`` above 7.5, ``3`` elsewhere."""
    return torch.where(a > DARCY_THRESHOLD, torch.full_like(a, DARCY_HIGH), torch.full_like(a, DARCY_LOW))


def binary_figures(samples: torch.Tensor, data: torch.Tensor) -> dict:
    """Binary structure of sampled permeabilities ``(N, 1, S, S)`` (physical) against the data's (module doc)."""

    def near_values(a):
        near = ((a - DARCY_LOW).abs() <= BINARY_TOLERANCE) | ((a - DARCY_HIGH).abs() <= BINARY_TOLERANCE)
        return float(near.double().mean())

    return {
        "binary_fraction": round(near_values(samples), 4),
        "binary_fraction_data": round(near_values(data), 4),
        "high_fraction": round(float((samples > DARCY_THRESHOLD).double().mean()), 4),
        "high_fraction_data": round(float((data > DARCY_THRESHOLD).double().mean()), 4),
    }


def relative_residuals(operator, physical: torch.Tensor, batch: int = 16, binary: bool = False) -> torch.Tensor:
    r"""Per-sample :math:`\lVert A(a) - u\rVert / \lVert u\rVert` of physical joint fields ``(N, 2, S, S)``, ``(N,)``.

    With ``binary`` the input channel is thresholded first (:func:`binarize`, Darcy permeability).
    """
    out = []
    for chunk in physical.split(batch):
        a, u = chunk[:, :1], chunk[:, 1:2]
        a = binarize(a) if binary else a
        with torch.no_grad():
            diff = operator.A(a) - u
        out.append(diff.flatten(1).norm(dim=1) / u.flatten(1).norm(dim=1))
    return torch.cat(out)


def physics_consistency(
    prior,
    operator,
    n: int = 64,
    resolution: int | None = None,
    steps: int = 32,
    generator: torch.Generator | None = None,
    batch: int = 16,
    binary: bool = False,
) -> dict:
    """Median relative PDE residual of ``n`` unconditional Heun samples of a joint prior.

    Parameters
    ----------
    prior : FieldPrior
        Joint prior, channel 0 the input and channel 1 the solution.
    operator : Physics
        Forward map ``A`` at grid size ``resolution``.
    n, steps : int
        Number of samples and Heun steps (``sigma_max = 500``, ``sigma_min = 0.002``, ``rho = 7``).
        EDM's usual 80 is below the largest prior standard deviation of a normalised field's
        smoothest mode at 128 x 128 (up to ``S`` for unit-variance pixels), which would leave that
        mode under-dispersed.
    resolution : int, optional
        Sampling grid size (default: the prior's training resolution).
    generator : torch.Generator, optional
        Initial-noise generator (default: seed 0).
    batch : int
        Samples drawn at once.
    binary : bool
        Threshold the input channel before solving (binary Darcy permeability).

    Returns
    -------
    dict
        ``{"median": float, "values": [per sample], "samples": (n, 2, S, S) normalised tensor}``.
    """
    generator = generator or torch.Generator().manual_seed(0)
    config = HeunConfig(steps=steps, sigma_max=QUALITY_SIGMA_MAX)
    parts = [heun_sample(prior, min(batch, n - i), generator, resolution, config) for i in range(0, n, batch)]
    samples = torch.cat(parts)
    values = relative_residuals(operator, prior.to_physical(samples), binary=binary)
    return {"median": float(values.median()), "values": values.tolist(), "samples": samples}


def radial_power_spectrum(x: torch.Tensor, max_shell: int) -> torch.Tensor:
    """Radially averaged power spectrum per channel, shells ``1..max_shell``: ``(N, C, S, S) -> (C, max_shell)``."""
    size = x.shape[-1]
    power = torch.fft.fft2(x.double(), norm="ortho").abs().pow(2).mean(0)
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().long()
    shells = torch.arange(1, max_shell + 1)
    return torch.stack([torch.stack([power[c][radius == s].mean() for s in shells]) for c in range(x.shape[1])])


def spectrum_ratio(samples: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Power-spectrum ratio samples / data per channel and shell ``1..S/4``, ``(C, S // 4)``."""
    max_shell = samples.shape[-1] // 4
    return radial_power_spectrum(samples, max_shell) / radial_power_spectrum(data, max_shell)


def evaluate_checkpoint(
    directory: str,
    data: str | None = None,
    n: int = 64,
    steps: int = 32,
    resolution: int | None = None,
    seed: int = 0,
    consistent: bool = False,
    solver_dt: float | None = None,
) -> dict:
    """Measure a checkpoint's quality figures and write them into its card.

    Parameters
    ----------
    directory : str
        Checkpoint directory (``card.json`` + ``model.safetensors``).
    data : str, optional
        Reference HDF5 file (default: the training file named in the card).
    n, steps : int
        Unconditional samples and Heun steps.
    resolution : int, optional
        Evaluation grid size (default: the training resolution; 128 tests zero-shot transfer).
    seed : int
        Seed of the initial noise.
    consistent : bool
        Sample the operator-consistent form (:class:`~pdeinv.priors.consistent.OperatorConsistentPrior`),
        in which ``pdeinv bench`` uses the prior of a linear PDE; its solution channel is the solve of
        its input channel, so the figure of interest is then the spectrum. For Navier-Stokes it is
        the projection onto the solution manifold: every denoised estimate's final vorticity is the
        solve of its initial vorticity.
    solver_dt : float, optional
        With ``consistent`` on a time-dependent PDE: the time step of the projection's solve
        (default: the data's). The physics-consistency figure is still measured with the data's step,
        so it then shows the coarse solve's own error.

    Returns
    -------
    dict
        The figures stored under ``card["quality"][key]``, ``key`` = ``"S"`` or ``"S-consistent"``
        (``"S-consistent-dt<solver_dt>"`` with a solver step).

    Raises
    ------
    ValueError
        If ``solver_dt`` is given without ``consistent`` or for a PDE without a time step.
    """
    from pdeinv.priors.checkpoint import load, read_card, resolve, write_card
    from pdeinv.priors.data import load_training_data

    path = resolve(directory)
    if solver_dt is not None and not consistent:
        raise ValueError(
            "solver_dt sets the solve of the operator-consistent form; add consistent=True (--consistent)"
        )
    prior = load(path, consistent=consistent, solver_dt=solver_dt)
    card = read_card(path)
    size = resolution or prior.resolution
    reference = load_training_data(data or card["data"]["path"], channels=list(prior.channels), resolution=size)
    operator = operator_for(reference.provenance["attrs"], size)
    binary = reference.provenance["attrs"].get("pde") == "darcy"
    start = time.perf_counter()
    result = physics_consistency(prior, operator, n=n, resolution=size, steps=steps,
                                 generator=torch.Generator().manual_seed(seed), binary=binary)
    shape = (1, -1, 1, 1)
    data_physical = torch.tensor(reference.mean).reshape(shape) + torch.tensor(reference.std).reshape(shape) * reference.fields
    data_values = relative_residuals(operator, data_physical[:n], binary=binary)
    samples_physical = prior.to_physical(result["samples"])
    ratio = spectrum_ratio(samples_physical, data_physical)
    figures = {
        "resolution": size,
        "n_samples": n,
        "heun_steps": steps,
        "physics_consistency_median": result["median"],
        "physics_consistency_data_median": float(data_values.median()),
        "spectrum_ratio": {name: [round(float(v), 4) for v in ratio[c]] for c, name in enumerate(prior.channels)},
        **(binary_figures(samples_physical[:, :1], data_physical[:, :1]) if binary else {}),
        "seconds": round(time.perf_counter() - start, 1),
        **({"solver_dt": solver_dt} if solver_dt is not None else {}),
    }
    card.setdefault("quality", {})[_quality_key(size, consistent, solver_dt)] = figures
    write_card(path, card)
    return figures


def _quality_key(size: int, consistent: bool, solver_dt: float | None) -> str:
    """The card's ``quality`` key of an evaluation: ``"64"``, ``"64-consistent"``, ``"64-consistent-dt0.01"``."""
    key = f"{size}-consistent" if consistent else str(size)
    return key if solver_dt is None else f"{key}-dt{solver_dt:g}"
