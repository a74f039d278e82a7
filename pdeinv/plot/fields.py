"""Field figures: grids of fields, reconstruction panels, posterior samples.

Inputs are torch tensors, numpy arrays or xarray DataArrays following the pdeinv grid
convention: ``field[..., i, j]`` is the value at ``(x_i, y_j)``. Panels show ``x`` along the
horizontal axis and ``y`` upwards over the physical ``extent``; each image pixel is the cell of
one grid value (for the vertex grid ``x_i = i/(S-1)`` and the periodic grid ``x_i = i/S`` alike,
the unit square is split into ``S`` cells per axis). Signed fields use a diverging colormap
centred at 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from pdeinv.metrics import relative_l2
from pdeinv.plot._arrays import as_field, as_fields, quantity_name, to_numpy, unit_text
from pdeinv.plot._panels import ImagePanel, Panel, Scale, ScatterPanel, check_extent, panel_figure

UNIT_SQUARE = (0.0, 1.0, 0.0, 1.0)
WRAP = 4


def _entries(fields) -> list[tuple[str, np.ndarray, object]]:
    """``(name, (B, C, S, S) array, original input)`` for a field, a list or a dict of fields."""
    if isinstance(fields, Mapping):
        items = list(fields.items())
    elif isinstance(fields, (list, tuple)):
        items = [("", item) for item in fields]
    else:
        items = [("", fields)]
    if not items:
        raise ValueError("fields is empty; pass at least one field")
    entries = [(str(name), as_fields(item, f"fields[{name!r}]" if name else "fields"), item) for name, item in items]
    channels = {array.shape[1] for _, array, _ in entries}
    if len(channels) > 1:
        raise ValueError(f"all fields must have the same number of channels, got {sorted(channels)}")
    return entries


def _default_title(name: str, batch: int, b: int, sample: int, n_samples: int) -> str:
    """``name`` (``name [b]`` within a batch), or the running sample index when unnamed."""
    if name:
        return name if batch == 1 else f"{name} [{b}]"
    return f"[{sample}]" if n_samples > 1 else ""


def _channel_units(units, channels: int) -> list[str | None]:
    if units is None or isinstance(units, str):
        return [units] * channels
    if len(units) != channels:
        raise ValueError(f"units must be one string or one per channel ({channels}), got {list(units)}")
    return list(units)


def _wrap(panels: list[Panel], ncols: int) -> list[list[Panel]]:
    return [panels[start : start + ncols] for start in range(0, len(panels), ncols)]


def field_grid(
    fields,
    titles: Sequence[str] | None = None,
    share_scale: bool = True,
    cmap: str | None = None,
    extent: tuple[float, float, float, float] = UNIT_SQUARE,
    units: str | Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Show fields side by side with colour bars.

    Parameters
    ----------
    fields : tensor, ndarray, DataArray, or a list or dict of them
        Each is ``(S, S)``, ``(C, S, S)`` or ``(B, C, S, S)`` with ``field[..., i, j]`` at
        ``(x_i, y_j)``; DataArrays are read by dimension name: ``(x, y)``, ``(sample, x, y)``,
        ``(sample, time, x, y)`` (batch ``sample``, channels ``time``; x and y in either order). All have the
        same ``C``; resolutions may differ. Dict keys become titles.
    titles : sequence of str, optional
        One title per panel, in order (entry, batch, channel); defaults to the dict keys or indices.
    share_scale : bool
        True: all panels of one channel share one colour scale and one colour bar.
        False: one scale and colour bar per panel.
    cmap : str, optional
        Colormap; by default ``RdBu_r`` centred at 0 for signed values (vorticity), ``viridis``
        otherwise.
    extent : (x_min, x_max, y_min, y_max)
        Physical extent of the grid, the unit square by default.
    units : str or sequence of str, optional
        Units of the values (one per channel, or one for all), shown on the colour bars; by
        default a DataArray's ``units`` attribute, else "(a.u.)".
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per batch entry with one column per channel when ``C > 1``; panels wrapped four
        to a row when ``C = 1``.
    """
    entries = _entries(fields)
    extent = check_extent(extent)
    channels = entries[0][1].shape[1]
    unit_list = _channel_units(units, channels)
    n_samples = sum(array.shape[0] for _, array, _ in entries)
    if titles is not None and len(titles) != n_samples * channels:
        raise ValueError(f"titles must give one title per panel ({n_samples * channels}), got {len(titles)}")
    panels: list[Panel] = []
    scales: dict[str, Scale] = {}
    for name, array, original in entries:
        for b in range(array.shape[0]):
            sample_title = _default_title(name, array.shape[0], b, len(panels) // channels, n_samples)
            for c in range(channels):
                index = len(panels)
                key = f"channel {c}" if share_scale else f"panel {index}"
                suffix = f" (channel {c})" if channels > 1 else ""
                label = f"{quantity_name(original)}{suffix} {unit_text(original, unit_list[c])}"
                scales.setdefault(key, Scale(label, cmap=cmap))
                text = titles[index] if titles is not None else (sample_title + suffix).strip()
                panels.append(ImagePanel(array[b, c], key, text))
    rows = _wrap(panels, channels if channels > 1 else min(len(panels), WRAP))
    return panel_figure(rows, scales, extent, title)


def plot_coordinates(points, resolution: int, extent: tuple[float, float, float, float]) -> np.ndarray:
    """Plot coordinates ``(M, 2)`` of sensor points, column 0 along x and column 1 along y.

    Parameters
    ----------
    points : tensor or array-like, (M, 2)
        Integer grid indices ``(i, j)`` of ``(x_i, y_j)``, mapped to the centre of their pixel;
        or float coordinates in ``[0, 1]^2``, mapped linearly onto ``extent``.
    resolution : int
        Grid size ``S`` the indices refer to.
    extent : (x_min, x_max, y_min, y_max)
        Physical extent of the panel.

    Returns
    -------
    numpy.ndarray
        float64 ``(M, 2)`` positions in plot coordinates.

    Raises
    ------
    ValueError
        If ``points`` is not ``(M, 2)`` or indices fall outside the grid.
    """
    raw = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if raw.ndim != 2 or raw.shape[1] != 2 or raw.shape[0] == 0:
        raise ValueError(f"points must have shape (M, 2) with M >= 1, got {raw.shape}")
    if np.issubdtype(raw.dtype, np.integer):
        if raw.min() < 0 or raw.max() >= resolution:
            raise ValueError(f"point indices must lie in [0, {resolution - 1}], got {raw.min()} to {raw.max()}")
        unit = (raw + 0.5) / resolution
    else:
        unit = raw.astype(np.float64)
    low, high = np.array(extent[::2]), np.array(extent[1::2])
    return low + unit * (high - low)


def _measurement_panel(measurement, points, resolution: int, extent) -> Panel:
    if points is None:
        return ImagePanel(as_field(measurement, "measurement"), "measurement", "measurement")
    if measurement is None:
        raise ValueError("points needs the measured values: pass measurement= with one value per point")
    xy = plot_coordinates(points, resolution, extent)
    values = to_numpy(measurement, "measurement").ravel()
    if values.shape[0] != xy.shape[0]:
        raise ValueError(f"measurement has {values.shape[0]} values for {xy.shape[0]} points")
    return ScatterPanel(xy, values, "measurement", f"{len(values)} measured points")


def reconstruction_panels(
    truth,
    reconstruction,
    measurement=None,
    std=None,
    points=None,
    title: str | None = None,
    extent: tuple[float, float, float, float] = UNIT_SQUARE,
    units: str | None = None,
) -> Figure:
    """Measurement, truth, reconstruction, absolute error and posterior std in one row.

    Truth and reconstruction share one colour scale; absolute error and std share another,
    starting at 0; the measurement has its own (it often observes another field, e.g. the
    source when the solution is recovered). The reconstruction's title gives the relative L2
    error ``||reconstruction - truth|| / ||truth||`` in percent.

    Parameters
    ----------
    truth, reconstruction : tensor, ndarray or DataArray
        One single-channel field each, ``(S, S)``, ``(1, S, S)`` or ``(1, 1, S, S)``,
        ``field[i, j]`` at ``(x_i, y_j)``.
    measurement : tensor, ndarray or DataArray, optional
        With ``points``: the ``M`` measured values (any shape with ``M`` elements, e.g. the
        ``(1, 1, M)`` output of ``PointObservation``), drawn as coloured markers. Without
        ``points``: a measured field ``(S', S')`` (blurred, masked, low resolution) drawn as an image.
    std : tensor, ndarray or DataArray, optional
        Per-pixel posterior standard deviation, shaped like ``truth``.
    points : tensor or array-like, (M, 2), optional
        Sensor locations: integer indices ``(i, j)`` on the grid of ``truth`` or float
        coordinates in ``[0, 1]^2``.
    title : str, optional
        Figure title.
    extent : (x_min, x_max, y_min, y_max)
        Physical extent of the grid, the unit square by default.
    units : str, optional
        Units of the recovered field (and of its error and std); by default a DataArray's
        ``units`` attribute, else "(a.u.)".

    Returns
    -------
    matplotlib.figure.Figure
        One row of up to five panels with one colour bar per scale.

    Raises
    ------
    ValueError
        If shapes disagree, ``points`` come without values, or ``truth`` is zero everywhere.
    """
    extent = check_extent(extent)
    true_field = as_field(truth, "truth")
    estimate = as_field(reconstruction, "reconstruction")
    if estimate.shape != true_field.shape:
        raise ValueError(f"reconstruction has shape {estimate.shape}, truth {true_field.shape}")
    error = float(relative_l2(estimate[None], true_field[None])[0])
    row: list[Panel] = []
    if measurement is not None or points is not None:
        row.append(_measurement_panel(measurement, points, true_field.shape[0], extent))
    row += [
        ImagePanel(true_field, "field", "truth"),
        ImagePanel(estimate, "field", f"reconstruction\nrel. L2 error {100 * error:.2f} %"),
        ImagePanel(np.abs(estimate - true_field), "error", "absolute error"),
    ]
    if std is not None:
        spread = as_field(std, "std")
        if spread.shape != true_field.shape:
            raise ValueError(f"std has shape {spread.shape}, truth {true_field.shape}")
        row.append(ImagePanel(spread, "error", "posterior std"))
    units_text = unit_text(truth, units)
    scales = {
        "measurement": Scale(f"{quantity_name(measurement, 'measured value')} {unit_text(measurement)}"),
        "field": Scale(f"{quantity_name(truth)} {units_text}"),
        "error": Scale(f"|error|{', std' if std is not None else ''} {units_text}", nonnegative=True),
    }
    return panel_figure([row], scales, extent, title)


def _samples(samples) -> np.ndarray:
    array = to_numpy(samples, "samples")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[-1] != array.shape[-2] or array.shape[0] < 2:
        raise ValueError(f"samples must have shape (N, S, S) or (N, C, S, S) with N >= 2, got {array.shape}")
    return array


def _sample_row(array: np.ndarray, truth: np.ndarray | None, c: int, max_samples: int, suffix: str) -> list[Panel]:
    n = array.shape[0]
    mean = array[:, c].mean(axis=0)
    row: list[Panel] = []
    mean_title = f"mean of {n}{suffix}"
    if truth is not None:
        row.append(ImagePanel(truth[c], f"field {c}", f"truth{suffix}"))
        mean_title += f"\nrel. L2 error {100 * float(relative_l2(mean[None], truth[c][None])[0]):.2f} %"
    row += [ImagePanel(array[k, c], f"field {c}", f"sample {k}{suffix}") for k in range(min(n, max_samples))]
    row.append(ImagePanel(mean, f"field {c}", mean_title))
    row.append(ImagePanel(array[:, c].std(axis=0, ddof=1), f"std {c}", f"std of {n}{suffix}"))
    return row


def sample_grid(
    samples,
    truth=None,
    max_samples: int = 4,
    extent: tuple[float, float, float, float] = UNIT_SQUARE,
    units: str | None = None,
    title: str | None = None,
) -> Figure:
    """Posterior samples with their mean and standard deviation (and the truth, if known).

    Samples, mean and truth share one colour scale per channel; the std (unbiased, ``ddof=1``
    over the ``N`` samples) has its own, starting at 0.

    Parameters
    ----------
    samples : tensor, ndarray or DataArray
        ``(N, S, S)`` or ``(N, C, S, S)`` posterior samples, ``N >= 2``, ``sample[n, c, i, j]``
        at ``(x_i, y_j)``; a DataArray ``(sample, time, x, y)`` or ``(sample, x, y)``.
    truth : tensor, ndarray or DataArray, optional
        ``(S, S)``, ``(C, S, S)`` or ``(1, C, S, S)``; adds a truth panel and the mean's
        relative L2 error (in percent) to its title.
    max_samples : int
        Number of individual samples shown (the mean and std use all ``N``).
    extent : (x_min, x_max, y_min, y_max)
        Physical extent of the grid, the unit square by default.
    units : str, optional
        Units of the field; by default a DataArray's ``units`` attribute, else "(a.u.)".
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One row per channel: [truth,] samples, mean, std, with two colour bars per row.
    """
    extent = check_extent(extent)
    array = _samples(samples)
    channels = array.shape[1]
    reference = None
    if truth is not None:
        reference = as_fields(truth, "truth")
        if reference.shape != (1,) + array.shape[1:]:
            raise ValueError(f"truth must match one sample {array.shape[1:]}, got {reference.shape}")
        reference = reference[0]
    units_text = unit_text(samples, units)
    rows, scales = [], {}
    for c in range(channels):
        suffix = f", channel {c}" if channels > 1 else ""
        rows.append(_sample_row(array, reference, c, max_samples, suffix))
        scales[f"field {c}"] = Scale(f"{quantity_name(samples)}{suffix} {units_text}")
        scales[f"std {c}"] = Scale(f"posterior std{suffix} {units_text}", nonnegative=True)
    return panel_figure(rows, scales, extent, title)
