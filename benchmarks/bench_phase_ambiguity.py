"""Phase retrieval's ambiguities: which of them do the particles of RLSD / DWGF find?

Fourier magnitudes cannot tell a field :math:`x` from :math:`-x`, from its conjugate reflection
:math:`x[S-1-i, S-1-j]` or from both (``FourierPhaseRetrieval.symmetries``, four transforms
:math:`g` with :math:`A(g x) = A(x)`), so the posterior has (at least) four modes. For each
particle the script finds the transform :math:`g` that brings the truth closest to it,
:math:`\\min_g \\|\\hat x - g x\\| / \\|x\\|`, and reports, over the first ``n`` test fields of
``ns-phase-retrieval-64``:

- the error of one particle up to the ambiguities, and of the best particle;
- *ambiguities covered*: how many distinct :math:`g` the particles of one measurement match, among
  those particles whose error up to the ambiguities is below ``--match`` (default 0.5).

Usage::

    python benchmarks/bench_phase_ambiguity.py --n 8 --out results/particles/phase_ambiguity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pdeinv.bench.tasks import get_task, relative_l2
from pdeinv.priors import load
from pdeinv.sampling import MethodOptions
from pdeinv.sampling.particles import DWGFConfig, RLSDConfig, dwgf_solver, rlsd_solver, run_particles

TASK = "ns-phase-retrieval-64"


def errors_up_to_ambiguities(samples: torch.Tensor, truth: torch.Tensor, group) -> tuple[torch.Tensor, torch.Tensor]:
    """Per particle: smallest relative error over the group's transforms of the truth, and its index.

    ``samples`` ``(n, N, 1, S, S)``, ``truth`` ``(n, 1, S, S)``; returns two ``(n, N)`` tensors.
    """
    n, k = samples.shape[:2]
    flat = samples.reshape(n * k, *samples.shape[2:]).double()
    per_g = torch.stack([relative_l2(flat, g(truth.double()).repeat_interleave(k, 0)) for g in group], dim=1)
    best, index = per_g.min(dim=1)
    return best.reshape(n, k), index.reshape(n, k)


def run(method: str, config, n: int, particles: int, match: float) -> dict:
    task = get_task(TASK)
    inputs, outputs, settings = task.load_test_set(None, n)
    problem = task.problem(inputs, outputs, settings)
    build = rlsd_solver if method.startswith("rlsd") else dwgf_solver
    options = MethodOptions(samples=particles, prior=load("ns-joint"), batch_size=n)
    result = run_particles(build, config, problem, options)
    error, which = errors_up_to_ambiguities(result.samples, outputs, problem.sensor.symmetries)
    covered = [len(torch.unique(w[e < match])) for w, e in zip(which, error)]
    return {
        "method": method,
        "n": n,
        "particles": particles,
        "steps": config.engine.steps,
        "rel_l2_single_up_to_ambiguity": error[:, 0].mean().item(),
        "rel_l2_best_particle_up_to_ambiguity": error.min(dim=1).values.mean().item(),
        "ambiguities_covered": sum(covered) / n,
        "match_threshold": match,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--match", type=float, default=0.5)
    parser.add_argument("--out", default="results/particles/phase_ambiguity")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = {  # the calibrated presets
        "rlsd": RLSDConfig.preset("calibrated", steps=args.steps),
        "rlsd-norep": RLSDConfig.preset("calibrated", gamma=0.0, steps=args.steps),
        "dwgf": DWGFConfig.preset("calibrated", steps=args.steps),
    }
    rows = [run(name, config, args.n, args.particles, args.match) for name, config in methods.items()]
    lines = [
        "| method | particles | rel. L2 % one particle, up to ambiguity | best particle | ambiguities covered (of 4) |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['method']} | {r['particles']} | {100 * r['rel_l2_single_up_to_ambiguity']:.1f} | "
        f"{100 * r['rel_l2_best_particle_up_to_ambiguity']:.1f} | {r['ambiguities_covered']:.2f} |"
        for r in rows
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
