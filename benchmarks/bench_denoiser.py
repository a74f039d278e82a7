"""Cost of the prior backbones: one denoiser evaluation and one training step.

Usage::

    python benchmarks/bench_denoiser.py [--repeats 5] [--batch 16] [--resolution 128]
        [--train-resolution 64] [--backbone fno unet] [--fno-option width=48 ...] [--device cpu]

Prints a markdown table with, per backbone: parameters, the median time of one
``EDMDenoiser.denoise`` call on a ``(batch, 2, resolution, resolution)`` field under
``torch.no_grad`` (target <= 0.5 s for fno at 128 x 128, batch 16, on 2 cores), and the median
time of one training step (EDM loss, backward, AdamW) at ``train-resolution``, batch ``batch``.
Each time is given as wall seconds and as this process' CPU seconds divided by the torch thread
count. On a machine shared with other jobs, run it as::

    OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 \
        python benchmarks/bench_denoiser.py

otherwise busy-waiting OpenMP threads and page faults on the large activations (glibc returns
blocks above its 32 MB mmap threshold to the kernel at every free) dominate: measured here, one fno
evaluation at 128 x 128 took 22 s with the defaults and 0.33 s with these settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import torch

from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.edm import EDMConfig, EDMDenoiser, edm_loss


@dataclass(frozen=True)
class Timing:
    """Median wall seconds and median CPU seconds per thread of repeated calls."""

    wall: float
    cpu_per_thread: float


def measure(fn, repeats: int) -> Timing:
    """Time ``fn()`` ``repeats`` times after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append((time.process_time() - c) / torch.get_num_threads())
    return Timing(statistics.median(walls), statistics.median(cpus))


def denoise_timing(model: EDMDenoiser, batch: int, resolution: int, repeats: int, device: str) -> Timing:
    """Median time of ``model.denoise`` on a ``(batch, C, S, S)`` field."""
    x = torch.randn(batch, len(model.channels), resolution, resolution, device=device)
    sigma = torch.full((batch,), 0.5, device=device)

    @torch.no_grad()
    def call():
        model.denoise(x, sigma)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return measure(call, repeats)


def train_step_timing(model: EDMDenoiser, batch: int, resolution: int, repeats: int, device: str) -> Timing:
    """Median time of one EDM training step (loss, backward, AdamW step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(batch, len(model.channels), resolution, resolution, device=device)
    generator = torch.Generator().manual_seed(0)

    def step():
        sigma = (torch.randn(batch, generator=generator) * 1.2 - 1.2).exp().to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        loss = edm_loss(model, x0, sigma, noise, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return measure(step, repeats)


def parse_option(text: str) -> tuple[str, object]:
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--train-resolution", type=int, default=64)
    parser.add_argument("--backbone", nargs="+", default=["fno", "unet"], choices=["fno", "unet"])
    parser.add_argument("--fno-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE")
    parser.add_argument("--unet-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    options = {"fno": dict(args.fno_option), "unet": dict(args.unet_option)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch}\n")
    print(f"| backbone | options | params | denoise {args.resolution}^2 wall / cpu-per-thread (s) "
          f"| train step {args.train_resolution}^2 wall / cpu-per-thread (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.backbone:
        torch.manual_seed(0)
        model = EDMDenoiser(build_backbone(name, **options[name]), EDMConfig(), channels=("input", "solution"))
        model.to(args.device)
        params = sum(p.numel() for p in model.parameters())
        model.eval()
        denoise = denoise_timing(model, args.batch, args.resolution, args.repeats, args.device)
        model.train()
        train = train_step_timing(model, args.batch, args.train_resolution, args.repeats, args.device)
        print(f"| {name} | {options[name] or 'default'} | {params / 1e6:.2f} M | {denoise.wall:.3f} / "
              f"{denoise.cpu_per_thread:.3f} | {train.wall:.3f} / {train.cpu_per_thread:.3f} |")


if __name__ == "__main__":
    main()
