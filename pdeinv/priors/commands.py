"""``pdeinv train``: train a diffusion prior on an HDF5 field file, or evaluate a trained one.

Examples
--------
Train (single process; ``torchrun --nproc_per_node N -m pdeinv.cli train ...`` for DDP)::

    pdeinv train --data helmholtz_64.h5 --backbone fno --steps 12000 --out priors/helmholtz

Resume a killed run bit for bit (with the run's settings and data; anything else is refused)::

    pdeinv train --data helmholtz_64.h5 --backbone fno --steps 12000 --out priors/helmholtz --resume

An ``--out`` that holds a run is refused unless ``--resume`` or ``--overwrite`` is given. A
non-finite loss stops the run with exit code 1, keeping the last checkpoint.

On a shared CPU machine run it with ``OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=4294967296
MALLOC_TRIM_THRESHOLD_=68719476736`` in the environment: spinning OpenMP threads and page faults
on re-allocated activations otherwise cost several times the computation itself.

Latent space: train the autoencoder, then a prior on its latents::

    pdeinv train --data ns_64.h5 --model autoencoder --steps 3000 --out runs/ns-autoencoder
    pdeinv train --data ns_64.h5 --autoencoder runs/ns-autoencoder --backbone unet --out runs/ns-latent

Write quality figures (physics consistency, spectrum ratio) into the card, here zero-shot at 128::

    pdeinv train --evaluate priors/helmholtz --eval-resolution 128
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
from pdeinv.priors.edm import RESIDUALS, EDMConfig
from pdeinv.priors.spectral_gaussian import BASE_CHOICES
from pdeinv.priors.training import LR_SCHEDULES


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. width=32), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``pdeinv train`` options."""
    parser.add_argument("--data", help="HDF5 field file written by `pdeinv data`")
    parser.add_argument(
        "--out", help="output directory: model.safetensors, card.json, training_state.json (+ .safetensors), log.csv"
    )
    parser.add_argument("--backbone", choices=("fno", "unet"), default="fno", help="denoiser backbone (default fno)")
    parser.add_argument(
        "--backbone-option", action="append", type=_option, default=[], metavar="KEY=VALUE",
        help="override a backbone setting, e.g. width=32, n_modes=16 (repeatable)",
    )
    parser.add_argument(
        "--model", choices=("denoiser", "autoencoder", "surrogate"), default="denoiser",
        help="what to train: a diffusion prior (default), the field autoencoder of latent space or the "
        "neural-operator surrogate whose features are REPA's physics encoder (--backbone-option then sets "
        "AutoencoderConfig / PhysicsEncoderConfig fields, e.g. block_out_channels=[16,32,32])",
    )
    parser.add_argument(
        "--repa-encoder", metavar="ENCODER",
        help="align the denoiser's features with a frozen encoder (REPA): a directory written by "
        "`--model surrogate` or holding a local DINOv2-style ViT, or 'autoencoder' (the --autoencoder's encoder)",
    )
    parser.add_argument("--repa-weight", type=float, default=0.5, help="REPA alignment weight (default 0.5)")
    parser.add_argument("--repa-layer", help="backbone layer whose features are aligned (default blocks.1 / net.mid_block)")
    parser.add_argument(
        "--autoencoder", metavar="DIR",
        help="train the prior on the latents of this trained autoencoder (directory or shipped name)",
    )
    parser.add_argument("--channels", nargs="+", help="field names used as channels (default: the file's pair)")
    parser.add_argument("--resolution", type=int, default=64, help="training grid size (default 64)")
    parser.add_argument("--steps", type=int, default=10000, help="optimiser steps (default 10000)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch size (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate after warm-up (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    parser.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps (default 200)")
    parser.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default="constant",
        help="learning rate after warm-up: constant (default) or cosine decay to --lr-floor x lr at the last step",
    )
    parser.add_argument(
        "--lr-floor", type=float, default=0.02, help="final fraction of --lr of the cosine schedule (default 0.02)"
    )
    parser.add_argument("--ema-halflife", type=float, default=500.0, help="EMA half-life in steps (default 500)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint period in steps (default 500)")
    parser.add_argument("--log-every", type=int, default=50, help="CSV log period in steps (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and noise")
    parser.add_argument("--sigma-data", type=float, default=EDMConfig.sigma_data, help="EDM sigma_data (default 1)")
    parser.add_argument(
        "--augment-symmetries", action="store_true",
        help="transform samples by the operator's symmetry group (D4 for Helmholtz/Poisson, the NS group for NS)",
    )
    parser.add_argument(
        "--gaussian-base", choices=BASE_CHOICES, default="none",
        help="learn only the residual of the Wiener denoiser fitted to the data (default none)",
    )
    parser.add_argument(
        "--residual", choices=RESIDUALS, default="edm",
        help="scale of the network's output: EDM's c_out (default) or the Gaussian base's per-mode posterior std",
    )
    parser.add_argument(
        "--operator-consistent", action="store_true",
        help="linear PDEs: train with the solution channel set to the solve of the input channel, as sampled",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--resume", action="store_true", help="continue a killed run from --out (same settings and data)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--evaluate", metavar="DIR", help="measure quality figures of a trained prior into its card")
    parser.add_argument("--eval-samples", type=int, default=64, help="unconditional samples for --evaluate")
    parser.add_argument("--eval-steps", type=int, default=32, help="Heun steps per sample for --evaluate")
    parser.add_argument("--eval-resolution", type=int, help="grid size for --evaluate (default: training size)")
    parser.add_argument(
        "--eval-consistent", action="store_true",
        help="--evaluate the operator-consistent form: the solution channel is the solve of the input "
        "channel (as pdeinv bench uses a linear PDE's prior; for Navier-Stokes the projection onto the solutions)",
    )
    parser.add_argument(
        "--eval-solver-dt", type=float,
        help="with --eval-consistent on Navier-Stokes: time step of the projection's solve (default: the data's)",
    )


def _train(args: argparse.Namespace) -> int:
    from pdeinv.priors.data import load_training_data
    from pdeinv.priors.training import TrainConfig, train

    if not args.data or not args.out:
        raise UsageError("pdeinv train: --data FILE and --out DIR are required")
    config = TrainConfig(
        out=args.out,
        backbone=args.backbone,
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
        edm=EDMConfig(sigma_data=args.sigma_data),
        gaussian_base=args.gaussian_base,
        residual=args.residual,
        operator_consistent=args.operator_consistent,
        device=args.device,
        data=args.data,
        command=shlex.join(["pdeinv", *sys.argv[1:]]),
        progress=not args.no_progress,
    )
    data = load_training_data(args.data, channels=args.channels, resolution=args.resolution)
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
    return "\n".join([
        f"trained {out}: step {last['step']}, final loss {float(last['loss']):.4g} (mean over the last log period)",
        f"  {steps} step(s) in {seconds:.1f} s this session ({rate}); "
        f"total training time {float(last['wall_s']):.1f} s",
        f"  checkpoint: {out / 'model.safetensors'} + {out / 'card.json'}",
        f"  resume state: {out / STATE}; log: {out / 'log.csv'}",
    ])


def _trainer_and_data(args: argparse.Namespace, data):
    """The trainer class for ``--model``/``--autoencoder`` and the data it trains on (latents for a latent prior)."""
    from pdeinv.priors.training import Trainer

    if args.model != "denoiser":
        if args.autoencoder or args.repa_encoder:
            raise UsageError(f"pdeinv train: --autoencoder and --repa-encoder train priors, not --model {args.model}")
        from pdeinv.latent.training import AutoencoderTrainer, SurrogateTrainer

        return (AutoencoderTrainer if args.model == "autoencoder" else SurrogateTrainer), data
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
            raise UsageError("pdeinv train: --repa-encoder autoencoder needs --autoencoder DIR")
        encoder = AutoencoderFeatures(autoencoder)
    else:
        encoder = load_encoder(args.repa_encoder)
    return repa_trainer(trainer, encoder, args.repa_encoder, fields, args.repa_weight, args.repa_layer)


def _evaluate(args: argparse.Namespace) -> int:
    from pdeinv.priors.checkpoint import resolve
    from pdeinv.priors.quality import evaluate_checkpoint

    if json.loads((resolve(args.evaluate) / "card.json").read_text()).get("format") == "pdeinv-autoencoder":
        from pdeinv.latent.quality import evaluate_autoencoder

        if not args.data:
            raise UsageError("pdeinv train --evaluate AUTOENCODER needs --data TEST.h5 (held-out fields)")
        print(json.dumps(evaluate_autoencoder(args.evaluate, args.data, args.eval_samples), indent=2))
        return 0

    figures = evaluate_checkpoint(
        args.evaluate, data=args.data, n=args.eval_samples, steps=args.eval_steps, resolution=args.eval_resolution,
        consistent=args.eval_consistent, solver_dt=args.eval_solver_dt,
    )
    print(json.dumps(figures, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    """Train a prior (``--resume`` continues one), or with ``--evaluate DIR`` write its quality figures."""
    return _evaluate(args) if args.evaluate else _train(args)
