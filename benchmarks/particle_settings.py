"""A ``pdeinv bench`` run of a particle method with other engine settings (learning rate, noise schedule).

The registered ``dwgf`` / ``rlsd`` presets use :class:`~pdeinv.sampling.particles.engine.ParticleConfig`'s
defaults; this script swaps the engine settings of one preset for one run and writes the usual
bench record, with the settings under ``"particle_engine"``. Example::

    OMP_NUM_THREADS=1 python benchmarks/particle_settings.py --task ns-inverse --method dwgf \
        --particle-state solved --solver-dt 1e-2 --steps 100 --n 8 --batch-size 8 --lr 0.4 \
        --out results/speed/ns-inverse-dwgf-solved-100-lr0.4-n8.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pdeinv.bench.runner import BenchConfig, run_benchmark, write_json
from pdeinv.bench.timing import patched
from pdeinv.sampling import methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--method", required=True, choices=sorted(methods.PARTICLES))
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--particle-state", default="auto", choices=("auto", "joint", "solved"))
    parser.add_argument("--solver-dt", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate of the particles")
    parser.add_argument("--sigma-max", type=float, default=None)
    parser.add_argument("--sigma-min", type=float, default=None)
    parser.add_argument("--rho", type=float, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    build, config = methods.PARTICLES[args.method]
    changes = {k: v for k, v in (("lr", args.lr), ("sigma_max", args.sigma_max), ("sigma_min", args.sigma_min),
                                 ("rho", args.rho)) if v is not None}
    engine = dataclasses.replace(config.engine, **changes)
    registry = {**methods.PARTICLES, args.method: (build, dataclasses.replace(config, engine=engine))}
    bench = BenchConfig(task=args.task, method=args.method, n=args.n, steps=args.steps, batch_size=args.batch_size,
                        particle_state=args.particle_state, solver_dt=args.solver_dt)
    with patched(methods, "PARTICLES", registry):
        record = run_benchmark(bench)
    record["particle_engine"] = {k: v for k, v in dataclasses.asdict(engine).items() if k != "steps"}
    print(f"{args.task} {args.method} {args.steps} steps {changes}: rel. L2 {100 * record['rel_l2_mean']:.2f} % "
          f"± {100 * record['rel_l2_std']:.2f}, {record['seconds_per_sample']:.1f} s / sample")
    write_json(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
