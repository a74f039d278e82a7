"""Throughput of the data layer: pair generation and FieldDataset loading.

Usage::

    python benchmarks/bench_data.py [--helmholtz-n 512] [--ns-n 16] [--ns-time 0.01]
        [--loader-n 2048] [--device cpu] [--workdir DIR]

Prints a markdown table:

- ``generate helmholtz 128``: pairs/s of the whole ``pdeinv data generate`` path (GRF, float64
  DST solve, shards, HDF5 assembly with statistics); target >= 200 pairs/s.
- ``generate navier-stokes S`` (S = 64, 128): pairs/s of the same path for ``--ns-time`` (the
  steps per pair cost the same at every time), and the extrapolation to the benchmark's
  ``T = 1`` (``10^4`` steps of ``dt = 1e-4``): ``pairs/s at T=1 = pairs/s * ns_time / 1``.
  Start-up costs (file assembly) make the extrapolation slightly pessimistic.
- ``FieldDataset 64``: samples/s of ``dataset[i]`` over a Helmholtz 64 file (one process), of a
  ``DataLoader`` with batch 64, and of ``load_all``; target >= 2,000 samples/s.

Each rate is given twice: per second of wall time and per second of this process' CPU time.
Generation and item loading run on one thread, so on a machine shared with other jobs the CPU
rate is the one to compare with the targets (it is the wall rate of an idle core).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from pdeinv.datasets.field_dataset import FieldDataset
from pdeinv.datasets.generate import generate, make_config


@dataclass(frozen=True)
class BenchConfig:
    """Sample counts, the simulated time of the Navier-Stokes runs, the device and a scratch folder."""

    helmholtz_n: int = 512
    ns_n: int = 16
    ns_time: float = 0.01
    loader_n: int = 2048
    device: str = "cpu"
    workdir: Path | None = None


def rates(count: int, action) -> tuple[float, float]:
    """``count`` divided by the wall time and by the process CPU time of ``action()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def timed_generation(config, out: Path, device: str) -> tuple[float, float]:
    """Pairs per second (wall, CPU) of ``generate(config, out)``."""
    return rates(config.n, lambda: generate(config, out, batch_size=64, device=device, progress=False))


def loader_rates(path: Path) -> dict[str, tuple[float, float]]:
    """Samples per second (wall, CPU) of item access, a batch-64 DataLoader and ``load_all`` on ``path``."""
    dataset = FieldDataset(path)

    def items():
        for i in range(len(dataset)):
            dataset[i]

    def batches():
        for _ in DataLoader(dataset, batch_size=64, shuffle=True, num_workers=0):
            pass

    return {
        "dataset[i]": rates(len(dataset), items),
        "DataLoader(batch 64, shuffle)": rates(len(dataset), batches),
        "load_all": rates(len(dataset), dataset.load_all),
    }


def run(cfg: BenchConfig) -> list[tuple[str, str]]:
    """Measure everything; rows of ``(what, result)``."""
    rows = []
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        tmp = Path(tmp)
        wall, cpu = timed_generation(make_config("helmholtz", 128, cfg.helmholtz_n, 0), tmp / "h128.h5", cfg.device)
        rows.append((f"generate helmholtz 128 (n={cfg.helmholtz_n})", f"{wall:.1f} / {cpu:.1f} pairs/s"))
        for s in (64, 128):
            config = make_config("navier-stokes", s, cfg.ns_n, 0, time=cfg.ns_time)
            wall, cpu = timed_generation(config, tmp / f"ns{s}.h5", cfg.device)
            what = f"generate navier-stokes {s} (n={cfg.ns_n}, T={cfg.ns_time})"
            rows.append((what, f"{wall:.2f} / {cpu:.2f} pairs/s"))
            rows.append(
                (
                    f"  extrapolated to T=1 ({round(1 / 1e-4)} steps)",
                    f"{wall * cfg.ns_time:.4f} / {cpu * cfg.ns_time:.4f} pairs/s "
                    f"({1 / (wall * cfg.ns_time):.1f} / {1 / (cpu * cfg.ns_time):.1f} s/pair)",
                )
            )
        loader_config = make_config("helmholtz", 64, cfg.loader_n, 0)
        loader_file = generate(loader_config, tmp / "h64.h5", batch_size=256, progress=False)
        for name, (wall, cpu) in loader_rates(loader_file).items():
            rows.append((f"FieldDataset 64, 2 channels: {name}", f"{wall:.0f} / {cpu:.0f} samples/s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = BenchConfig()
    parser.add_argument("--helmholtz-n", type=int, default=defaults.helmholtz_n)
    parser.add_argument("--ns-n", type=int, default=defaults.ns_n)
    parser.add_argument("--ns-time", type=float, default=defaults.ns_time)
    parser.add_argument("--loader-n", type=int, default=defaults.loader_n)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: the system temp dir)")
    args = parser.parse_args()
    cfg = BenchConfig(args.helmholtz_n, args.ns_n, args.ns_time, args.loader_n, args.device, args.workdir)
    print("| measurement | wall / CPU-time rate |\n|---|---|")
    for what, result in run(cfg):
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
