"""Throughput of the DST-I Helmholtz solver: solves per second, batched, float32 and float64.

Usage::

    python benchmarks/bench_helmholtz.py [--resolution 128] [--batch 1 16 64] [--repeats 7] [--threads N]

One "solve" is one (S x S) field: ``Helmholtz(S).A`` on a ``(B, 1, S, S)`` batch performs B solves.
Each cell reports B / (median wall time of one batched call) over ``--repeats`` timed calls after
a warm-up call. Prints a markdown table; on a shared CPU the figures vary with the other load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from pdeinv.operators.helmholtz import Helmholtz

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class BenchConfig:
    """What to time: grid size, batch sizes, dtypes, timed calls per cell and the device."""

    resolution: int = 128
    batches: tuple[int, ...] = (1, 16, 64)
    dtypes: tuple[str, ...] = ("float32", "float64")
    repeats: int = 7
    device: str = "cpu"


def solves_per_second(physics: Helmholtz, batch: int, dtype: torch.dtype, config: BenchConfig) -> float:
    """Median throughput of ``physics.A`` on a ``(batch, 1, S, S)`` random source."""
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(batch, 1, config.resolution, config.resolution, generator=generator, dtype=dtype)
    source = source.to(config.device)
    physics.A(source)
    times = []
    for _ in range(config.repeats):
        if config.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        physics.A(source)
        if config.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def markdown_table(config: BenchConfig) -> str:
    """One row per batch size, one column per dtype, cells in solves/s."""
    physics = Helmholtz(config.resolution, k=1.0, device=config.device)
    header = "| batch | " + " | ".join(f"{name} solves/s" for name in config.dtypes) + " |"
    rule = "| --- |" + " --- |" * len(config.dtypes)
    rows = [header, rule]
    for batch in config.batches:
        cells = [f"{solves_per_second(physics, batch, DTYPES[name], config):,.0f}" for name in config.dtypes]
        rows.append(f"| {batch} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parse_config(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return BenchConfig(args.resolution, tuple(args.batch), tuple(args.dtype), args.repeats, args.device)


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    print(
        f"Helmholtz {config.resolution}x{config.resolution}, k=1, device={config.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print()
    print(markdown_table(config))


if __name__ == "__main__":
    main()
