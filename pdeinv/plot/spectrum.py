r"""Radially averaged power spectra of fields, and their log-log plot.

With :math:`\hat f(k) = S^{-2} \sum_{i,j} f_{ij}\, e^{-2\pi i (k_x i + k_y j)/S}` (``fft2`` with
``norm="forward"``) on an ``S x S`` grid, the power of mode :math:`k = (k_x, k_y)` is
:math:`|\hat f(k)|^2` and Parseval reads :math:`\sum_k |\hat f(k)|^2 = \overline{f^2}` (mean
square). Modes are binned into shells of integer radius :math:`n = \mathrm{round}(|k|)`,
:math:`n = 0 \dots \lfloor S/2 \rfloor`; the spectrum is the mean power over each shell (the
corner modes beyond the Nyquist radius are left out). Integer wavenumbers are cycles per unit
length on the unit square: a mode :math:`\cos 2\pi n x` has wavenumber :math:`n`, and white noise
of variance :math:`\sigma^2` has the flat spectrum :math:`\sigma^2 / S^2`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from pdeinv.plot._arrays import as_fields


def radial_spectrum(field) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum, averaged over all fields and channels given.

    Parameters
    ----------
    field : tensor, ndarray or DataArray
        ``(S, S)``, ``(C, S, S)`` or ``(B, C, S, S)``, ``field[..., i, j]`` at ``(x_i, y_j)``.

    Returns
    -------
    wavenumbers : numpy.ndarray
        ``(S//2 + 1,)`` integer shell radii ``0 .. S//2`` (cycles per unit length), as floats.
    power : numpy.ndarray
        ``(S//2 + 1,)`` mean of ``|fft2(f, norm="forward")|^2`` over the modes of each shell and
        over all ``B * C`` fields.
    """
    fields = as_fields(field, "field")
    size = fields.shape[-1]
    power = (np.abs(np.fft.fft2(fields, norm="forward")) ** 2).mean(axis=(0, 1))
    frequencies = np.fft.fftfreq(size, d=1.0 / size)
    radius = np.rint(np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))).astype(int).ravel()
    inside = radius <= size // 2
    counts = np.bincount(radius[inside], minlength=size // 2 + 1)
    sums = np.bincount(radius[inside], weights=power.ravel()[inside], minlength=size // 2 + 1)
    return np.arange(size // 2 + 1, dtype=np.float64), sums / counts


def spectrum_plot(fields: Mapping[str, object], title: str | None = None) -> Figure:
    """Radially averaged power spectra on log-log axes, one line per entry, with a legend.

    Parameters
    ----------
    fields : mapping from str to tensor, ndarray or DataArray
        Label -> fields ``(S, S)``, ``(C, S, S)`` or ``(B, C, S, S)``, e.g.
        ``{"data": test_fields, "samples": posterior_samples}``; each line averages its batch.
        Resolutions may differ.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; wavenumber 0 (the mean) is left out of the log axes.
    """
    if not fields:
        raise ValueError("fields is empty; pass e.g. {'data': x, 'samples': samples}")
    fig = Figure(figsize=(5.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for label, data in fields.items():
        wavenumbers, power = radial_spectrum(data)
        ax.loglog(wavenumbers[1:], power[1:], label=str(label))
    ax.set_xlabel("wavenumber |k| (cycles per unit length)")
    ax.set_ylabel(r"shell-mean power $|\hat f(k)|^2$")
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
