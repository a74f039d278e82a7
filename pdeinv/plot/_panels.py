"""A grid of field panels with one colour scale, and one colour bar, per named scale.

Every field figure of :mod:`pdeinv.plot` is a list of rows of panels. Each panel names the
scale it is drawn on; the colour limits of a scale are computed from all of its panels, and
one colour bar per scale is attached to the panels that use it. Fields are drawn as
``field.T`` with ``origin="lower"``, so ``x`` runs along the horizontal axis and ``y`` upwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

Extent = tuple[float, float, float, float]

PANEL_INCHES = 2.4
COLORBAR_INCHES = 0.9
SIGNED_CMAP = "RdBu_r"
UNSIGNED_CMAP = "viridis"
NONNEGATIVE_CMAP = "magma"


@dataclass(frozen=True)
class Scale:
    """How the values of one colour scale are mapped to colours.

    Attributes
    ----------
    label : str
        Colour-bar label: the quantity and its units or normalisation.
    cmap : str, optional
        Colormap name; by default diverging ``RdBu_r`` centred at 0 when the values change
        sign, ``magma`` for ``nonnegative`` scales, ``viridis`` otherwise.
    nonnegative : bool
        The quantity is >= 0 by definition (an error, a standard deviation): limits ``[0, max]``.
    """

    label: str
    cmap: str | None = None
    nonnegative: bool = False

    def resolve(self, values: np.ndarray) -> tuple[Normalize, str]:
        """Colour limits and colormap for ``values`` (NaNs ignored)."""
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        if self.nonnegative:
            low, default = 0.0, NONNEGATIVE_CMAP
        elif low < 0.0 < high:
            high = max(-low, high)
            low, default = -high, SIGNED_CMAP
        else:
            default = UNSIGNED_CMAP
        if high <= low:
            high = low + 1.0
        return Normalize(vmin=low, vmax=high), self.cmap or default


@dataclass(frozen=True)
class ImagePanel:
    """A field ``(S, S)`` drawn as an image; ``field[i, j]`` is the value at ``(x_i, y_j)``."""

    field: np.ndarray
    scale: str
    title: str = ""

    def values(self) -> np.ndarray:
        """The values that set the colour limits."""
        return self.field

    def draw(self, ax: Axes, norm: Normalize, cmap: str, extent: Extent):
        """Draw on ``ax``; return the mappable."""
        return ax.imshow(self.field.T, origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest")


@dataclass(frozen=True)
class ScatterPanel:
    """Point values drawn as coloured markers at plot coordinates ``xy`` ``(M, 2)``, values ``(M,)``."""

    xy: np.ndarray
    point_values: np.ndarray
    scale: str
    title: str = ""

    def values(self) -> np.ndarray:
        """The values that set the colour limits."""
        return self.point_values

    def draw(self, ax: Axes, norm: Normalize, cmap: str, extent: Extent):
        """Draw on ``ax`` over a grey background covering ``extent``; return the mappable."""
        ax.set_facecolor("0.85")
        size = float(np.clip(4000.0 / len(self.point_values), 6.0, 60.0))
        mappable = ax.scatter(
            self.xy[:, 0], self.xy[:, 1], c=self.point_values, cmap=cmap, norm=norm, s=size,
            edgecolors="black", linewidths=0.3,
        )
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        return mappable


Panel = ImagePanel | ScatterPanel


def check_extent(extent) -> Extent:
    """``extent`` as ``(x_min, x_max, y_min, y_max)`` floats with ``x_min < x_max`` and ``y_min < y_max``."""
    values = tuple(float(v) for v in extent)
    if len(values) != 4 or not (values[0] < values[1] and values[2] < values[3]):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max) with min < max, got {extent!r}")
    return values


def _label(ax: Axes, panel: Panel) -> None:
    ax.set_title(panel.title)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_aspect("equal")


def panel_figure(
    rows: Sequence[Sequence[Panel | None]],
    scales: Mapping[str, Scale],
    extent: Extent,
    title: str | None = None,
) -> Figure:
    """Draw ``rows`` of panels with one colour bar per scale (constrained layout).

    Parameters
    ----------
    rows : sequence of sequences of ImagePanel, ScatterPanel or None
        Panels row by row; ``None`` leaves a slot empty. Rows may differ in length.
    scales : mapping from str to Scale
        The scale of every key that a panel names.
    extent : (x_min, x_max, y_min, y_max)
        Physical extent of every panel.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, not registered with pyplot (Jupyter shows it once, as the cell's value).
    """
    ncols = max(len(row) for row in rows)
    bars_per_row = max(len({p.scale for p in row if p is not None}) for row in rows)
    size = (ncols * PANEL_INCHES + bars_per_row * COLORBAR_INCHES, len(rows) * PANEL_INCHES + 0.4 * bool(title))
    fig = Figure(figsize=size, layout="constrained")
    grid = fig.subplots(len(rows), ncols, squeeze=False)
    placed: dict[str, list[tuple[Axes, Panel]]] = {}
    for axes_row, row in zip(grid, rows):
        for col, ax in enumerate(axes_row):
            panel = row[col] if col < len(row) else None
            if panel is None:
                ax.remove()
            else:
                placed.setdefault(panel.scale, []).append((ax, panel))
    for key, members in placed.items():
        norm, cmap = scales[key].resolve(np.concatenate([p.values().ravel() for _, p in members]))
        mappables = [panel.draw(ax, norm, cmap, extent) for ax, panel in members]
        for ax, panel in members:
            _label(ax, panel)
        fig.colorbar(mappables[0], ax=[ax for ax, _ in members], label=scales[key].label)
    if title:
        fig.suptitle(title)
    return fig
