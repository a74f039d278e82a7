"""The ``pdeinv`` command line: ``pdeinv data | train | evaluate | solve | bench | demo``.

Each sub-command lives in the layer it belongs to, as a module exposing
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when called, so
``pdeinv --help`` stays fast. A module may also expose ``renamed(argv) -> str | None``, which
names the current spelling of a retired one in the command's arguments ``argv``; that is then
a usage error, never a silent alias.

Errors end as one line on stderr, ``pdeinv COMMAND: error: WHAT WAS WRONG; WHAT TO DO``, with
exit code 2 for a usage error (a bad option, an output that exists, :class:`~pdeinv.errors.UsageError`)
and 1 for a failed run (:class:`~pdeinv.errors.PdeinvError`, a missing or damaged file, a NaN);
``pdeinv --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from pdeinv.errors import PdeinvError

USAGE, FAILURE, INTERRUPTED = 2, 1, 130
# Commands whose operator inputs and outputs are checked for NaN / inf.
FINITE_CHECKED = ("train", "evaluate", "solve", "bench", "demo")
EXPECTED = (ValueError, OSError, RuntimeError)

COMMANDS = {
    "data": ("pdeinv.datasets.commands", "generate, inspect and validate HDF5 field data"),
    "train": ("pdeinv.priors.commands", "train a diffusion prior, an autoencoder or a PDE surrogate on an HDF5 file"),
    "evaluate": ("pdeinv.priors.evaluate_command", "measure a trained prior's or autoencoder's quality into its card"),
    "solve": ("pdeinv.sampling.commands", "reconstruct fields from your own measurement file"),
    "bench": ("pdeinv.bench.commands", "run a benchmark task with a method, or tabulate runs"),
    "demo": ("pdeinv.bench.demo", "a two-minute Helmholtz reconstruction with the shipped prior"),
}


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (what was wrong, where the help is), exit code 2."""

    def error(self, message: str):
        self.exit(USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The top-level parser; only the sub-command named in ``argv`` is imported.

    Exits with a usage error if the command's ``renamed`` finds a retired spelling in ``argv``.
    """
    parser = OneLineParser(prog="pdeinv", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    position, name = next(((i, a) for i, a in enumerate(argv) if not a.startswith("-")), (len(argv), None))
    for command_name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(command_name, help=help_text, description=help_text)
        if command_name == name:
            mod = importlib.import_module(module)
            mod.add_arguments(command)
            command.set_defaults(run=mod.run)
            message = getattr(mod, "renamed", lambda _: None)(argv[position + 1:])
            if message:
                command.error(message)
    return parser


def innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the sub-command ``args`` selected (``pdeinv train prior``'s), which names it in errors."""
    while True:
        choice = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if choice is None or getattr(args, choice.dest, None) is None:
            return parser
        parser = choice.choices[getattr(args, choice.dest)]


def _quiet_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (set before torch is imported).

    On a small machine whose cores are shared with other jobs, spinning worker threads slowed
    one 128 x 128 denoiser evaluation from 0.33 s to 22.5 s; a user's own setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _finite_checks(command: str):
    """Check operator inputs and outputs for NaN / inf while a command that runs operators works."""
    if command not in FINITE_CHECKED:
        return contextlib.nullcontext()
    return importlib.import_module("pdeinv.operators.base").check_finite(True)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def exit_code(error: BaseException) -> int:
    """2 for usage errors, 1 for failed runs (see the module docstring)."""
    return getattr(error, "exit_code", FAILURE) if isinstance(error, PdeinvError) else FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run ``pdeinv`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_threads()
    try:
        parser = build_parser(argv)
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else USAGE
    action = getattr(args, f"{args.command}_command", None)  # e.g. "generate" of `pdeinv data generate`
    prog = " ".join(["pdeinv", args.command] + ([action] if action else []))
    try:
        with _finite_checks(args.command):
            return int(args.run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        expected = isinstance(error, (PdeinvError, *EXPECTED))
        prefix = "error" if expected else f"internal error ({type(error).__name__})"
        hint = "" if expected else "; rerun with 'pdeinv --debug ...' for the traceback and report it"
        print(f"{prog}: {prefix}: {one_line(error)}{hint}", file=sys.stderr)
        return exit_code(error)


if __name__ == "__main__":
    sys.exit(main())
