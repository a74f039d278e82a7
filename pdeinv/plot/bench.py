"""Benchmark figures from result tables of ``pdeinv bench`` JSON records.

A table is a list of the dicts that ``pdeinv bench --out FILE.json`` writes (keys ``task``,
``method``, ``rel_l2_mean``, ``rel_l2_std``, ``nfe``, ``seconds_per_sample``, ...) or a pandas
DataFrame of them. Relative L2 errors are stored as fractions and shown in percent, with error
bars of one standard deviation over the test samples. A method's colour is that of its base
name (``dps`` and ``dps+equireg`` share one); a ``+term`` suffix changes the hatch of its bars
and the line style of its curves, so "with and without EquiReg" read as pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

ERROR_LABEL = "relative L2 error (%)\nmean ± std over test samples"
X_LABELS = {"nfe": "network evaluations (NFE)", "steps": "sampler steps", "seconds_per_sample": "seconds per sample"}
SUFFIX_STYLES = (("--", "//"), (":", ".."), ("-.", "xx"))
PANELS_PER_ROW = 3


def _records(table, keys: Sequence[str]) -> list[dict]:
    """The table as a list of dicts, each checked to have ``keys``."""
    records = table.to_dict(orient="records") if hasattr(table, "to_dict") else [dict(row) for row in table]
    if not records:
        raise ValueError("the result table is empty")
    for index, record in enumerate(records):
        missing = [key for key in keys if key not in record]
        if missing:
            raise ValueError(f"result {index} ({record.get('task')}, {record.get('method')}) lacks keys {missing}")
    return records


def _unique(values: Iterable) -> list:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def _index(records: list[dict], keys: Sequence[str]) -> dict[tuple, dict]:
    """Records by the values of ``keys``; a repeated combination is an error."""
    index: dict[tuple, dict] = {}
    for record in records:
        key = tuple(record[k] for k in keys)
        if key in index:
            raise ValueError(f"several results for {dict(zip(keys, key))}; filter the table to one per combination")
        index[key] = record
    return index


def styles(labels: Sequence[str]) -> dict[str, dict]:
    """Colour, line style and hatch per label: colour by base name, style by ``+suffix``.

    Parameters
    ----------
    labels : sequence of str
        Method names such as ``"dps"``, ``"dps+equireg"``, ``"fundps+repa"``.

    Returns
    -------
    dict
        ``label -> {"color", "linestyle", "hatch"}``; labels without a suffix are solid with hatch ``None``.
    """
    bases = _unique(label.split("+", 1)[0] for label in labels)
    suffixes = _unique(label.split("+", 1)[1] for label in labels if "+" in label)
    palette = colormaps["tab10"]
    result = {}
    for label in labels:
        base, _, suffix = label.partition("+")
        linestyle, hatch = SUFFIX_STYLES[suffixes.index(suffix) % len(SUFFIX_STYLES)] if suffix else ("-", None)
        result[label] = {"color": palette(bases.index(base) % palette.N), "linestyle": linestyle, "hatch": hatch}
    return result


def bench_bars(table, title: str | None = None) -> Figure:
    """Relative L2 error by task (groups) and method (bars), with one-std error bars.

    Parameters
    ----------
    table : list of dict or pandas.DataFrame
        Bench records with keys ``task``, ``method``, ``rel_l2_mean``, ``rel_l2_std`` (fractions),
        one record per (task, method).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Bars in percent; tasks and methods in order of first appearance; a method without a
        result on a task leaves a gap.

    Raises
    ------
    ValueError
        If a key is missing or a (task, method) pair appears twice.
    """
    records = _records(table, ("task", "method", "rel_l2_mean", "rel_l2_std"))
    index = _index(records, ("task", "method"))
    tasks = _unique(r["task"] for r in records)
    methods = _unique(r["method"] for r in records)
    look = styles(methods)
    width = 0.8 / len(methods)
    fig = Figure(figsize=(2.0 + len(tasks) * (0.3 * len(methods) + 0.4), 4.0), layout="constrained")
    ax = fig.subplots()
    for slot, method in enumerate(methods):
        present = [(i, index[task, method]) for i, task in enumerate(tasks) if (task, method) in index]
        positions = np.array([i for i, _ in present]) + (slot - (len(methods) - 1) / 2) * width
        means = [100 * r["rel_l2_mean"] for _, r in present]
        stds = [100 * r["rel_l2_std"] for _, r in present]
        style = look[method]
        ax.bar(positions, means, width, yerr=stds, capsize=3, label=method, color=style["color"],
               hatch=style["hatch"], edgecolor="black", linewidth=0.5)
    crowded = len(tasks) > 3
    ax.set_xticks(range(len(tasks)), tasks, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_xlabel("task")
    ax.set_ylabel(ERROR_LABEL)
    fig.legend(title="method", loc="outside right upper")
    if title:
        ax.set_title(title)
    return fig


def _curve(records: Iterable[dict], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x values, mean and std in percent of ``records``, sorted by x."""
    ordered = sorted(records, key=lambda r: r[x])
    return (
        np.array([r[x] for r in ordered], dtype=float),
        np.array([100 * r["rel_l2_mean"] for r in ordered]),
        np.array([100 * r["rel_l2_std"] for r in ordered]),
    )


def error_vs_steps(
    table, hue: str = "method", x: str = "nfe", panel: str = "task", title: str | None = None
) -> Figure:
    """Relative L2 error against the sampling budget, one curve per ``hue`` value, one panel per ``panel``.

    Parameters
    ----------
    table : list of dict or pandas.DataFrame
        Bench records with keys ``rel_l2_mean``, ``rel_l2_std`` (fractions), ``x``, ``hue`` and
        ``panel``; one record per (panel, hue, x).
    hue : str
        Key whose values get one curve each, e.g. ``"method"`` (``dps`` vs ``dps+equireg``).
    x : str
        Key on the logarithmic horizontal axis: ``"nfe"`` (network evaluations), ``"steps"`` or
        any numeric key.
    panel : str
        Key whose values get one panel each (``"task"``).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Panels of error (percent, one-std error bars) against ``x`` on a log axis, one legend.

    Raises
    ------
    ValueError
        If a key is missing, ``hue`` equals ``panel``, or a (panel, hue, x) combination repeats.
    """
    if hue == panel:
        raise ValueError(f"hue and panel must be different keys, got {hue!r} for both")
    records = _records(table, ("rel_l2_mean", "rel_l2_std", x, hue, panel))
    _index(records, (panel, hue, x))
    groups = _unique(r[panel] for r in records)
    look = styles([str(v) for v in _unique(r[hue] for r in records)])
    ncols = min(len(groups), PANELS_PER_ROW)
    nrows = math.ceil(len(groups) / ncols)
    fig = Figure(figsize=(1.8 + 3.6 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, group in zip(axes, groups):
        members = [r for r in records if r[panel] == group]
        for value in _unique(r[hue] for r in members):
            xs, means, stds = _curve((r for r in members if r[hue] == value), x)
            style = look[str(value)]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=str(value), color=style["color"],
                        linestyle=style["linestyle"])
        ax.set_xscale("log")
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.set_ylabel(ERROR_LABEL)
        ax.set_title(str(group))
    for ax in axes[len(groups):]:
        ax.remove()
    handles = {h.get_label(): h for ax in axes[: len(groups)] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles.keys()), title=hue, loc="outside right upper")
    if title:
        fig.suptitle(title)
    return fig
