"""Figures for notebooks: fields, reconstructions, posterior samples, spectra and benchmarks.

Every function takes torch tensors, numpy arrays or xarray DataArrays and returns a
``matplotlib.figure.Figure`` built without pyplot (it never calls ``plt.show``; in Jupyter the
returned figure displays once; save it with ``fig.savefig``). Fields follow the pdeinv grid
convention: ``(B, C, S, S)`` (or ``(S, S)``, ``(C, S, S)``), ``field[..., i, j]`` is the value at
``(x_i, y_j)``; panels show ``x`` horizontally and ``y`` upwards over the physical extent
(the unit square by default), signed fields with a diverging colormap centred at 0.

- :func:`field_grid`: fields side by side with shared colour scales and colour bars.
- :func:`reconstruction_panels`: measurement, truth, reconstruction (with its relative L2
  error), absolute error and posterior std.
- :func:`sample_grid`: posterior samples with their mean and std.
- :func:`radial_spectrum`, :func:`spectrum_plot`: radially averaged power spectra.
- :func:`bench_bars`, :func:`error_vs_steps`: benchmark tables of ``pdeinv bench`` records.
"""

from pdeinv.plot.bench import bench_bars, error_vs_steps
from pdeinv.plot.fields import field_grid, reconstruction_panels, sample_grid
from pdeinv.plot.spectrum import radial_spectrum, spectrum_plot

__all__ = [
    "bench_bars",
    "error_vs_steps",
    "field_grid",
    "radial_spectrum",
    "reconstruction_panels",
    "sample_grid",
    "spectrum_plot",
]
