"""Generation of (input, solution) pairs into a pdeinv HDF5 file, batched, resumable and atomic.

PDEs (``GenerationConfig.pde``):

- ``helmholtz``: source ``a`` ~ :func:`~pdeinv.datasets.grf.helmholtz_source_grf`, solution
  ``u = Helmholtz(S, k).A(a)`` of ``lap_h u + k^2 u = a`` (``k = 1``), vertex grid, ``u = 0`` on
  the boundary. The solve runs in float64 on the stored float32 source; ``u`` is then rounded.
- ``poisson``: the same with ``k = 0``.
- ``darcy``: level set ``mu`` ~ :func:`~pdeinv.datasets.grf.darcy_level_set_grf`, permeability
  ``a = 12`` where ``mu >= 0`` and ``3`` elsewhere, pressure ``u = Darcy(S).A(a)`` of
  ``-div(a grad u) = 1``, ``u = 0`` on the boundary (vertex grid); solved in float64, ``u`` rounded.
- ``navier-stokes``: initial vorticity ``w0`` ~ :func:`~pdeinv.datasets.grf.ns_vorticity_grf`,
  ``w(T) = NavierStokes2D(S, viscosity, T, dt).A(w0)`` in float32 (the FNO generator's precision);
  the field ``vorticity`` holds ``time = [0, T]``.
- any other registered PDE (:mod:`pdeinv.pdes`), as Helmholtz: input ~ its ``input_field``,
  output = its operator applied in float64, fields named by its ``channels``.

Sample ``i`` is a pure function of ``(seed, i)`` and of the settings: its GRF noise comes from
:func:`~pdeinv.datasets.seeding.sample_generator` on the CPU. Batched FFTs and matrix products
round differently for different batch sizes (in the last bit), so the transforms and solvers
always run on fixed *solver groups*: samples ``[g G, (g+1) G)`` with ``G = solver_batch``, the last
group padded with zero inputs to ``G``. Sample ``i`` is therefore always computed in the same
slot of an identically shaped call. On the CPU the results of MKL's FFTs also depend on the
number of threads, so generation runs with one intra-op thread (restored afterwards). The
bytes then depend only on the settings and the device, not on ``batch_size`` (samples per
shard), the thread setting or interruptions.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch
from tqdm import tqdm

from pdeinv import __version__
from pdeinv.datasets.config import (  # noqa: F401  (re-exported)
    GENERATOR_VERSION,
    NS_DEFAULTS,
    SOLVER_BATCH,
    GenerationConfig,
    make_config,
)
from pdeinv.datasets.grf import GaussianRandomField, darcy_permeability
from pdeinv.datasets.schema import (
    FieldInfo,
    FileLayout,
    create_layout,
    generation_config,
)
from pdeinv.datasets.seeding import sample_generator
from pdeinv.datasets.statistics import Moments, write_statistics
from pdeinv.datasets.store import ShardStore, describe_differences
from pdeinv.errors import UsageError
from pdeinv.pdes import get_pde


def source_field(config: GenerationConfig) -> GaussianRandomField:
    """The GRF that draws the input of each pair: the PDE's ``data_field``, else its ``input_field``."""
    spec = get_pde(config.pde)
    field = spec.data_field or spec.input_field
    if field is None:
        raise UsageError(
            f"the PDE {config.pde!r} declares no input distribution to generate data from; give its spec a data_field"
        )
    return field(config.resolution)


def file_layout(config: GenerationConfig) -> FileLayout:
    """The HDF5 layout (fields, times, roles, attributes) of a data set generated with ``config``."""
    grf = source_field(config)
    attributes = {
        "generator_version": np.int64(config.generator_version),
        "history": f"pdeinv {__version__} data generator v{config.generator_version}",
        "seed": np.int64(config.seed),
        "grf_basis": grf.basis,
        "grf_alpha": grf.alpha,
        "grf_tau": grf.tau,
        "grf_sigma": grf.amplitude,
        "grf_zero_boundary": np.int64(grf.zero_boundary),
        "generation_config": json.dumps(asdict(config), sort_keys=True),
    }
    name = f"pdeinv_{config.pde.replace('-', '_')}_{config.resolution}"
    if config.pde == "navier-stokes":
        attributes["dt"] = config.dt
        return FileLayout(
            dataset_name=name,
            pde=config.pde,
            grid="periodic",
            resolution=config.resolution,
            n_samples=config.n,
            times=(0.0, config.time),
            fields=(FieldInfo("vorticity", "vorticity w = dv/dx - du/dy"),),
            input_fields=("vorticity[0]",),
            output_fields=("vorticity[-1]",),
            simulation_parameters={"viscosity": config.viscosity, "final_time": config.time},
            attributes=attributes,
        )
    spec = get_pde(config.pde)
    return FileLayout(
        dataset_name=name,
        pde=config.pde,
        grid=spec.grid,
        resolution=config.resolution,
        n_samples=config.n,
        times=(0.0,),
        fields=tuple(FieldInfo(channel, spec.descriptions.get(channel, channel)) for channel in spec.channels),
        input_fields=spec.channels[:1],
        output_fields=spec.channels[1:],
        simulation_parameters={**spec.constants, **({} if config.k is None else {"k": config.k})},
        attributes=attributes,
    )


def pair_solver(config: GenerationConfig, device: torch.device) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A function mapping a float32 input batch ``(B, 1, S, S)`` to ``{field: (B, n_steps, S, S) float32}``."""
    if config.pde == "navier-stokes":
        from pdeinv.operators.navier_stokes import NavierStokes2D

        physics = NavierStokes2D(config.resolution, viscosity=config.viscosity, time=config.time, dt=config.dt)
        physics = physics.to(device)
        return lambda w0: {"vorticity": torch.cat([w0, physics.A(w0)], dim=1)}
    if config.pde == "darcy":
        from pdeinv.operators.darcy import Darcy

        darcy = Darcy(config.resolution)

        def solve_darcy(level_set: torch.Tensor) -> dict[str, torch.Tensor]:
            a = darcy_permeability(level_set)
            return {"permeability": a, "pressure": darcy.A(a.double()).float()}

        return solve_darcy
    spec = get_pde(config.pde)
    physics = spec.build_operator(config.resolution, asdict(config)).to(device)
    source, solution = spec.channels
    return lambda a: {source: a, solution: physics.A(a.double()).float()}


def solve_group(config: GenerationConfig, grf: GaussianRandomField, solve, start: int, stop: int, device) -> dict:
    """Fields of samples ``[start, stop)`` (within one solver group) as float32 numpy arrays.

    The coefficients of each sample come from its own generator; the group is padded with zero
    coefficients to ``config.solver_batch`` samples so that every call has the same shape.
    """
    xi = torch.cat([grf.draw_coefficients(1, sample_generator(config.seed, i)) for i in range(start, stop)])
    padded = torch.zeros((config.solver_batch,) + xi.shape[1:], dtype=xi.dtype)
    padded[: stop - start] = xi
    with torch.no_grad():
        fields = solve(grf.synthesize(padded.to(device)))
    return {name: value[: stop - start].cpu().numpy() for name, value in fields.items()}


def solve_range(config: GenerationConfig, grf: GaussianRandomField, solve, start: int, stop: int, device) -> dict:
    """Fields of samples ``[start, stop)`` (``start`` a multiple of ``solver_batch``), group by group."""
    group = config.solver_batch
    parts = [solve_group(config, grf, solve, a, min(a + group, stop), device) for a in range(start, stop, group)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


@contextlib.contextmanager
def _deterministic_threads(device: torch.device):
    """One intra-op thread on the CPU (see the module doc); nothing on other devices."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _existing_output(out: Path, config: dict) -> bool:
    """True if ``out`` is a complete file of this configuration; raise if it holds another one."""
    if not out.exists():
        return False
    try:
        with h5py.File(out, "r") as f:
            existing = generation_config(f)
    except OSError as error:
        raise ValueError(
            f"{out} exists but cannot be read as HDF5 ({error}); delete it or choose another --out"
        ) from None
    if existing != config:
        raise ValueError(
            f"{out} already holds a data set with different settings: {describe_differences(existing, config)}; "
            "delete it or choose another --out"
        )
    return True


def _assemble(store: ShardStore, layout: FileLayout) -> None:
    """Write the final HDF5 file from the shards (in the parts directory) and compute the statistics."""
    with h5py.File(store.temporary_output(), "w") as f:
        datasets = create_layout(f, layout)
        moments = {name: Moments.empty(len(layout.times)) for name in datasets}
        for start, _, arrays in store.shards(layout.n_samples):
            for name, ds in datasets.items():
                block = arrays[name]
                ds[start : start + len(block)] = block
                for sample in block:
                    moments[name].add_sample(sample)
        for name, ds in datasets.items():
            write_statistics(ds, moments[name])


def generate(
    config: GenerationConfig,
    out: str | Path,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Generate ``config.n`` pairs into ``out``, resuming from ``out.parts/`` if a run was interrupted.

    Parameters
    ----------
    config : GenerationConfig
        What to generate (see :func:`make_config`).
    out : path-like
        Output HDF5 file; written atomically (it appears only when complete).
    batch_size : int
        Samples per shard (rounded up to a multiple of ``config.solver_batch``); the unit of
        progress and of work lost to an interruption. Does not change the data.
    device : str or torch.device
        Where the solvers run (the GRF noise is always drawn on the CPU).
    progress : bool
        Show a tqdm progress bar on stderr.
    overwrite : bool
        Generate even if ``out`` exists (it is replaced by the new file in one rename at the end).

    Returns
    -------
    pathlib.Path
        ``out``. If ``out`` already holds this configuration and ``overwrite`` is false, nothing
        is generated.

    Raises
    ------
    ValueError
        If ``out`` or its parts directory holds a different configuration, or ``batch_size < 1``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = Path(out)
    settings = asdict(config)
    store = ShardStore(out, settings)
    if not overwrite and _existing_output(out, settings):
        store.remove()
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    store.open()
    device = torch.device(device)
    grf, solve = source_field(config), pair_solver(config, device)
    todo = store.missing(config.n, batch_size, align=config.solver_batch)
    remaining = sum(stop - start for start, stop in todo)
    with tqdm(total=config.n, initial=config.n - remaining, unit="pair", disable=not progress, desc=out.name) as bar:
        for start, stop in todo:
            with _deterministic_threads(device):
                fields = solve_range(config, grf, solve, start, stop, device)
            store.write(start, stop, fields)
            bar.update(stop - start)
    _assemble(store, file_layout(config))
    store.commit()
    return out
