"""``pdeinv data``: generate, inspect and validate HDF5 field data.

Sub-commands::

    pdeinv data generate {helmholtz,poisson,darcy,navier-stokes} --resolution S --n N --seed SEED --out FILE.h5
                         [--batch-size B] [--solver-batch G] [--viscosity NU] [--time T] [--dt DT]
                         [--device cpu] [--no-progress] [--overwrite]
    pdeinv data benchmark-sets --out DIR [--resolution 128] [--n 64] [--batch-size B] [--device cpu]
                               [--no-progress] [--overwrite]
    pdeinv data info FILE.h5
    pdeinv data check FILE.h5 [--physics-samples K]

Beside each generated file The Well's normalisation statistics are written once the file is
complete: ``stats.yaml`` when the file is alone in its folder (``WellDataset(path=<folder>,
use_normalization=True)`` reads it), else ``FILE.stats.yaml``
(:func:`pdeinv.datasets.statistics.well_statistics_path`).

Outputs are never replaced silently: an existing ``FILE.h5`` or statistics file is refused unless
``--overwrite`` is given. A killed run leaves its finished batches in ``FILE.h5.parts/`` and no ``FILE.h5``;
running the same command again resumes it (no ``--overwrite`` needed) and gives the bytes of an
uninterrupted run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdeinv.arguments import check_device, device, positive_int
from pdeinv.datasets.config import SOLVER_BATCH, make_config
from pdeinv.datasets.inspection import PHYSICS_SAMPLES, check_file, summary
from pdeinv.datasets.splits import SPLIT_SEEDS, benchmark_set_configs
from pdeinv.datasets.statistics import well_statistics_path, write_well_statistics
from pdeinv.datasets.store import ShardStore
from pdeinv.errors import UsageError
from pdeinv.files import check_outputs
from pdeinv.pdes import get_pde, pde_names

RESUME_RULE = (
    "An existing output is refused unless --overwrite is given; a run that was killed leaves its finished "
    "batches in FILE.h5.parts/ (and no FILE.h5), and the same command resumes it."
)


def _add_generate(sub) -> None:
    parser = sub.add_parser(
        "generate",
        help="generate (input, solution) pairs into an HDF5 file (resumable)",
        description=f"Generate (input, solution) pairs into an HDF5 file. {RESUME_RULE}",
    )
    parser.add_argument("pde", help=f"the PDE: {', '.join(pde_names())}")
    parser.add_argument("--resolution", type=int, required=True, help="grid points per side S")
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument(
        "--seed",
        type=int,
        required=True,
        help=f"data-set seed; the fixed splits use {', '.join(f'{k}={v}' for k, v in SPLIT_SEEDS.items())}",
    )
    parser.add_argument(
        "--out", required=True, help="output file FILE.h5 (parts are kept in FILE.h5.parts/ until done)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="samples per resumable shard (does not change the data)"
    )
    parser.add_argument(
        "--solver-batch",
        type=int,
        default=SOLVER_BATCH,
        help=f"samples per solver call (default {SOLVER_BATCH}); part of the data's definition, keep the default",
    )
    parser.add_argument("--viscosity", type=float, default=None, help="navier-stokes viscosity (default 1e-3)")
    parser.add_argument("--time", type=float, default=None, help="navier-stokes final time T (default 1)")
    parser.add_argument("--dt", type=float, default=None, help="navier-stokes time step (default 1e-4)")
    parser.add_argument("--device", type=device, default="cpu", help="torch device of the solvers, e.g. cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FILE.h5 (not needed to resume)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv data`` sub-commands on ``parser``."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add_generate(sub)
    help_text = f"generate the fixed benchmark test sets (seed test={SPLIT_SEEDS['test']})"
    bench = sub.add_parser("benchmark-sets", help=help_text, description=f"{help_text.capitalize()}. {RESUME_RULE}")
    bench.add_argument("--out", required=True, help="directory for the <pde>_<S>_test.h5 files (helmholtz, poisson, darcy, navier-stokes)")
    bench.add_argument("--resolution", type=int, default=128, help="grid points per side (default 128)")
    bench.add_argument("--n", type=int, default=64, help="samples per set (default 64)")
    bench.add_argument("--batch-size", type=positive_int, default=32)
    bench.add_argument("--device", type=device, default="cpu")
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    bench.add_argument("--overwrite", action="store_true", help="replace existing sets (not needed to resume)")
    info = sub.add_parser("info", help="summarise an HDF5 data file")
    info.add_argument("file")
    check = sub.add_parser(
        "check",
        help="validate schema, contents and physics of an HDF5 data file (exit 1 on problems)",
        description="Validate an HDF5 data file: The Well's layout, pdeinv's schema, a known PDE, float32/float64 "
        "finite fields, stored statistics, and the physics: the solution of a few pairs equals the forward solve "
        "of their input.",
    )
    check.add_argument("file")
    check.add_argument(
        "--physics-samples",
        type=int,
        default=PHYSICS_SAMPLES,
        metavar="K",
        help=f"pairs whose solution is recomputed (default {PHYSICS_SAMPLES}; Navier-Stokes at most "
        f"{get_pde('navier-stokes').max_check_samples}, each a time integration of about 10 s at 128 x 128; "
        "0 skips the physics)",
    )


def _config(pde: str, resolution: int, n: int, seed: int, **settings):
    """:func:`make_config`, its complaints about the settings reported as usage errors."""
    try:
        return make_config(pde, resolution, n, seed, **settings)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _prepare(outputs: list[Path], overwrite: bool) -> dict[Path, Path]:
    """Refuse existing data or statistics files (unless ``overwrite``), say which runs resume; ``{data: stats}``."""
    statistics = {out: well_statistics_path(out, tuple(o for o in outputs if o != out)) for out in outputs}
    check_outputs([*outputs, *statistics.values()], overwrite=overwrite)
    for out in outputs:
        store = ShardStore(out, {})
        if store.directory.is_dir():
            done = sum(stop - start for start, stop in store.ranges())
            print(f"resuming {out}: {done} samples already in {store.directory}", file=sys.stderr)
    return statistics


def _write_statistics(out: Path, statistics: Path) -> None:
    """Write The Well's statistics of the complete file ``out`` to ``statistics`` (atomically)."""
    write_well_statistics(out, statistics)
    print(f"wrote {statistics}")


def _generate(args) -> int:
    config = _config(
        args.pde,
        args.resolution,
        args.n,
        args.seed,
        viscosity=args.viscosity,
        time=args.time,
        dt=args.dt,
        solver_batch=args.solver_batch,
    )
    out = Path(args.out)
    statistics = _prepare([out], args.overwrite)
    check_device(args.device)
    from pdeinv.datasets.generate import generate

    generate(
        config, out, batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    _write_statistics(out, statistics[out])
    return 0


def _benchmark_sets(args) -> int:
    try:
        configs = benchmark_set_configs(args.resolution, args.n)
    except ValueError as error:
        raise UsageError(str(error)) from None
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; benchmark-sets writes several files into a directory")
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {name: folder / f"{name}.h5" for name in configs}
    statistics = _prepare(list(outputs.values()), args.overwrite)
    check_device(args.device)
    from pdeinv.datasets.generate import generate

    for name, config in configs.items():
        generate(
            config, outputs[name], batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
            overwrite=args.overwrite,
        )
        print(f"wrote {outputs[name]}")
        _write_statistics(outputs[name], statistics[outputs[name]])
    return 0


def _info(args) -> int:
    print(summary(args.file))
    return 0


def _check(args) -> int:
    if args.physics_samples < 0:
        raise UsageError(f"--physics-samples must be >= 0 (0 skips the physics check), got {args.physics_samples}")
    problems = check_file(args.file, physics_samples=args.physics_samples)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: OK")
    return 1 if problems else 0


def run(args) -> int:
    """Run the ``pdeinv data`` action in ``args.data_command``; returns the exit status."""
    actions = {"generate": _generate, "benchmark-sets": _benchmark_sets, "info": _info, "check": _check}
    return actions[args.data_command](args)
