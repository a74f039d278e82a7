"""Benchmark tasks (operator + sensor + test set + metric), runs and result tables.

Public names::

    Task, TASKS, get_task, relative_l2                                   tasks
    BenchConfig, run_benchmark, results_table, read_records, write_json,
    run_label                                                            runner
"""

from pdeinv.bench.runner import BenchConfig, read_records, results_table, run_benchmark, run_label, write_json
from pdeinv.bench.tasks import TASKS, Task, get_task, relative_l2

__all__ = [
    "BenchConfig",
    "TASKS",
    "Task",
    "get_task",
    "read_records",
    "relative_l2",
    "results_table",
    "run_benchmark",
    "run_label",
    "write_json",
]
