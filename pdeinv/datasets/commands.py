"""``pdeinv data``: generate, inspect and validate HDF5 field data.

Sub-commands::

    pdeinv data generate {helmholtz,poisson,darcy,navier-stokes} --resolution S --n N --seed SEED --out FILE.h5
                         [--batch-size B] [--solver-batch G] [--viscosity NU] [--time T] [--dt DT]
                         [--device cpu] [--no-progress]
    pdeinv data benchmark-sets --out DIR [--resolution 128] [--n 64] [--batch-size B] [--device cpu] [--no-progress]
    pdeinv data info FILE.h5
    pdeinv data check FILE.h5
"""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from pdeinv.datasets.generate import SOLVER_BATCH, generate, make_config
from pdeinv.datasets.inspection import check_file, summary
from pdeinv.datasets.splits import SPLIT_SEEDS, benchmark_set_configs


def _add_generate(sub) -> None:
    parser = sub.add_parser("generate", help="generate (input, solution) pairs into an HDF5 file (resumable)")
    parser.add_argument("pde", help="helmholtz, poisson, darcy or navier-stokes")
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
        "--batch-size", type=int, default=32, help="samples per resumable shard (does not change the data)"
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
    parser.add_argument("--device", default="cpu", help="torch device of the solvers, e.g. cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv data`` sub-commands on ``parser``."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add_generate(sub)
    bench = sub.add_parser(
        "benchmark-sets", help=f"generate the fixed benchmark test sets (seed test={SPLIT_SEEDS['test']})"
    )
    bench.add_argument("--out", required=True, help="directory for the <pde>_<S>_test.h5 files (helmholtz, poisson, darcy, navier-stokes)")
    bench.add_argument("--resolution", type=int, default=128, help="grid points per side (default 128)")
    bench.add_argument("--n", type=int, default=64, help="samples per set (default 64)")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    info = sub.add_parser("info", help="summarise an HDF5 data file")
    info.add_argument("file")
    check = sub.add_parser("check", help="validate schema and contents of an HDF5 data file (exit 1 on problems)")
    check.add_argument("file")


def _generate(args) -> int:
    config = make_config(
        args.pde,
        args.resolution,
        args.n,
        args.seed,
        viscosity=args.viscosity,
        time=args.time,
        dt=args.dt,
        solver_batch=args.solver_batch,
    )
    path = generate(config, args.out, batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    print(f"wrote {path}")
    return 0


def _benchmark_sets(args) -> int:
    for name, config in benchmark_set_configs(args.resolution, args.n).items():
        out = Path(args.out) / f"{name}.h5"
        path = generate(config, out, batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
        print(f"wrote {path}")
    return 0


def _info(args) -> int:
    print(summary(args.file))
    return 0


def _check(args) -> int:
    problems = check_file(args.file)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: OK")
    return 1 if problems else 0


def run(args) -> int:
    """Run the ``pdeinv data`` action in ``args.data_command``; user errors exit with code 2 and a message."""
    actions = {"generate": _generate, "benchmark-sets": _benchmark_sets, "info": _info, "check": _check}
    action = actions[args.data_command]
    try:
        return action(args)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"pdeinv data {args.data_command}: error: {error}", file=sys.stderr)
        return 2
