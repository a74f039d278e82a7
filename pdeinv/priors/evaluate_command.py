"""``pdeinv evaluate RUN_DIR``: measure a trained network's quality and record it in its card.

- A prior: ``--samples`` unconditional samples of ``--steps`` Heun steps at ``--resolution``,
  their physics consistency (median relative PDE residual, against the data's) and the ratio of
  their radial power spectrum to the data's; stored under ``card["quality"]["S"]``
  (``"S-consistent"`` with ``--consistent``), see :func:`pdeinv.priors.quality.evaluate_checkpoint`.
- An autoencoder: the relative L2 reconstruction error per channel on the first ``--samples``
  held-out fields of ``--data``, stored under ``card["quality"]["test"]``
  (:func:`pdeinv.latent.quality.evaluate_autoencoder`).

The fields compared against are the prior's training file unless ``--data`` names another;
zero-shot at a finer grid needs a ``--data`` file with fields at least that fine.
"""

from __future__ import annotations

import argparse
import json

from pdeinv.errors import UsageError
from pdeinv.priors.commands import CommandHelp, file_resolution

RENAMED = ("--eval-samples", "--eval-steps", "--eval-resolution", "--eval-consistent", "--eval-solver-dt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv evaluate`` options."""
    parser.formatter_class = CommandHelp
    parser.usage = "pdeinv evaluate RUN_DIR [--data FILE.h5] [options]"
    parser.description = (
        "Measure a trained prior's physics consistency and spectrum ratio, or an autoencoder's\n"
        "reconstruction error, and record the figures in the card.json of RUN_DIR."
    )
    parser.epilog = (
        "example (zero-shot at 128 x 128):\n"
        "  pdeinv evaluate runs/helmholtz --data data/helmholtz_128_test.h5 --resolution 128"
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory or shipped name (`pdeinv train ...`)")
    parser.add_argument(
        "--data", metavar="FILE.h5", help="reference fields (default: the training file; autoencoders: required)"
    )
    parser.add_argument("--samples", type=int, default=64, metavar="N", help="samples or fields (default 64)")
    parser.add_argument("--steps", type=int, default=32, help="Heun steps per sample (default 32)")
    parser.add_argument("--resolution", type=int, metavar="S", help="grid size (default: the training size)")
    parser.add_argument(
        "--consistent", action="store_true",
        help="the operator-consistent form (solution = solve of the input; NS: projection)",
    )
    parser.add_argument(
        "--solver-dt", type=float, metavar="DT", help="with --consistent on Navier-Stokes: the solve's time step"
    )


def renamed(argv: list[str]) -> str | None:
    """The new spelling of an old ``--eval-X`` option in ``argv`` (after ``evaluate``), or None."""
    old = next((a.split("=", 1)[0] for a in argv if a.split("=", 1)[0] in RENAMED), None)
    return f"{old} is now --{old.removeprefix('--eval-')} in `pdeinv evaluate`" if old else None


def _evaluate_autoencoder(args: argparse.Namespace) -> dict:
    from pdeinv.latent.quality import evaluate_autoencoder

    if not args.data:
        raise UsageError(f"{args.run_dir} is an autoencoder: pass --data TEST.h5 (held-out fields) to evaluate it")
    return evaluate_autoencoder(args.run_dir, args.data, args.samples)


def _evaluate_prior(args: argparse.Namespace, card: dict) -> dict:
    from pdeinv.priors.quality import evaluate_checkpoint

    if args.solver_dt is not None and not args.consistent:
        raise UsageError("--solver-dt sets the time step of the operator-consistent form's solve; add --consistent")
    data = args.data or card.get("data", {}).get("path")
    stored = file_resolution(data) if data else None
    if args.resolution and stored is not None and args.resolution > stored:
        raise UsageError(
            f"{data} holds {stored} x {stored} fields, coarser than --resolution {args.resolution}; "
            f"pass --data FILE.h5 with fields of at least {args.resolution} x {args.resolution} points"
        )
    return evaluate_checkpoint(
        args.run_dir, data=args.data, n=args.samples, steps=args.steps, resolution=args.resolution,
        consistent=args.consistent, solver_dt=args.solver_dt,
    )


def _card_format(directory) -> str | None:
    """The ``format`` of the card in ``directory``; None if unreadable (loading the prior then says why)."""
    from pdeinv.priors.checkpoint import CARD

    try:
        return json.loads((directory / CARD).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def run(args: argparse.Namespace) -> int:
    """Print the quality figures of ``RUN_DIR`` (also written into its card) as JSON."""
    from pdeinv.latent.checkpoint import AUTOENCODER_FORMAT
    from pdeinv.latent.encoders import ENCODER_FORMAT
    from pdeinv.priors.checkpoint import read_card, resolve

    directory = resolve(args.run_dir)
    kind = _card_format(directory)
    if kind == ENCODER_FORMAT:
        raise UsageError(f"{directory} holds a REPA encoder; `pdeinv evaluate` measures priors and autoencoders")
    if kind == AUTOENCODER_FORMAT:
        figures = _evaluate_autoencoder(args)
    else:
        figures = _evaluate_prior(args, read_card(directory))
    print(json.dumps(figures, indent=2))
    return 0
