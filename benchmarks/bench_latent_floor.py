"""How small can a latent be? The reconstruction floor of the best linear code of a Gaussian field.

An autoencoder that maps a field to ``d`` latent numbers cannot, among linear codes, beat the
projection onto the covariance's top ``d`` eigenvectors (PCA). For a Gaussian random field with
eigenvalues :math:`\\lambda_1 \\ge \\lambda_2 \\ge \\dots` that floor is, as a root mean squared
relative error,

.. math:: e(d) = \\Big(\\sum_{i > d} \\lambda_i \\big/ \\sum_i \\lambda_i\\Big)^{1/2},

computed here from the exact eigenvalues of the data layer's GRFs (the Navier-Stokes initial
vorticity, and the Helmholtz source before its boundary ring is zeroed). A latent that also
carries a second channel (the solution) spends part of its ``d`` numbers on it, so the floor of
the first channel in a joint code is higher than ``e(d)``. With ``--data FILE`` the script also
measures held-out PCA of the joint normalised pair (fitted on the first 80 % of the file's samples,
scored on the rest, so it also carries the finite-sample error), and the held-out floor of the
local block code that ``FieldAutoencoder(linear_code=True)`` starts from: PCA of the ``r x r``
blocks of the pair (``C r^2`` numbers each) keeping ``L`` directions per block.

Usage::

    python benchmarks/bench_latent_floor.py --data data/ns-64-train.h5 --out results/latent/latent_floor.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pdeinv.datasets.grf import helmholtz_source_grf, ns_vorticity_grf
from pdeinv.priors.data import load_training_data

LATENTS = ((16, 4), (16, 8), (32, 4))
BLOCK_CODES = ((4, 4), (4, 8), (2, 4))  # (factor r, latent channels L)


def grf_floor(field, sizes: list[int]) -> list[float]:
    """``e(d)`` of the module docstring for each ``d`` in ``sizes``, from a GRF's exact eigenvalues."""
    lam = np.sort(field.eigenvalues().numpy().ravel())[::-1]
    tail = 1.0 - np.cumsum(lam) / lam.sum()
    return [float(np.sqrt(max(tail[d - 1], 0.0))) for d in sizes]


def heldout_pca(fields: np.ndarray, sizes: list[int]) -> list[tuple[float, float] | None]:
    """Mean relative L2 of (input, output) under held-out PCA of the joint normalised pair, per ``d``.

    ``None`` where ``d`` is not below the number of fitting samples (the fitted basis has fewer vectors).
    """
    joint = fields.reshape(len(fields), -1)
    split = int(0.8 * len(joint))
    train, test = joint[:split], joint[split:]
    mean = train.mean(0)
    basis = np.linalg.svd(train - mean, full_matrices=False)[2]
    half = joint.shape[1] // 2
    rows = []
    for d in sizes:
        if d >= len(basis):
            rows.append(None)
            continue
        code = basis[:d]
        recon = (test - mean) @ code.T @ code + mean
        errors = [
            float((np.linalg.norm(recon[:, s] - test[:, s], axis=1) / np.linalg.norm(test[:, s], axis=1)).mean())
            for s in (slice(0, half), slice(half, None))
        ]
        rows.append((errors[0], errors[1]))
    return rows


def heldout_block_pca(fields: np.ndarray, factor: int, channels: int) -> tuple[float, float]:
    """Mean relative L2 of (input, output) under held-out PCA of the pair's ``factor x factor`` blocks."""
    n, c, s, _ = fields.shape
    k = s // factor
    blocks = fields.reshape(n, c, k, factor, k, factor).transpose(0, 2, 4, 1, 3, 5).reshape(n, k * k, -1)
    split = int(0.8 * n)
    train = blocks[:split].reshape(-1, blocks.shape[-1])
    top = np.linalg.eigh(train.T @ train / len(train))[1][:, -channels:]
    test = blocks[split:]
    recon = (test @ top @ top.T).reshape(n - split, k, k, c, factor, factor).transpose(0, 3, 1, 4, 2, 5)
    truth = fields[split:]
    error = np.linalg.norm((recon.reshape(truth.shape) - truth).reshape(n - split, c, -1), axis=-1)
    relative = error / np.linalg.norm(truth.reshape(n - split, c, -1), axis=-1)
    return float(relative[:, 0].mean()), float(relative[:, 1].mean())


def _pca_cell(errors: tuple[float, float] | None) -> str:
    if errors is None:
        return " - (d above the fitting samples) |"
    return f" {100 * errors[0]:.2f} % / {100 * errors[1]:.2f} % |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--data", help="joint HDF5 file for held-out PCA (optional)")
    parser.add_argument("--out", help="markdown file to write (optional)")
    args = parser.parse_args()
    sizes = [side * side * channels for side, channels in LATENTS]
    ns = grf_floor(ns_vorticity_grf(args.resolution), sizes)
    helmholtz = grf_floor(helmholtz_source_grf(args.resolution), sizes)
    lines = [
        f"| latent ({args.resolution} x {args.resolution} x 2 fields) | d | NS w(0) alone, exact GRF "
        "| Helmholtz source alone, exact GRF (unmasked) |"
        + (" held-out PCA of the joint pair: input / output |" if args.data else ""),
        "| --- | --- | --- | --- |" + (" --- |" if args.data else ""),
    ]
    fields = load_training_data(args.data).fields.double().numpy() if args.data else None
    pca = heldout_pca(fields, sizes) if args.data else [None] * len(sizes)
    for (side, channels), d, e_ns, e_h, p in zip(LATENTS, sizes, ns, helmholtz, pca):
        extra = _pca_cell(p) if args.data else ""
        lines.append(f"| {side} x {side} x {channels} | {d} | {100 * e_ns:.2f} % | {100 * e_h:.2f} % |{extra}")
    if args.data:
        lines += ["", "| local block code (r x r blocks, L per block) | latent | held-out block PCA: input / output |",
                  "| --- | --- | --- |"]
        for factor, channels in BLOCK_CODES:
            side = args.resolution // factor
            errors = heldout_block_pca(fields, factor, channels)
            lines.append(f"| r = {factor}, L = {channels} | {side} x {side} x {channels} |{_pca_cell(errors)}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
