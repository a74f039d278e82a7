r"""The sampler benchmark with the exact prior: every field-space diffusion and particle method against the Bayes limit.

On a linear PDE whose input is a Gaussian random field (Helmholtz, Poisson), the test data are
drawn from a known Gaussian, so with that prior (``pdeinv bench --prior exact``) the posterior of
the target field given the measurements is Gaussian, :math:`N(\mu, \Sigma)`, and kriging computes
:math:`\mu` and :math:`\operatorname{diag}\Sigma` exactly. What is left of a method's error is its
sampler's.

Per test field :math:`i` (truth :math:`x_i`, measurements :math:`y_i`) a method returns
:math:`K` samples :math:`s_{ik}` with mean :math:`m_i` and unbiased pointwise variance
:math:`v_i = \frac{1}{K-1} \sum_k (s_{ik} - m_i)^2`. On the scale of the relative L2 error write

.. math::
    e_i = \frac{\|m_i - x_i\|}{\|x_i\|}, \qquad
    d_i = \frac{\|\sqrt{v_i}\|}{\|x_i\|}, \qquad
    \kappa_i = \frac{\|\mu_i - x_i\|}{\|x_i\|},

(the records' ``rel_l2``, ``rel_std`` and kriging's ``rel_l2``) and average squares over the
:math:`n` fields, :math:`\overline{e^2} = \frac1n \sum_i e_i^2`. The table reports

- the single-sample error
  :math:`\epsilon_1 = \big(\overline{e^2} + \tfrac{K-1}{K}\,\overline{d^2}\big)^{1/2}`, the root mean
  square over all :math:`nK` samples of :math:`\|s_{ik} - x_i\| / \|x_i\|` (an identity:
  :math:`\sum_k \|s_{ik} - x\|^2 = K\|m_i - x\|^2 + \sum_k \|s_{ik} - m_i\|^2`), as a ratio to the
  single-sample Bayes limit :math:`\sqrt 2\,(\overline{\kappa^2})^{1/2}`;
- the error of the mean of the :math:`K` samples, :math:`(\overline{e^2})^{1/2}`, as a ratio to
  kriging's :math:`(\overline{\kappa^2})^{1/2}`;
- the calibration :math:`c = \big((1 + \tfrac1K)\,\overline{d^2} / \overline{e^2}\big)^{1/2}`: the
  spread the samples report against the error of their mean.

For an exact sampler, :math:`x_i` and the :math:`s_{ik}` are independent draws of the same
:math:`N(\mu_i, \Sigma)` given :math:`y_i` (the data are prior draws), so
:math:`E\|s_{ik} - x_i\|^2 = 2\operatorname{tr}\Sigma`, :math:`E\|m_i - x_i\|^2 = (1 + \tfrac1K)\operatorname{tr}\Sigma`,
:math:`E\|\sqrt{v_i}\|^2 = \operatorname{tr}\Sigma` and :math:`E\|\mu_i - x_i\|^2 = \operatorname{tr}\Sigma`:
the expected squares behind the three figures are in the ratios 1, :math:`\sqrt{1 + 1/K}` (1.118 for
:math:`K = 4`) and 1. Ratios of mean squares over :math:`n` fields scatter around these values by
a few per cent (each field's squared error sums thousands of correlated pixels); a value well above
them is the sampler's error, a calibration below 1 an over-confident sampler (samples too alike),
above 1 an under-confident one. Kriging's own calibration uses its exact std (:math:`K = \infty`).

Every run is a ``pdeinv bench`` record under ``results/bayes-limit/``; the table of
``docs/bayes-limit.md`` is generated from them by ``python -m pdeinv.bench.tables``. One command
runs them all and rewrites the table::

    python -m pdeinv.bench.bayes_limit [--tasks T ...] [--methods M ...] [--n 8] [--steps 50] [--samples 4]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from pdeinv.arguments import positive_int
from pdeinv.errors import UsageError

TASKS = ("helmholtz-forward-64", "helmholtz-inverse-64")
DIRECTORY = "bayes-limit"
N, STEPS, SAMPLES = 8, 50, 4


def field_space_methods() -> list[str]:
    """The registered guided and particle methods of :mod:`pdeinv.sampling` (latent methods have no exact prior)."""
    from pdeinv.sampling.methods import GUIDED, METHODS, PARTICLES

    return [name for name in [*GUIDED, *PARTICLES] if METHODS[name].run.__module__.startswith("pdeinv.sampling")]


def record_name(task: str, method: str, steps: int | None = None, samples: int | None = None) -> str:
    """``<task>-<method>-<steps>-k<samples>.json``, or ``<task>-kriging.json``."""
    return f"{task}-{method}.json" if steps is None else f"{task}-{method}-{steps}-k{samples}.json"


def _mean_square(values: list[float]) -> float:
    return sum(v * v for v in values) / len(values)


def figures(record: dict, kriging: dict) -> dict:
    """The figures of the module docstring for one exact-prior ``record`` and the kriging record of its task.

    Returns
    -------
    dict
        ``single``, ``mean`` (relative errors, RMS over fields), ``single_ratio``, ``mean_ratio``,
        ``calibration``.

    Raises
    ------
    ValueError
        If the kriging record covers fewer test fields or another test file, or ``record`` has no spread.
    """
    n, k = record["n"], record["samples"]
    if kriging["n"] < n or kriging["provenance"]["data_sha256"] != record["provenance"]["data_sha256"]:
        raise ValueError(f"the kriging record of {record['task']} does not cover the {n} test fields of the run")
    if "rel_std" not in record or k < 2:
        raise ValueError(f"the {record['method']} record of {record['task']} has no sample spread (samples < 2)")
    limit = math.sqrt(_mean_square(kriging["rel_l2"][:n]))
    error, spread = _mean_square(record["rel_l2"]), _mean_square(record["rel_std"])
    single = math.sqrt(error + (k - 1) / k * spread)
    return {
        "single": single,
        "mean": math.sqrt(error),
        "single_ratio": single / (math.sqrt(2) * limit),
        "mean_ratio": math.sqrt(error) / limit,
        "calibration": math.sqrt((1 + 1 / k) * spread / error),
    }


def bayes_limit_table(records: list[dict]) -> str:
    """The markdown table of ``docs/bayes-limit.md`` from the records under ``results/bayes-limit/``."""
    krigings = {r["task"]: r for r in records if r["method"] == "kriging"}
    runs = [r for r in records if r["method"] != "kriging" and r["task"] in krigings]
    if not runs:
        return "No current exact-prior record: run `python -m pdeinv.bench.bayes_limit`."
    header = (
        "| task | method | steps | n | K | single-sample error % | ÷ √2 kriging | error of the mean % | ÷ kriging "
        "| calibration | s / sample |\n" + "|---" * 11 + "|"
    )
    rows = []
    for task in sorted({r["task"] for r in runs}):
        kriging = krigings[task]
        n = max(r["n"] for r in runs if r["task"] == task)
        limit = math.sqrt(_mean_square(kriging["rel_l2"][:n]))
        calibration = math.sqrt(_mean_square(kriging["rel_std"][:n]) / _mean_square(kriging["rel_l2"][:n]))
        rows.append(
            f"| {task} | kriging (exact posterior mean) | - | {n} | ∞ | {100 * math.sqrt(2) * limit:.2f} (√2 ×) | 1 "
            f"| {100 * limit:.2f} | 1 | {calibration:.2f} | {kriging['seconds_per_sample']:.3g} |"
        )
        for r in sorted((r for r in runs if r["task"] == task), key=lambda r: (r["method"], r.get("steps") or 0)):
            f = figures(r, kriging)
            rows.append(
                f"| {task} | {r['method']} | {r.get('steps')} | {r['n']} | {r['samples']} | {100 * f['single']:.2f} "
                f"| {f['single_ratio']:.2f} | {100 * f['mean']:.2f} | {f['mean_ratio']:.2f} | {f['calibration']:.2f} "
                f"| {r['seconds_per_sample']:.3g} |"
            )
    return "\n".join([header, *rows])


def run_all(tasks, methods, n: int, steps: int, samples: int, out: Path, overwrite: bool, device: str) -> list[Path]:
    """Run kriging, then each method with the exact prior on every task; a record already in ``out`` is kept."""
    from pdeinv.bench.runner import EXACT_PRIOR, BenchConfig, run_benchmark, write_json

    runs = [(task, "kriging") for task in tasks] + [(task, method) for method in methods for task in tasks]
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for task, method in runs:
        kriging = method == "kriging"
        path = out / (record_name(task, method) if kriging else record_name(task, method, steps, samples))
        if path.exists() and not overwrite:
            print(f"kept {path}")
            continue
        config = BenchConfig(
            task, method, n=n, steps=None if kriging else steps, samples=1 if kriging else samples,
            prior=None if kriging else EXACT_PRIOR, batch_size=n, device=device,
        )
        start = time.perf_counter()
        record = run_benchmark(config)
        written.append(write_json(record, path))
        print(f"wrote {path}: rel. L2 of the mean {100 * record['rel_l2_mean']:.2f} %, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pdeinv.bench.bayes_limit", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help=f"tasks (default {' '.join(TASKS)})")
    parser.add_argument("--methods", nargs="+", default=None, help="methods (default: every field-space method)")
    parser.add_argument("--n", type=positive_int, default=N, help=f"test fields per task (default {N})")
    parser.add_argument("--steps", type=positive_int, default=STEPS, help=f"steps of every method (default {STEPS})")
    parser.add_argument("--samples", type=positive_int, default=SAMPLES, help=f"samples K per field (default {SAMPLES})")
    parser.add_argument("--out", type=Path, default=None, help=f"record folder (default results/{DIRECTORY})")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="rerun records that exist")
    parser.add_argument("--no-tables", action="store_true", help="do not regenerate the documentation's tables")
    args = parser.parse_args(argv)
    from pdeinv.bench.tables import ROOT, outdated

    if args.samples < 2:
        raise UsageError("--samples must be at least 2: the calibration needs the spread of the samples")
    methods = args.methods or field_space_methods()
    run_all(args.tasks, methods, args.n, args.steps, args.samples, args.out or ROOT / "results" / DIRECTORY,
            args.overwrite, args.device)
    if not args.no_tables:
        for path in outdated(ROOT, write=True):
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
