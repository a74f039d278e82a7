"""``pdeinv bench``: run a benchmark task with a method, or tabulate runs.

Usage::

    pdeinv bench --task T --method M --n N [--steps K] [--seed S] [--samples K] [--prior NAME]
                 [--data FILE] [--batch-size B] [--device cpu] --out FILE.json
    pdeinv bench --table RUN.json [RUN.json ...] [--out TABLE.md]
    torchrun --nproc_per_node P -m pdeinv.cli bench ... -n N ...   # shards the test samples over P processes

Under torchrun write the sample count as ``-n N``: torchrun's own parser rejects ``--n`` as an
ambiguous abbreviation of its ``--nnodes``/``--nproc-per-node`` even after the module name.
"""

from __future__ import annotations

import argparse
import sys

from pdeinv.bench.runner import BenchConfig, metric_label, read_records, results_table, run_benchmark, write_json
from pdeinv.bench.tasks import TASKS
from pdeinv.sampling.commands import add_solver_arguments
from pdeinv.sampling.methods import method_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv bench`` options on ``parser``."""
    parser.add_argument("--task", help=f"one of {', '.join(sorted(TASKS))}")
    parser.add_argument("--method", help=f"one of {', '.join(method_names())}")
    parser.add_argument(
        "--n", "-n", type=int, default=32, help="number of test samples (default 32; write -n N under torchrun)"
    )
    parser.add_argument("--steps", type=int, default=None, help="sampling steps / optimiser iterations")
    parser.add_argument("--seed", type=int, default=0, help="seed of the method's random generator")
    parser.add_argument(
        "--samples", type=int, default=1, help="posterior samples per measurement (their mean is scored)"
    )
    parser.add_argument("--prior", default=None, help="prior name or checkpoint directory (default per PDE)")
    parser.add_argument("--data", default=None, help="test-set HDF5 file (default $PDEINV_DATA/<pde>_<S>_test.h5)")
    parser.add_argument("--batch-size", type=int, default=4, help="measurements sampled together")
    parser.add_argument("--device", default="cpu", help="torch device of the prior, e.g. cpu or cuda")
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
        "--equireg-weight", type=float, default=BenchConfig.equireg_weight,
        help=f"weight of the EquiReg term of +equireg methods (default {BenchConfig.equireg_weight:g})"
    )
    parser.add_argument(
        "--repa-weight", type=float, default=BenchConfig.repa_weight,
        help=f"weight per 1000 steps of the alignment term of +repa methods (default {BenchConfig.repa_weight:g})",
    )
    parser.add_argument(
        "--repa-cutoff", type=float, default=BenchConfig.repa_cutoff,
        help="fraction of the steps whose +repa proxy is the estimate with the measurements pasted in "
        f"(default {BenchConfig.repa_cutoff:g})",
    )
    add_solver_arguments(parser)
    parser.add_argument("--table", nargs="+", metavar="RUN", help="aggregate run JSON files into a markdown table")
    parser.add_argument("--out", help="output JSON (a run) or markdown file (--table)")


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    if args.table:
        table = results_table(read_records(args.table))
        if args.out:
            with open(args.out, "w") as handle:
                handle.write(table + "\n")
        print(table)
        return 0
    if not (args.task and args.method and args.out):
        print("pdeinv bench: --task, --method and --out are required (or use --table RUN ...)", file=sys.stderr)
        return 2
    config = BenchConfig(
        task=args.task,
        method=args.method,
        n=args.n,
        steps=args.steps,
        seed=args.seed,
        samples=args.samples,
        prior=args.prior,
        data=args.data,
        batch_size=args.batch_size,
        device=args.device,
        raw_prior=args.raw_prior,
        equireg_weight=args.equireg_weight,
        repa_weight=args.repa_weight,
        repa_cutoff=args.repa_cutoff,
        gaussian_part=args.gaussian_part,
        particle_state=args.particle_state,
        solver_dt=args.solver_dt,
    )
    try:
        record = run_benchmark(config)
    except (FileNotFoundError, ValueError) as error:
        print(f"pdeinv bench: {error}", file=sys.stderr)
        return 1
    if record is not None:
        write_json(record, args.out)
        print(
            f"{record['task']} {record['method']}: {metric_label(record)} {100 * record['rel_l2_mean']:.2f} ± "
            f"{100 * record['rel_l2_std']:.2f} % over {record['n']} samples, "
            f"{record['seconds_per_sample']:.3g} s/sample, NFE {record['nfe']} -> {args.out}"
        )
    return 0
