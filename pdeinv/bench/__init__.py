"""Benchmark tasks (operator + sensor + test set + metric), runs and result tables.

Public names::

    Task, TASKS, get_task, relative_l2                                   tasks
    BenchConfig, run_benchmark, results_table, read_records, write_json,
    run_label                                                            runner

The names are imported on first use (module ``__getattr__``), so ``pdeinv bench --help`` and the
other commands do not import the methods and priors until they run.
"""

from __future__ import annotations

from pdeinv.lazy import lazy_exports


_MODULES = {
    "BenchConfig": "runner",
    "TASKS": "tasks",
    "Task": "tasks",
    "get_task": "tasks",
    "read_records": "runner",
    "relative_l2": "tasks",
    "results_table": "runner",
    "run_benchmark": "runner",
    "run_label": "runner",
    "write_json": "runner",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
