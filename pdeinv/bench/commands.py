"""``pdeinv bench``: run a benchmark task with a method, or tabulate runs.

Usage::

    pdeinv bench --task T --method M --n N [--steps K] [--seed S] [--samples K] [--prior NAME]
                 [--method-preset NAME] [--method-option KEY=VALUE ...] [--data FILE] [--batch-size B] [--device cpu] [--no-progress] --out FILE.json [--overwrite]
    pdeinv bench --table RUN.json [RUN.json ...] [--out TABLE.md] [--overwrite]
    torchrun --nproc_per_node P -m pdeinv.cli bench ... -n N ...   # shards the test samples over P processes

Under torchrun write the sample count as ``-n N``: torchrun's own parser rejects ``--n`` as an
ambiguous abbreviation of its ``--nnodes``/``--nproc-per-node`` even after the module name.

Without ``--data`` the task's standard test set ``$PDEINV_DATA/<pde>_<S>_test.h5`` is used; if it
is missing it is generated first, with the settings of ``pdeinv data benchmark-sets`` (test seed,
64 samples or ``--n`` if more). The output is checked before the run (an existing file is refused
unless ``--overwrite``; an input is never overwritten) and written at the end in one rename. A
run whose error is not finite (a NaN in the reconstruction, an all-zero true field) stops
without writing, naming the sample (:func:`~pdeinv.bench.runner.write_json`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import h5py

from pdeinv.arguments import check_device, device, fraction, non_negative_float, non_negative_int, positive_float
from pdeinv.arguments import positive_int
from pdeinv.bench.runner import BenchConfig, metric_label, read_records, results_table, run_benchmark, write_json
from pdeinv.bench.tasks import TASKS, Task
from pdeinv.datasets.config import make_config
from pdeinv.datasets.splits import SPLIT_SEEDS, benchmark_set_configs
from pdeinv.errors import PdeinvError, UsageError
from pdeinv.files import atomic_write, check_outputs
from pdeinv.sampling.commands import add_solver_arguments
from pdeinv.sampling.methods import method_names
from pdeinv.sampling.progress import report_batches

STANDARD_SET_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv bench`` options on ``parser``."""
    parser.add_argument("--task", help=f"one of {', '.join(sorted(TASKS))}")
    parser.add_argument("--method", help=f"one of {', '.join(method_names())}")
    parser.add_argument(
        "--n", "-n", type=positive_int, default=32,
        help="number of test samples (default 32; write -n N under torchrun)",
    )
    parser.add_argument("--steps", type=positive_int, default=None, help="sampling steps / optimiser iterations")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the method's random generator")
    parser.add_argument(
        "--samples", type=positive_int, default=1, help="posterior samples per measurement (their mean is scored)"
    )
    parser.add_argument(
        "--prior", default=None,
        help="prior name or checkpoint directory (default per PDE), or 'exact': the exact joint Gaussian prior of a "
        "linear PDE with a Gaussian random input (helmholtz, poisson), the true law of the test data",
    )
    parser.add_argument(
        "--data", default=None,
        help="test-set HDF5 file (default $PDEINV_DATA/<pde>_<S>_test.h5, generated on first use)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=4, help="measurements sampled together")
    parser.add_argument("--device", type=device, default="cpu", help="torch device of the prior, e.g. cpu or cuda")
    parser.add_argument(
        "--raw-prior",
        action="store_true",
        help="for a linear PDE, use the joint prior as trained instead of its operator-consistent form",
    )
    parser.add_argument(
        "--gaussian-part", action="store_true",
        help="use only the prior's fitted Gaussian base (the network switched off)",
    )
    parser.add_argument(
        "--gaussian-above", type=positive_float, default=None, metavar="SIGMA",
        help="use the prior's fitted Gaussian base at noise levels >= SIGMA and the network below "
        "(the record's NFE counts network evaluations)",
    )
    parser.add_argument(
        "--equireg-weight", type=positive_float, default=BenchConfig.equireg_weight,
        help=f"weight of the EquiReg term of +equireg methods (default {BenchConfig.equireg_weight:g})"
    )
    parser.add_argument(
        "--repa-weight", type=non_negative_float, default=None,
        help="lambda_repa of +repa methods: Align & Invert's weight of the token-summed misalignment, "
        "independent of --steps (default: the publication's for the task and solver)",
    )
    parser.add_argument(
        "--repa-step", type=positive_float, default=None,
        help="eta of +repa methods: Align & Invert's step size (default: the publication's for the task and solver)",
    )
    parser.add_argument(
        "--repa-cutoff", type=fraction, default=BenchConfig.repa_cutoff,
        help=f"fraction of the steps in which the +repa term acts (default {BenchConfig.repa_cutoff:g}: every step)",
    )
    add_solver_arguments(parser)
    parser.add_argument("--table", nargs="+", metavar="RUN", help="aggregate run JSON files into a markdown table")
    parser.add_argument("--out", help="output JSON (a run) or markdown file (--table)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (stderr)")


def _table(args: argparse.Namespace) -> int:
    outputs = check_outputs([args.out], inputs=args.table, overwrite=args.overwrite) if args.out else []
    table = results_table(read_records(args.table))
    for out in outputs:
        with atomic_write(out) as temporary:
            temporary.write_text(table + "\n")
    print(table)
    for out in outputs:
        print(f"wrote {out}")
    return 0


def _config(args: argparse.Namespace, data: str | None) -> BenchConfig:
    """The run's settings; an unknown task or method is a usage error."""
    if args.task not in TASKS:
        raise UsageError(f"unknown task {args.task!r}; choose one of {', '.join(sorted(TASKS))}")
    try:
        return BenchConfig(
            task=args.task,
            method=args.method,
            n=args.n,
            steps=args.steps,
            seed=args.seed,
            samples=args.samples,
            prior=args.prior,
            data=data,
            batch_size=args.batch_size,
            device=args.device,
            raw_prior=args.raw_prior,
            equireg_weight=args.equireg_weight,
            repa_weight=args.repa_weight,
            repa_step=args.repa_step,
            repa_cutoff=args.repa_cutoff,
            gaussian_part=args.gaussian_part, gaussian_above=args.gaussian_above,
            particle_state=args.particle_state,
            solver_dt=args.solver_dt,
            method_preset=args.method_preset,
            method_options=tuple(args.method_options),
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _check_data(path: Path) -> None:
    """A given ``--data`` must be an HDF5 file (its contents are checked when the test set is read)."""
    if path.is_dir():
        raise UsageError(f"--data {path} is a directory; give the test-set HDF5 file")
    if path.is_file() and not h5py.is_hdf5(path):
        raise PdeinvError(
            f"--data {path} is not an HDF5 file (another format, or truncated); "
            "give a test set written by 'pdeinv data generate'"
        )


def standard_test_set(task: Task, n: int, progress: bool = True) -> Path:
    """The task's default test set, generated first (as ``pdeinv data benchmark-sets`` would) if it is missing."""
    path = task.default_data()
    if path.exists():
        return path
    size = max(n, STANDARD_SET_SIZE)
    config = benchmark_set_configs(task.resolution, size).get(path.stem) or make_config(
        task.pde, task.resolution, size, SPLIT_SEEDS["test"]
    )
    print(
        f"the standard test set {path} of {task.name} is missing; generating it now "
        f"(= {task.generate_command(path, size)})",
        file=sys.stderr,
    )
    from pdeinv.datasets.generate import generate

    path.parent.mkdir(parents=True, exist_ok=True)
    generate(config, path, progress=progress)
    print(f"wrote {path}")
    return path


def _run(args: argparse.Namespace) -> int:
    if not (args.task and args.method and args.out):
        raise UsageError("--task, --method and --out are required (or use --table RUN ...)")
    config = _config(args, args.data)
    task = TASKS[config.task]
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    data = Path(args.data) if args.data else task.default_data()
    inputs = [data] + ([args.prior] if args.prior and Path(args.prior).exists() else [])
    out = check_outputs([args.out], inputs=inputs, overwrite=args.overwrite)[0] if rank == 0 else None
    _check_data(data)
    check_device(args.device)
    progress = not args.no_progress and rank == 0
    if args.data is None and world == 1:
        data = standard_test_set(task, args.n, progress)
        config = _config(args, str(data))
    task.load_test_set(data, args.n)  # its errors (other data, too few samples, a NaN) before the progress bar
    from tqdm.auto import tqdm

    total = len(range(rank, args.n, world))
    with tqdm(total=total, unit="sample", desc=f"{args.task} {args.method}", disable=not progress) as bar:
        with report_batches(bar.update):
            record = run_benchmark(config)
        bar.update(bar.total - bar.n)
    if record is None:
        return 0
    write_json(record, out)
    print(
        f"{record['task']} {record['method']}: {metric_label(record)} {100 * record['rel_l2_mean']:.2f} ± "
        f"{100 * record['rel_l2_std']:.2f} % over {record['n']} samples, "
        f"{record['seconds_per_sample']:.3g} s/sample, NFE {record['nfe']}"
    )
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    return _table(args) if args.table else _run(args)
