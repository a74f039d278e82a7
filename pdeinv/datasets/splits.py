"""Fixed data splits: one seed per split, so train, validation and test samples never coincide.

Sample ``i`` of split ``s`` is drawn from ``sample_generator(SPLIT_SEEDS[s], i)``; different seeds
give independent streams. The benchmark test sets (``pdeinv data benchmark-sets --out DIR``) are
64 samples at 128 x 128 (or the ``--resolution`` given, e.g. 64 for the ``-64`` tasks) with the
``test`` seed, for Helmholtz, Poisson, Darcy and Navier-Stokes; they equal::

    pdeinv data generate helmholtz --resolution 128 --n 64 --seed 2 --out DIR/helmholtz_128_test.h5
    pdeinv data generate poisson --resolution 128 --n 64 --seed 2 --out DIR/poisson_128_test.h5
    pdeinv data generate darcy --resolution 128 --n 64 --seed 2 --out DIR/darcy_128_test.h5
    pdeinv data generate navier-stokes --resolution 128 --n 64 --seed 2 --out DIR/navier-stokes_128_test.h5
"""

from __future__ import annotations

from pdeinv.datasets.config import GenerationConfig, make_config

SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}
BENCHMARK_PDES = ("helmholtz", "poisson", "darcy", "navier-stokes")


def benchmark_set_configs(resolution: int = 128, n: int = 64) -> dict[str, GenerationConfig]:
    """``{"<pde>_<S>_test": config}`` of the benchmark test sets (test seed, default settings)."""
    return {
        f"{pde}_{resolution}_test": make_config(pde, resolution, n, SPLIT_SEEDS["test"]) for pde in BENCHMARK_PDES
    }
