"""``pdeinv train prior | autoencoder | surrogate``: train a network on an HDF5 field file.

- ``prior``: a diffusion prior (EDM denoiser), on fields or, with ``--autoencoder DIR``, on the
  latents of a trained autoencoder; ``--repa-encoder`` adds REPA's alignment loss.
- ``autoencoder``: the field autoencoder of latent space.
- ``surrogate``: the neural-operator surrogate of the PDE whose features are REPA's physics encoder.

All three write ``model.safetensors``, ``card.json``, the resumable training state and
``log.csv`` into ``--out``. An ``--out`` that holds a run is refused unless ``--resume`` (continue
it bit for bit, with the run's settings and data) or ``--overwrite`` is given. A non-finite loss
stops the run with exit code 1, keeping the last checkpoint. For DDP run
``torchrun --nproc_per_node N -m pdeinv.cli train prior ...``.

On a shared CPU machine run it with ``OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=4294967296
MALLOC_TRIM_THRESHOLD_=68719476736`` in the environment: spinning OpenMP threads and page faults
on re-allocated activations otherwise cost several times the computation itself.

This module imports no deep-learning stack until a run starts, so ``--help`` is instant; the
option choices below are those of :mod:`pdeinv.priors.training` and :mod:`pdeinv.priors.edm`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import time
from pathlib import Path

from pdeinv.errors import UsageError

DEFAULT_RESOLUTION = 64
BACKBONES = ("fno", "unet")
LR_SCHEDULES = ("constant", "cosine")
GAUSSIAN_BASES = ("none", "auto", "fft", "dst", "dct")
RESIDUALS = ("edm", "posterior")


class CommandHelp(argparse.RawDescriptionHelpFormatter):
    """Help with the option texts in one column (room for ``--backbone-option KEY=VALUE``), epilog kept as written."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=32)


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. width=32), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_files(parser: argparse.ArgumentParser, network: str) -> None:
    """``--data``, ``--out`` and ``--backbone-option`` (``network`` names the configuration it sets)."""
    parser.add_argument("--data", required=True, metavar="FILE.h5", help="training fields (`pdeinv data generate`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory (weights, card, state, log)")
    parser.add_argument(
        "--backbone-option", action="append", type=_option, default=[], metavar="KEY=VALUE",
        help=f"set a field of {network} (repeatable)",
    )


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options of the training loop, shared by every ``pdeinv train`` network."""
    parser.add_argument("--channels", nargs="+", metavar="NAME", help="fields used as channels (default: all)")
    parser.add_argument(
        "--resolution", type=int, metavar="S", help=f"training grid size (default {DEFAULT_RESOLUTION})"
    )
    parser.add_argument("--steps", type=int, default=10000, help="optimiser steps (default 10000)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="B", help="global batch size (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate after warm-up (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, metavar="WD", help="AdamW weight decay (default 0)")
    parser.add_argument("--warmup", type=int, default=200, metavar="STEPS", help="linear warm-up steps (default 200)")
    parser.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default="constant", metavar="NAME",
        help="after warm-up: constant (default) or cosine",
    )
    parser.add_argument(
        "--lr-floor", type=float, default=0.02, metavar="F", help="final lr / --lr of cosine (default 0.02)"
    )
    parser.add_argument(
        "--ema-halflife", type=float, default=500.0, metavar="STEPS", help="EMA half-life (default 500)"
    )
    parser.add_argument(
        "--grad-clip", type=float, default=1.0, metavar="NORM", help="max gradient norm, 0 = off (default 1)"
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=500, metavar="STEPS", help="checkpoint period (default 500)"
    )
    parser.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="log.csv period (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and noise (default 0)")
    parser.add_argument(
        "--augment-symmetries", action="store_true", help="transform samples by the PDE's symmetry group"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run in --out (same settings)")
    parser.add_argument(
        "--init-from", default="", metavar="PRIOR",
        help="start from this prior's weights (dir or name; same model)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_prior(sub) -> None:
    parser = sub.add_parser(
        "prior", help="a diffusion prior, on fields or on an autoencoder's latents", formatter_class=CommandHelp,
        usage="pdeinv train prior --data FILE.h5 --out DIR [options]", allow_abbrev=False,
        description="Train a diffusion prior (EDM denoiser) on fields, or on the latents of an autoencoder.",
        epilog="example: pdeinv train prior --data data/helmholtz-64-train.h5 --out runs/helmholtz --steps 3000",
    )
    _add_files(parser, "the backbone's config, e.g. width=32")
    parser.add_argument("--backbone", choices=BACKBONES, default="fno", help="denoiser network (default fno)")
    parser.add_argument("--autoencoder", metavar="DIR", help="train on this autoencoder's latents (dir or name)")
    parser.add_argument(
        "--repa-encoder", metavar="ENC", help="align features with a frozen encoder (dir, name or 'autoencoder')"
    )
    parser.add_argument(
        "--repa-weight", type=float, default=0.5, metavar="W", help="REPA alignment weight (default 0.5)"
    )
    parser.add_argument("--repa-layer", metavar="NAME", help="layer aligned by REPA (default: the backbone's)")
    parser.add_argument("--sigma-data", type=float, metavar="SIGMA", help="EDM sigma_data (default 1)")
    parser.add_argument(
        "--gaussian-base", choices=GAUSSIAN_BASES, default="none", metavar="BASIS",
        help="learn the residual of a Wiener denoiser: none, auto, fft, dst, dct",
    )
    parser.add_argument(
        "--residual", choices=RESIDUALS, default="edm", metavar="SCALE",
        help="network output scale: edm (c_out) or posterior (needs a base)",
    )
    parser.add_argument(
        "--operator-consistent", action="store_true", help="linear PDEs: solution channel = solve of the input"
    )
    _add_training_options(parser)


def _add_network(sub, name: str, summary: str, description: str, config: str, example: str) -> None:
    parser = sub.add_parser(
        name, help=summary, description=description, epilog=f"example:\n  {example}", formatter_class=CommandHelp,
        usage=f"pdeinv train {name} --data FILE.h5 --out DIR [options]", allow_abbrev=False,
    )
    _add_files(parser, config)
    _add_training_options(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``pdeinv train prior | autoencoder | surrogate`` on ``parser``."""
    parser.formatter_class = CommandHelp
    parser.epilog = "example:\n  pdeinv train prior --data data/helmholtz-64-train.h5 --out runs/helmholtz"
    sub = parser.add_subparsers(dest="train_command", metavar="{prior,autoencoder,surrogate}", required=True)
    _add_prior(sub)
    _add_network(
        sub, "autoencoder", "the field autoencoder of latent priors",
        "Train the field autoencoder whose latents `pdeinv train prior --autoencoder DIR` learns.",
        "AutoencoderConfig, e.g. latent_channels=4",
        "pdeinv train autoencoder --data data/ns-64-train.h5 --out runs/ns-autoencoder --steps 3000",
    )
    _add_network(
        sub, "surrogate", "the PDE surrogate whose features are REPA's physics encoder",
        "Train the neural-operator surrogate of the PDE (input field to solution) whose features are the\n"
        "physics encoder of `pdeinv train prior --repa-encoder DIR`.",
        "PhysicsEncoderConfig, e.g. width=24",
        "pdeinv train surrogate --data data/helmholtz-64-train.h5 --out runs/helmholtz-encoder --steps 800",
    )


def renamed(argv: list[str]) -> str | None:
    """The new spelling of an old ``pdeinv train`` command line (``argv`` after ``train``), or None."""
    flags = [a.split("=", 1)[0] for a in argv]
    if "--evaluate" in flags:
        return "`pdeinv train --evaluate DIR` is now `pdeinv evaluate DIR` (and each --eval-X option is now --X)"
    if "--model" in flags:
        index = flags.index("--model")
        value = argv[index].partition("=")[2] or (argv[index + 1] if index + 1 < len(argv) else "")
        new = {"denoiser": "prior", "autoencoder": "autoencoder", "surrogate": "surrogate"}.get(value)
        return f"`pdeinv train --model {value}` is now `pdeinv train {new or '{prior,autoencoder,surrogate}'}`"
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        return (
            "name what to train first: `pdeinv train prior " + shlex.join(argv) + "` "
            "(or `pdeinv train autoencoder ...`, `pdeinv train surrogate ...`)"
        )
    return None


def file_resolution(path: str) -> int | None:
    """Grid points per side of the fields in the HDF5 file ``path``; None if it cannot be read (the loader says why)."""
    import h5py

    from pdeinv.datasets.schema import resolution_of

    try:
        with h5py.File(path, "r") as f:
            return resolution_of(f)
    except (OSError, KeyError, ValueError):
        return None


def _training_resolution(args: argparse.Namespace) -> int:
    """``--resolution`` (default 64), refused with the fix if the file's fields are coarser."""
    resolution = args.resolution or DEFAULT_RESOLUTION
    stored = file_resolution(args.data)
    if stored is not None and resolution > stored:
        given = f"--resolution {resolution}" + ("" if args.resolution else " (the default)")
        raise UsageError(
            f"{args.data} holds {stored} x {stored} fields, coarser than {given}; "
            f"pass --resolution {stored} (or a smaller size) to train on this file"
        )
    return resolution


def _train(args: argparse.Namespace) -> int:
    from pdeinv.priors.data import load_training_data
    from pdeinv.priors.edm import EDMConfig
    from pdeinv.priors.training import TrainConfig, train

    resolution = _training_resolution(args)
    prior = args.train_command == "prior"
    config = TrainConfig(
        out=args.out,
        backbone=args.backbone if prior else "fno",
        backbone_options=dict(args.backbone_option),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        lr_schedule=args.lr_schedule,
        lr_floor=args.lr_floor,
        ema_halflife=args.ema_halflife,
        grad_clip=args.grad_clip,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        augment_symmetries=args.augment_symmetries,
        edm=EDMConfig() if not prior or args.sigma_data is None else EDMConfig(sigma_data=args.sigma_data),
        gaussian_base=args.gaussian_base if prior else "none",
        residual=args.residual if prior else "edm",
        operator_consistent=prior and args.operator_consistent,
        init_from=args.init_from,
        device=args.device,
        data=args.data,
        command=shlex.join(["pdeinv", *sys.argv[1:]]),
        progress=not args.no_progress,
    )
    data = load_training_data(args.data, channels=args.channels, resolution=resolution)
    trainer_class, data = _trainer_and_data(args, data)
    first_step = _resumed_step(args.out) if args.resume else 0
    start = time.perf_counter()
    train(config, data, resume=args.resume, trainer_class=trainer_class, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(_summary(Path(args.out), config.steps - first_step, time.perf_counter() - start))
    return 0


def _resumed_step(out: str) -> int:
    """The step of the training state in ``out`` (0 when there is none: ``train`` then reports why)."""
    from pdeinv.priors.training_state import STATE

    path = Path(out) / STATE
    try:
        return int(json.loads(path.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _summary(out: Path, steps: int, seconds: float) -> str:
    """The lines ``pdeinv train`` ends with: where the checkpoint is, the final loss, the speed."""
    from pdeinv.priors.training_state import STATE

    with open(out / "log.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    rate = f"{steps / seconds:.2f} steps/s" if steps and seconds > 0 else "no steps left to train"
    total = f"total training time {float(last['wall_s']):.1f} s"
    return "\n".join([
        f"trained {out}: step {last['step']}, final loss {float(last['loss']):.4g} (mean over the last log period)",
        f"  {steps} step(s) in {seconds:.1f} s this session ({rate}); {total}",
        f"  checkpoint: {out / 'model.safetensors'} + {out / 'card.json'}",
        f"  resume state: {out / STATE}; log: {out / 'log.csv'}",
    ])


def _trainer_and_data(args: argparse.Namespace, data):
    """The trainer class of ``pdeinv train NETWORK`` and the data it trains on (latents for a latent prior)."""
    from pdeinv.priors.training import Trainer

    if args.train_command != "prior":
        from pdeinv.latent.training import AutoencoderTrainer, SurrogateTrainer

        return (AutoencoderTrainer if args.train_command == "autoencoder" else SurrogateTrainer), data
    fields, trainer, autoencoder = data.fields, Trainer, None
    if args.autoencoder:
        from pdeinv.latent.checkpoint import load_autoencoder
        from pdeinv.latent.training import latent_trainer, latent_training_data

        autoencoder = load_autoencoder(args.autoencoder)
        trainer = latent_trainer(autoencoder, args.autoencoder)
        data = latent_training_data(data, autoencoder, args.autoencoder)
    if args.repa_encoder:
        trainer = _repa(args, trainer, autoencoder, fields)
    return trainer, data


def _repa(args: argparse.Namespace, trainer, autoencoder, fields):
    """``trainer`` with REPA's alignment loss against the encoder ``--repa-encoder`` names."""
    from pdeinv.latent.encoders import AutoencoderFeatures, load_encoder
    from pdeinv.latent.training import repa_trainer

    if args.repa_encoder == "autoencoder":
        if autoencoder is None:
            raise UsageError("--repa-encoder autoencoder needs --autoencoder DIR")
        encoder = AutoencoderFeatures(autoencoder)
    else:
        encoder = load_encoder(args.repa_encoder)
    return repa_trainer(trainer, encoder, args.repa_encoder, fields, args.repa_weight, args.repa_layer)


def run(args: argparse.Namespace) -> int:
    """Train the network ``pdeinv train NETWORK`` names (``--resume`` continues a run)."""
    return _train(args)
