"""How close a briefly trained network denoiser gets to the exact denoiser of Gaussian data.

Usage::

    python benchmarks/bench_gaussian_gap.py [--resolution 32] [--steps 1500] [--n-train 4096]
        [--sigmas 0.05 0.2 1 5] [--out DIR]

The data are exact samples of the periodic vorticity GRF (:func:`pdeinv.datasets.ns_vorticity_grf`,
normalised), whose exact denoiser :math:`D^*(x, \\sigma) = E[x_0 \\mid x]` is the closed-form Wiener
filter of :class:`pdeinv.priors.gaussian.GaussianPrior`. A plain EDM network (fno, no Gaussian base,
so it must learn the filter itself) and one with the fitted Gaussian base (``--gaussian-base fft``)
are trained with :func:`pdeinv.priors.training.train` for ``--steps`` steps. On held-out fields
``x = x_0 + \\sigma n`` the script prints, per noise level, a markdown table of

- the excess error :math:`E\\lVert D - x_0\\rVert^2 / E\\lVert D^* - x_0\\rVert^2 - 1` (0 for the
  Bayes-optimal denoiser; this is the "gap");
- the distance to the exact denoiser :math:`\\lVert D - D^*\\rVert / \\lVert D^* - x_0\\rVert`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pdeinv.datasets import ns_vorticity_grf
from pdeinv.priors.data import TrainingData
from pdeinv.priors.gaussian import GaussianPrior
from pdeinv.priors.training import TrainConfig, train


def gaussian_data(exact: GaussianPrior, n: int, seed: int) -> TrainingData:
    """``n`` exact normalised samples of ``exact`` as training data."""
    fields = exact.sample(n, torch.Generator().manual_seed(seed))
    return TrainingData(
        fields=fields,
        channels=tuple(exact.channels),
        mean=[0.0],
        std=[1.0],
        provenance={"grid": "periodic", "attrs": {"pde": "grf", "seed": seed}},
    )


def gap(model, exact: GaussianPrior, clean: torch.Tensor, sigma: float, seed: int) -> tuple[float, float]:
    """``(excess error, distance to the exact denoiser)`` of ``model`` at noise level ``sigma``."""
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        best = exact.denoise(noisy.double(), sigma).float()
        estimate = model.denoise(noisy, sigma)
    bayes = (best - clean).pow(2).sum()
    excess = float((estimate - clean).pow(2).sum() / bayes - 1)
    distance = float((estimate - best).norm() / bayes.sqrt())
    return excess, distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.2, 1.0, 5.0])
    parser.add_argument("--out", default=None, help="training directory (default: a temporary one)")
    args = parser.parse_args()

    exact = GaussianPrior(ns_vorticity_grf(args.resolution), "w")
    data = gaussian_data(exact, args.n_train, seed=0)
    clean = exact.sample(args.n_test, torch.Generator().manual_seed(1))
    out = Path(args.out or tempfile.mkdtemp(prefix="gaussian-gap-"))
    rows = []
    for base in ("none", "fft"):
        config = TrainConfig(
            out=str(out / base),
            backbone_options={"width": 16, "n_modes": 8},
            steps=args.steps,
            checkpoint_every=args.steps,
            gaussian_base=base,
            progress=False,
        )
        start = time.perf_counter()
        model = train(config, data).eval()
        seconds = time.perf_counter() - start
        for sigma in args.sigmas:
            excess, distance = gap(model, exact, clean, sigma, seed=2)
            row = (base, args.steps, f"{seconds:.0f}", f"{sigma:g}", f"{100 * excess:.2f} %", f"{distance:.3f}")
            rows.append("| " + " | ".join(map(str, row)) + " |")
    print(f"GRF {args.resolution} x {args.resolution}, {args.n_train} training fields, {args.n_test} test fields")
    print("| Gaussian base | steps | train s | sigma | excess error | distance to exact |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
