"""PNG figures of reconstructions: a row of field panels and, optionally, the sensor values."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def save_panels(
    path: str | Path,
    panels: Sequence[tuple[str, torch.Tensor]],
    points: tuple[torch.Tensor, torch.Tensor] | None = None,
    title: str = "",
) -> Path:
    """Save ``panels`` (title, ``(S, S)`` field; ``[i, j]`` at ``(x_i, y_j)``) side by side as a PNG.

    Parameters
    ----------
    path : path-like
        Output ``.png``.
    panels : sequence of (str, torch.Tensor)
        Fields drawn with x horizontal and y vertical, each with its own colour bar.
    points : (torch.Tensor, torch.Tensor), optional
        Sensor coordinates ``(M, 2)`` in ``[0, 1]^2`` and values ``(M,)``, drawn as a first panel.
    title : str
        Figure title.
    """
    count = len(panels) + (points is not None)
    figure, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.0), squeeze=False)
    axes = list(axes[0])
    if points is not None:
        coordinates, values = points
        axis = axes.pop(0)
        coordinates, values = coordinates.detach().cpu().numpy(), values.detach().cpu().numpy()
        scatter = axis.scatter(coordinates[:, 0], coordinates[:, 1], c=values, s=6, cmap="viridis")
        axis.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title="measurements")
        figure.colorbar(scatter, ax=axis, fraction=0.046)
    for axis, (name, field) in zip(axes, panels):
        image = axis.imshow(field.detach().cpu().numpy().T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
        axis.set_title(name)
        figure.colorbar(image, ax=axis, fraction=0.046)
    for axis in figure.axes[: count]:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
