"""One benchmark run (task x method) and the table of many runs.

A run reconstructs the first ``n`` test samples of a task with a method and records the
task's error of each (``Task.metric``: the relative L2 error, or the error rate of the binary
Darcy permeability; the record's ``metric`` names it, the values stay under ``rel_l2*``). Under ``torchrun`` the samples
are sharded round-robin over the processes (sample ``i`` on rank ``i mod world``) and the ranks'
results are gathered into one record on rank 0.

The record has the keys of DESIGN.md (``task, method, n, resolution, rel_l2, rel_l2_mean,
rel_l2_std, seconds_per_sample, nfe, device, version``) plus ``steps, method_config, samples, seed,
prior, data, n_points, processes, wall_seconds``; ``method_config`` is the method's configuration in
its publication's units as run (:func:`pdeinv.sampling.methods.method_config`). ``rel_l2_std`` is the
population standard deviation over samples; ``seconds_per_sample`` is the summed compute time of all
processes divided by ``n``, and ``denoiser_seconds`` the part of it spent in the trained denoiser's
forward and backward passes (:func:`pdeinv.bench.timing.timed_denoiser`; 0 for methods without a prior).
Rank ``r`` seeds its method with ``seed + r``, so the errors of stochastic methods depend on the
number of processes (deterministic methods give identical records).

When a method returns several samples per measurement (``samples > 1``: chains, particles) the
record also has ``rel_l2_single`` / ``rel_l2_single_std`` (error of the first sample alone, mean
and std over test samples; ``rel_l2_mean`` stays the error of the samples' mean), ``diversity``:
``{"pairwise_relative_distance", "pairwise_cosine"}`` averaged over test samples
(:mod:`pdeinv.bench.diversity`). A method that reports a pointwise posterior standard deviation
(sample std of ``samples > 1``, kriging's exact std) also gets ``rel_std``: per test sample
``‖std‖₂ / ‖x‖₂`` of its pointwise std field ``std``, the spread it reports on the scale of the relative error.

``prior = "exact"`` (:data:`EXACT_PRIOR`, ``pdeinv bench --prior exact``) runs the diffusion methods
with the exact joint Gaussian prior of the task (:class:`~pdeinv.priors.gaussian.JointGaussianPrior`),
the true law of the test data for a linear PDE whose input is a Gaussian random field (Helmholtz,
Poisson): an oracle prior that isolates the sampler's error from the prior's.

Records of several samples also hold ``per_sample``: the error of the mean, of one sample and the
diversity per test sample, in order (for paired comparisons of two runs on the same fields).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from pdeinv import __version__
from pdeinv.bench.diversity import pairwise_cosine, pairwise_relative_distance
from pdeinv.bench.provenance import provenance
from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.bench.timing import DENOISER, CategoryTimer, timed_denoiser
from pdeinv.errors import NonFiniteError
from pdeinv.files import atomic_write
from pdeinv.pdes import get_pde, pde_names
from pdeinv.priors import load
from pdeinv.priors.consistent import OperatorConsistentPrior, consistent_if_linear
from pdeinv.priors.edm import GaussianAboveLevel, gaussian_above, gaussian_part
from pdeinv.priors.gaussian import EIGEN_MAX_UNKNOWNS, JointGaussianPrior
from pdeinv.sampling.methods import BASELINES, PARTICLES, configure, method_config, parse_method, solve, split_repa
from pdeinv.sampling.problem import MethodOptions

NEEDS_PRIOR = ("deepinv-dps",)
EXACT_PRIOR = "exact"


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one run (the ``pdeinv bench`` options).

    Parameters
    ----------
    task, method : str
        Registered names (``pdeinv.bench.tasks.TASKS``, ``pdeinv.sampling.methods.method_names()``).
    n : int
        Number of test samples (the first ``n`` of the test file).
    steps, samples, seed, batch_size : see :class:`pdeinv.sampling.problem.MethodOptions`.
    prior : str, optional
        Prior name or checkpoint directory, or ``"exact"`` for the exact joint Gaussian prior of a
        linear PDE with a Gaussian-random-field input; default: the PDE's ``default_prior`` (:mod:`pdeinv.pdes`).
    data : str, optional
        Test-set file; default ``Task.default_data()``.
    device : str
        Torch device of the prior.
    raw_prior : bool
        Use the trained joint prior as it is; by default, for a linear PDE its solution channel is
        replaced by the solve of its input channel (:class:`~pdeinv.priors.consistent.OperatorConsistentPrior`).
    equireg_weight : float
        Weight of the EquiReg term of ``+equireg`` methods.
    repa_weight, repa_step, repa_cutoff : float
        :math:`\\lambda_\\text{repa}`, :math:`\\eta` (``None``: the publication's) and the fraction of the
        steps of the alignment term of ``+repa`` methods (:class:`~pdeinv.sampling.problem.MethodOptions`).
    gaussian_part : bool
        Use only the prior's fitted Gaussian base, the network switched off
        (:class:`~pdeinv.priors.edm.GaussianPart`).
    gaussian_above : float, optional
        Use the prior's Gaussian base at noise levels at or above this one and the network below
        (:class:`~pdeinv.priors.edm.GaussianAboveLevel`); the record's ``nfe`` then counts network
        evaluations and ``gaussian_nfe`` the others.
    particle_state : str
        State of the particle methods (:class:`~pdeinv.sampling.problem.MethodOptions`).
    solver_dt : float, optional
        Time step of the method's own Navier-Stokes solves (:class:`~pdeinv.sampling.problem.MethodOptions`).
    method_preset : str, optional
        A named configuration of the method instead of its publication's (``--method-preset``).
    method_options : tuple of (str, str)
        Fields of the method's configuration to set (``--method-option KEY=VALUE``).
    """

    task: str
    method: str
    n: int = 32
    steps: int | None = None
    seed: int = 0
    samples: int = 1
    prior: str | None = None
    data: str | None = None
    batch_size: int = 4
    device: str = "cpu"
    raw_prior: bool = False
    equireg_weight: float = MethodOptions.equireg_weight
    repa_weight: float | None = MethodOptions.repa_weight
    repa_step: float | None = MethodOptions.repa_step
    repa_cutoff: float = MethodOptions.repa_cutoff
    gaussian_part: bool = False
    gaussian_above: float | None = None
    particle_state: str = MethodOptions.particle_state
    solver_dt: float | None = None
    method_preset: str | None = None
    method_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive number of test samples, got {self.n!r}")
        get_task(self.task)
        parse_method(self.method)
        changes = [name for name, on in (("--raw-prior", self.raw_prior), ("--gaussian-part", self.gaussian_part),
                                         ("--gaussian-above", self.gaussian_above is not None)) if on]
        if self.prior == EXACT_PRIOR and changes:
            raise ValueError(
                f"{changes[0]} changes a trained prior; the exact prior is Gaussian and consistent already"
            )
        if self.gaussian_part and self.gaussian_above is not None:
            raise ValueError("--gaussian-part switches the network off at every level; drop --gaussian-above")
        if self.gaussian_above is not None and not self.gaussian_above > 0:
            raise ValueError(f"--gaussian-above must be a noise level > 0, got {self.gaussian_above!r}")
        object.__setattr__(self, "method_options", tuple(tuple(pair) for pair in self.method_options))
        configure(self.method, None, self._settings())

    def _settings(self) -> MethodOptions:
        """The method settings of this run without prior and seed offset (checked before any work)."""
        return MethodOptions(
            self.steps, method_preset=self.method_preset, method_options=self.method_options,
            particle_state=self.particle_state,
        )


def _needs_prior(method: str) -> bool:
    base, _ = parse_method(method)
    return base not in BASELINES or base in NEEDS_PRIOR


def _prior_name(config: BenchConfig, pde: str) -> str:
    """The run's prior name or directory: ``config.prior``, else the PDE's default shipped prior."""
    return config.prior or get_pde(pde).default_prior


def exact_prior(problem) -> JointGaussianPrior:
    """The exact joint Gaussian prior of ``problem``'s (input, output) fields: the law of its test data.

    Solved by its dense eigendecomposition (``solver="eigen"``, formed at the first denoising) up to
    128 x 128, by conjugate gradients above; one instance per PDE, grid and channel pair is kept for
    the process, so the runs of :mod:`pdeinv.bench.bayes_limit` share the factorisation.

    Raises
    ------
    ValueError
        If the PDE is nonlinear or its input is not a Gaussian random field, naming the PDEs that qualify.
    """
    if problem.input_prior is None or not problem.linear:
        reason = "its input is not a Gaussian random field" if problem.input_prior is None else "it is nonlinear"
        qualified = [name for name in pde_names() if _exact_prior_exists(name)]
        raise ValueError(
            f"--prior {EXACT_PRIOR} needs a linear PDE whose input is a Gaussian random field; {problem.pde} does not "
            f"qualify ({reason}). Use it with {', '.join(qualified)}, or pass a trained prior"
        )
    key = (problem.pde, problem.resolution, problem.input_channel, problem.output_channel)
    if key not in _EXACT_PRIORS:
        solver = "eigen" if problem.resolution**2 <= EIGEN_MAX_UNKNOWNS else "cg"
        channels = (problem.input_channel, problem.output_channel)
        _EXACT_PRIORS[key] = JointGaussianPrior(problem.input_prior, problem.operator, channels, solver=solver)
    return _EXACT_PRIORS[key]


_EXACT_PRIORS: dict[tuple, JointGaussianPrior] = {}


def _exact_prior_exists(pde: str) -> bool:
    """Whether ``pde`` has a Gaussian-random-field input and a linear operator (the exact prior's conditions)."""
    from deepinv.physics import LinearPhysics

    spec = get_pde(pde)
    return spec.input_field is not None and isinstance(spec.build_operator(max(spec.min_resolution, 8)), LinearPhysics)


def task_prior(config: BenchConfig, problem):
    """The prior a bench run with ``config`` uses on ``problem`` (:meth:`Task.problem`).

    The named (or the PDE's default) prior, its Gaussian part with ``config.gaussian_part``, in
    operator-consistent form for a linear PDE unless ``config.raw_prior``; or the exact prior.
    """
    if config.prior == EXACT_PRIOR:
        return exact_prior(problem).to(config.device)
    prior = load(_prior_name(config, problem.pde), device=config.device)
    if config.gaussian_part:
        prior = gaussian_part(prior)
    if config.gaussian_above is not None:
        prior = gaussian_above(prior, config.gaussian_above)
    if config.raw_prior:
        if isinstance(prior, OperatorConsistentPrior):
            raise ValueError(
                f"the prior {_prior_name(config, problem.pde)!r} was trained in operator-consistent form "
                "and has no raw joint form; drop --raw-prior"
            )
        return prior
    return consistent_if_linear(prior, problem.operator, problem.input_channel, problem.output_channel)


def _evaluation_counts(prior, nfe: int) -> dict:
    """``{"nfe": network evaluations, "gaussian_nfe": Gaussian-part ones}`` of ``nfe`` denoiser evaluations
    per sample when ``prior`` switches between them (:class:`~pdeinv.priors.edm.GaussianAboveLevel`), else
    ``{"nfe": nfe}``."""
    switching = getattr(prior, "prior", prior)
    if not isinstance(switching, GaussianAboveLevel):
        return {"nfe": nfe}
    network = round(nfe * switching.network_share)
    return {"nfe": network, "gaussian_nfe": nfe - network}


def _device_name(device: str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _distributed() -> tuple[int, int]:
    """``(rank, world)``, initialising a gloo/nccl process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _local_device(device: str) -> str:
    """``"cuda"`` becomes this process's GPU, ``cuda:LOCAL_RANK``, under torchrun; other devices are kept."""
    if device != "cuda" or "LOCAL_RANK" not in os.environ:
        return device
    local = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    torch.cuda.set_device(local)
    return local


def _shard_result(config: BenchConfig, rank: int, world: int) -> dict:
    config = dataclasses.replace(config, device=_local_device(config.device))
    task = get_task(config.task)
    inputs, outputs, settings = task.load_test_set(config.data, config.n)
    problem = task.problem(inputs, outputs, settings)
    prior = task_prior(config, problem) if _needs_prior(config.method) else None
    indices = torch.arange(config.n)[rank::world]
    options = MethodOptions(
        config.steps, config.samples, config.seed + rank, prior, config.batch_size,
        equireg_weight=config.equireg_weight, repa_weight=config.repa_weight, repa_step=config.repa_step,
        repa_cutoff=config.repa_cutoff,
        particle_state=config.particle_state, solver_dt=config.solver_dt,
        method_preset=config.method_preset, method_options=config.method_options,
    )
    truth = (outputs if task.target == "output" else inputs)[indices]
    timer = CategoryTimer(synchronize=torch.device(config.device).type == "cuda")
    with timed_denoiser(prior, timer) if prior is not None else contextlib.nullcontext():
        start = time.perf_counter()
        reconstruction = solve(config.method, problem.select(indices), options)
        seconds = time.perf_counter() - start
    errors = task.metric(reconstruction.mean.cpu(), truth)
    part = {
        "indices": indices.tolist(), "rel_l2": errors.tolist(), "seconds": seconds,
        **_evaluation_counts(prior, reconstruction.nfe),
        "denoiser_seconds": timer.seconds[DENOISER],
        "method_config": method_config(config.method, problem, options),
    }
    if reconstruction.std is not None and task.metric_name == "rel_l2":
        part["std"] = _relative_norm(reconstruction.std.cpu(), truth).tolist()
    return {**part, **_sample_metrics(reconstruction.samples, truth, task.metric)}


def _relative_norm(field: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``‖f‖₂ / ‖x‖₂`` per test sample, ``(n, ...)`` -> ``(n,)`` float64."""
    return field.double().flatten(1).norm(dim=1) / truth.double().flatten(1).norm(dim=1)


def _sample_metrics(samples: torch.Tensor | None, truth: torch.Tensor, metric=relative_l2) -> dict:
    """Per test sample: error of the first sample and the diversity of the set (``{}`` for one sample)."""
    if samples is None or samples.shape[1] < 2:
        return {}
    samples = samples.cpu()
    return {
        "single": metric(samples[:, 0], truth).tolist(),
        "distance": pairwise_relative_distance(samples).tolist(),
        "cosine": pairwise_cosine(samples).tolist(),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def run_benchmark(config: BenchConfig) -> dict | None:
    """Run ``config`` (sharded under torchrun); the record on rank 0, ``None`` on other ranks."""
    rank, world = _distributed()
    part = _shard_result(config, rank, world)
    parts = [part]
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, part)
    if rank != 0:
        return None
    return _record(config, parts, world)


def _record(config: BenchConfig, parts: list[dict], world: int) -> dict:
    task = get_task(config.task)
    by_index = {i: e for p in parts for i, e in zip(p["indices"], p["rel_l2"])}
    errors = [by_index[i] for i in range(config.n)]
    mean, std = _mean_std(errors)
    record = {
        "task": config.task,
        "method": config.method,
        "n": config.n,
        "resolution": task.resolution,
        "metric": task.metric_name,
        "rel_l2": errors,
        "rel_l2_mean": mean,
        "rel_l2_std": std,
        "seconds_per_sample": sum(p["seconds"] for p in parts) / config.n,
        "denoiser_seconds": sum(p["denoiser_seconds"] for p in parts) / config.n,
        "nfe": max(p["nfe"] for p in parts),
        "device": _device_name(config.device),
        "version": __version__,
        "steps": config.steps,
        "method_config": parts[0]["method_config"],
        "samples": config.samples,
        "seed": config.seed,
        "prior": _prior_name(config, task.pde) if _needs_prior(config.method) else None,
        "raw_prior": config.raw_prior,
        "gaussian_part": config.gaussian_part,
        **({"gaussian_above": config.gaussian_above, "gaussian_nfe": max(p["gaussian_nfe"] for p in parts)}
           if config.gaussian_above is not None else {}),
        **({"equireg_weight": config.equireg_weight} if parse_method(config.method)[1] else {}),
        **({"repa_weight": config.repa_weight, "repa_step": config.repa_step, "repa_cutoff": config.repa_cutoff}
           if split_repa(config.method)[1] else {}),
        **({"particle_state": config.particle_state} if parse_method(config.method)[0] in PARTICLES else {}),
        **({"solver_dt": config.solver_dt} if config.solver_dt is not None else {}),
        **({"method_preset": config.method_preset} if config.method_preset not in (None, "paper") else {}),
        **({"method_options": dict(config.method_options)} if config.method_options else {}),
        "data": str(config.data or task.default_data()),
        "n_points": task.n_points,
        "processes": world,
        "wall_seconds": max(p["seconds"] for p in parts),
    }
    weights = None if record["prior"] == EXACT_PRIOR else record["prior"]  # the exact prior has no weights
    record["provenance"] = provenance(weights, record["data"], config.device)
    if "std" in parts[0]:
        record["rel_std"] = _ordered(parts, "std", config.n)
    return {**record, **_sample_record(parts, config.n)}


def _ordered(parts: list[dict], key: str, n: int) -> list[float]:
    """The per-test-sample values ``key`` of the processes' parts, in test-sample order."""
    by_index = {i: v for p in parts for i, v in zip(p["indices"], p[key])}
    return [by_index[i] for i in range(n)]


def _sample_record(parts: list[dict], n: int) -> dict:
    """``rel_l2_single(_std)`` and ``diversity`` gathered over the processes' parts (``{}`` for one sample)."""
    if "single" not in parts[0]:
        return {}

    def ordered(key: str) -> list[float]:
        return _ordered(parts, key, n)

    single, single_std = _mean_std(ordered("single"))
    distance, cosine = ordered("distance"), ordered("cosine")
    return {
        "rel_l2_single": single,
        "rel_l2_single_std": single_std,
        "diversity": {
            "pairwise_relative_distance": _mean_std(distance)[0],
            "pairwise_cosine": _mean_std(cosine)[0],
        },
        "per_sample": {"rel_l2_single": ordered("single"), "pairwise_relative_distance": distance,
                       "pairwise_cosine": cosine},
    }


def write_json(record: dict, path: str | Path) -> Path:
    """Write ``record`` to ``path`` as strict JSON (no NaN or Infinity), atomically (temporary file + rename).

    Raises
    ------
    NonFiniteError
        If a value is NaN or infinite (the message names the test sample of a non-finite
        ``rel_l2`` entry); nothing is written.
    """
    bad = [i for i, e in enumerate(record.get("rel_l2", [])) if not math.isfinite(e)]
    if bad:
        raise NonFiniteError(
            f"the relative L2 error of test sample {bad[0]} of {record.get('data', 'the test set')} is "
            f"{record['rel_l2'][bad[0]]} ({len(bad)} such sample(s)): the reconstruction holds NaN/inf or the true "
            "field is all zero; nothing was written"
        )
    try:
        text = json.dumps(record, indent=2, allow_nan=False)
    except ValueError:
        keys = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        names = ", ".join(keys) or "nested"
        raise NonFiniteError(f"the record holds non-finite values ({names}); it was not written") from None
    path = Path(path)
    with atomic_write(path) as temporary:
        temporary.write_text(text + "\n")
    return path


def nfe_label(record: dict) -> str:
    """The record's network evaluations per sample, with its Gaussian-part evaluations when it has them
    (``--gaussian-above``): ``"100 (+100 Gaussian part)"``."""
    extra = record.get("gaussian_nfe")
    return f"{record['nfe']}" + (f" (+{extra} Gaussian part)" if extra else "")


def results_table(records: list[dict]) -> str:
    """A markdown table of run records, sorted by task, method and steps."""
    header = (
        "| task | method | prior | steps | n | rel. L2 % (mean ± std) | s / sample | NFE | device |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['task']} | {method_label(r)} | {_prior_label(r)} | {r.get('steps') or '-'} | {r['n']} | "
        f"{100 * r['rel_l2_mean']:.2f} ± {100 * r['rel_l2_std']:.2f}{metric_mark(r)} | "
        f"{r['seconds_per_sample']:.3g} | {nfe_label(r)} | {r['device']} |"
        for r in sorted(records, key=lambda r: (r["task"], run_label(r), r.get("steps") or 0))
    ]
    sampled = [r for r in records if "diversity" in r]
    return "\n".join([header, *rows]) + ("\n\n" + samples_table(sampled) if sampled else "")


def metric_label(record: dict) -> str:
    """``"error rate"`` for a record scored by the binary error rate, else ``"rel. L2"``."""
    return "error rate" if record.get("metric") == "error_rate" else "rel. L2"


def metric_mark(record: dict) -> str:
    """`` (error rate)`` for a record scored by the error rate of a binary field, else empty."""
    return " (error rate)" if record.get("metric") == "error_rate" else ""


def method_label(record: dict) -> str:
    """The record's method, with its term settings where they are not the defaults.

    E.g. ``tmpd+equireg (λ=100)``, ``latent-dps+repa (repa weight 0.2, step 1, cutoff 0.5)`` (the
    ``+repa`` settings given instead of the publication's) or ``dwgf (calibrated, gamma=0)``
    (``--method-preset``, ``--method-option``), with ``mean of K samples`` when the record scores the
    mean of ``K`` posterior samples (``--samples``). A ``+repa`` record without ``repa_step`` ran the
    term's earlier form (weight per 1000 steps, cutoff of the pasted proxy) and says so.
    """
    settings = method_settings(record)
    return f"{record['method']} ({', '.join(settings)})" if settings else record["method"]


def method_settings(record: dict) -> list[str]:
    """The record's preset, method options, term weights that differ from the defaults and the number of
    samples whose mean it scores (when more than one), as short marks."""
    settings = [record["method_preset"]] if record.get("method_preset") else []
    samples = record.get("samples", 1)
    settings += [f"mean of {samples} samples"] if samples > 1 else []
    settings += [f"{key}={value}" for key, value in record.get("method_options", {}).items()]
    weight = record.get("equireg_weight", MethodOptions.equireg_weight)
    settings += [f"λ={weight:g}"] if weight != MethodOptions.equireg_weight else []
    return settings + _repa_settings(record)


def _repa_settings(record: dict) -> list[str]:
    """The ``+repa`` settings of a record that differ from the publication's (see :func:`method_label`)."""
    if "repa_weight" not in record:
        return []
    if "repa_step" not in record:
        weight, cutoff = record["repa_weight"], record["repa_cutoff"]
        return [f"earlier form: weight {weight:g} per 1000 steps, proxy cutoff {cutoff:g}"]
    names = (("repa_weight", "repa weight"), ("repa_step", "step"))
    settings = [f"{name} {record[key]:g}" for key, name in names if record[key] is not None]
    cutoff = record.get("repa_cutoff", MethodOptions.repa_cutoff)
    return settings + ([f"cutoff {cutoff:g}"] if cutoff != MethodOptions.repa_cutoff else [])


def prior_marks(record: dict) -> list[str]:
    """How the record's prior was used, as short marks for the tables.

    ``"raw"`` (``--raw-prior``), ``"Gaussian part"`` (``--gaussian-part``), ``"Gaussian part at sigma >= s"``
    (``--gaussian-above``), ``"joint state"`` /
    ``"solved state"`` (``--particle-state``, when not ``auto``), ``"solver dt 0.01"`` (``--solver-dt``).
    """
    marks = [mark for key, mark in (("raw_prior", "raw"), ("gaussian_part", "Gaussian part")) if record.get(key)]
    if record.get("gaussian_above") is not None:
        marks.append(f"Gaussian part at sigma >= {record['gaussian_above']:g}")
    state = record.get("particle_state", "auto")
    marks += [f"{state} state"] if state != "auto" else []
    return marks + ([f"solver dt {record['solver_dt']:g}"] if record.get("solver_dt") is not None else [])


def run_label(record: dict) -> str:
    """A label telling runs of one task apart: the method with its :func:`method_settings` and :func:`prior_marks`."""
    marks = method_settings(record) + prior_marks(record)
    return f"{record['method']} ({', '.join(marks)})" if marks else record["method"]


def _prior_label(record: dict) -> str:
    """The record's prior with its :func:`prior_marks`."""
    prior = record.get("prior") or "-"
    marks = prior_marks(record)
    return f"{prior} ({', '.join(marks)})" if marks and prior != "-" else prior


def samples_table(records: list[dict]) -> str:
    """Markdown table of runs with several samples per measurement: single-sample and mean errors, diversity."""
    header = (
        "| task | method | samples | steps | n | rel. L2 % single | rel. L2 % of mean | pairwise rel. distance "
        "| pairwise cosine | s / sample |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['task']} | {run_label(r)} | {r['samples']} | {r.get('steps')} | {r['n']} | "
        f"{100 * r['rel_l2_single']:.2f} ± {100 * r['rel_l2_single_std']:.2f} | "
        f"{100 * r['rel_l2_mean']:.2f} ± {100 * r['rel_l2_std']:.2f} | "
        f"{r['diversity']['pairwise_relative_distance']:.3f} | {r['diversity']['pairwise_cosine']:.3f} | "
        f"{r['seconds_per_sample']:.3g} |"
        for r in sorted(records, key=lambda r: (r["task"], r["method"], r["samples"]))
    ]
    return "\n".join([header, *rows])


def read_records(paths: list[str | Path]) -> list[dict]:
    """Load run records (strict JSON), checking each has the DESIGN.md keys.

    Raises
    ------
    FileNotFoundError
        A missing file.
    ValueError
        A file that is not JSON, holds NaN/Infinity, or lacks the keys of a record.
    """
    required = ("task", "method", "n", "rel_l2_mean", "rel_l2_std", "seconds_per_sample", "nfe", "device")
    records = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file; give run records written by 'pdeinv bench --out'")
        try:
            record = json.loads(path.read_text(), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"{path} is not a valid pdeinv bench record: {error}") from None
        missing = [k for k in required if not isinstance(record, dict) or k not in record]
        if missing:
            raise ValueError(f"{path} is not a pdeinv bench record: it lacks {missing}")
        records.append(record)
    return records


def _refuse_constant(name: str):
    raise ValueError(f"it holds {name}, which strict JSON does not allow; rerun the benchmark")
