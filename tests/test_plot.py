"""pdeinv.plot: orientation, shared colour scales, colour bars, labels, spectra, benchmark figures."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from pdeinv import plot  # noqa: E402

S = 16


def grid(size: int = S) -> tuple[np.ndarray, np.ndarray]:
    """Periodic grid ``x_i = i / S`` as ``X[i, j] = x_i``, ``Y[i, j] = y_j``."""
    axis = np.arange(size) / size
    return np.meshgrid(axis, axis, indexing="ij")


def random_fields(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def colorbars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def clim(ax) -> tuple[float, float]:
    mappable = ax.images[0] if ax.images else ax.collections[0]
    return mappable.get_clim()


def texts(fig) -> list:
    """Every visible, non-empty text of the figure: titles, axis labels, tick labels, legends."""
    found = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.title, ax.xaxis.label, ax.yaxis.label]
        found += ax.get_xticklabels() + ax.get_yticklabels()
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]:
        found += legend.get_texts() + [legend.get_title()]
    return [t for t in found if t.get_visible() and t.get_text().strip()]


def assert_readable(fig, path) -> None:
    """Render with Agg, save, and check that no two texts overlap by more than a pixel."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    for (text_a, a), (text_b, b) in itertools.combinations(boxes, 2):
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert width <= 1 or height <= 1, f"{text_a!r} overlaps {text_b!r}"
    fig.savefig(path)
    assert path.stat().st_size > 0


def assert_axes_labelled(axes, extent=(0.0, 1.0, 0.0, 1.0)) -> None:
    for ax in axes:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
        assert ax.get_xlim() == pytest.approx(extent[:2]) and ax.get_ylim() == pytest.approx(extent[2:])


# ---------------------------------------------------------------- field_grid


def test_field_grid_shows_x_horizontally_and_y_upwards():
    X, Y = grid()
    field = 3 * X + Y  # increases fastest along x
    fig = plot.field_grid(field)
    image = panels(fig)[0].images[0]
    assert image.origin == "lower"
    assert image.get_extent() == pytest.approx([0, 1, 0, 1])
    shown = np.asarray(image.get_array())  # shown[row, column], row 0 at the bottom
    np.testing.assert_array_equal(shown, field.T)
    assert shown[0, -1] > shown[-1, 0], "the column (horizontal) direction must be x"


def test_field_grid_reads_dataarrays_by_dimension_name():
    X, Y = grid()
    field = np.sin(2 * np.pi * X) + Y
    stored = xr.DataArray(field.T, dims=("y", "x"), name="w", attrs={"long_name": "vorticity", "units": "1"})
    fig = plot.field_grid(stored)
    np.testing.assert_array_equal(panels(fig)[0].images[0].get_array(), field.T)
    assert colorbars(fig)[0].get_ylabel() == "vorticity (dimensionless)"
    batch = xr.DataArray(np.stack([field, -field]), dims=("sample", "x", "y"))
    assert len(panels(plot.field_grid(batch))) == 2


def test_field_grid_shared_signed_scale_is_centred_with_one_colorbar(tmp_path):
    fields = random_fields(3, 1, S, S) + 0.5
    fig = plot.field_grid({"truth": fields[0], "dps": fields[1], "fundps": fields[2]}, units="1/s")
    axes = panels(fig)
    assert [ax.get_title() for ax in axes] == ["truth", "dps", "fundps"]
    bound = float(fields.abs().max())
    assert all(clim(ax) == pytest.approx((-bound, bound)) for ax in axes)
    assert {ax.images[0].get_cmap().name for ax in axes} == {"RdBu_r"}
    assert len(colorbars(fig)) == 1 and colorbars(fig)[0].get_ylabel() == "value [1/s]"
    assert_axes_labelled(axes)
    assert_readable(fig, tmp_path / "grid.png")


def test_field_grid_separate_scales_give_one_colorbar_per_panel():
    X, Y = grid()
    fields = np.stack([X, 10 * Y, X * Y])[:, None]
    fig = plot.field_grid(fields, share_scale=False, cmap="cividis")
    axes = panels(fig)
    assert len(colorbars(fig)) == 3
    for ax, field in zip(axes, fields[:, 0]):
        assert clim(ax) == pytest.approx((field.min(), field.max()))
        assert ax.images[0].get_cmap().name == "cividis"
    assert [ax.get_title() for ax in axes] == ["[0]", "[1]", "[2]"]


def test_field_grid_channels_share_a_scale_per_channel(tmp_path):
    fields = random_fields(3, 2, S, S)
    fields[:, 1] = fields[:, 1].abs() * 10
    fig = plot.field_grid(fields, units=["1/s", "m"], extent=(0, 2, 0, 2))
    axes = panels(fig)
    assert len(axes) == 6 and len(colorbars(fig)) == 2
    channel_limits = [{clim(ax) for ax in axes[c::2]} for c in range(2)]
    assert [len(limits) for limits in channel_limits] == [1, 1]
    assert channel_limits[0] != channel_limits[1]
    assert clim(axes[1]) == pytest.approx((float(fields[:, 1].min()), float(fields[:, 1].max())))
    assert sorted(cb.get_ylabel() for cb in colorbars(fig)) == ["value (channel 0) [1/s]", "value (channel 1) [m]"]
    assert axes[3].get_title() == "[1] (channel 1)"
    assert_axes_labelled(axes, extent=(0, 2, 0, 2))
    assert_readable(fig, tmp_path / "channels.png")


def test_field_grid_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="same number of channels"):
        plot.field_grid([torch.zeros(1, S, S), torch.zeros(2, S, S)])
    with pytest.raises(ValueError, match="one title per panel"):
        plot.field_grid(torch.zeros(2, 1, S, S), titles=["only one"])
    with pytest.raises(ValueError, match="extent"):
        plot.field_grid(torch.zeros(S, S), extent=(1, 0, 0, 1))
    with pytest.raises(ValueError, match="square"):
        plot.field_grid(torch.zeros(S, S + 1))
    with pytest.raises(ValueError, match="real numbers"):
        plot.field_grid(torch.zeros(S, S, dtype=torch.complex64))


# ---------------------------------------------------------------- reconstruction_panels


def test_reconstruction_panels_scales_titles_and_markers(tmp_path):
    truth = random_fields(1, 1, S, S, seed=1)
    reconstruction = truth + 0.1 * random_fields(1, 1, S, S, seed=2)
    std = 0.3 * random_fields(S, S, seed=3).abs()
    points = torch.tensor([[0, 0], [3, 7], [S - 1, 2]])
    values = torch.tensor([[[-2.0, 0.5, 4.0]]])  # PointObservation output (B, C, M)
    fig = plot.reconstruction_panels(truth, reconstruction, values, std=std, points=points, title="ns-forward")
    measured, true_ax, estimate_ax, error_ax, std_ax = panels(fig)
    error = float(torch.linalg.norm(reconstruction - truth) / torch.linalg.norm(truth))
    assert estimate_ax.get_title() == f"reconstruction\nrel. L2 error {100 * error:.2f} %"
    assert [ax.get_title() for ax in (measured, true_ax, error_ax, std_ax)] == [
        "3 measured points", "truth", "absolute error", "posterior std"]
    assert clim(true_ax) == clim(estimate_ax)
    abs_error = (reconstruction - truth).abs()
    top = max(float(abs_error.max()), float(std.max()))
    assert clim(error_ax) == clim(std_ax) == pytest.approx((0.0, top))
    np.testing.assert_allclose(error_ax.images[0].get_array(), abs_error[0, 0].numpy().T)
    markers = measured.collections[0]
    np.testing.assert_allclose(markers.get_offsets(), (points.numpy() + 0.5) / S)
    np.testing.assert_allclose(markers.get_array(), values.ravel().numpy())
    assert clim(measured) == pytest.approx((-4.0, 4.0))
    assert len(colorbars(fig)) == 3
    assert_axes_labelled(panels(fig))
    assert_readable(fig, tmp_path / "reconstruction.png")


def test_reconstruction_panels_optional_panels_and_validation():
    truth = random_fields(S, S, seed=4)
    fig = plot.reconstruction_panels(truth, truth * 0.9)
    assert [ax.get_title() for ax in panels(fig)][1:] == ["reconstruction\nrel. L2 error 10.00 %", "absolute error"]
    assert len(colorbars(fig)) == 2
    coarse = random_fields(S // 4, S // 4, seed=5)
    fig = plot.reconstruction_panels(truth, truth, measurement=coarse)
    np.testing.assert_array_equal(panels(fig)[0].images[0].get_array(), coarse.numpy().T)
    offsets = plot.fields.plot_coordinates(np.array([[0.25, 0.5]]), S, (0, 2, 0, 1))
    np.testing.assert_allclose(offsets, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="points needs the measured values"):
        plot.reconstruction_panels(truth, truth, points=[[0, 0]])
    with pytest.raises(ValueError, match="2 values for 1 points"):
        plot.reconstruction_panels(truth, truth, measurement=[1.0, 2.0], points=[[0, 0]])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 15\]"):
        plot.reconstruction_panels(truth, truth, measurement=[1.0], points=[[0, S]])
    with pytest.raises(ValueError, match="single-channel"):
        plot.reconstruction_panels(random_fields(2, S, S), random_fields(2, S, S))
    with pytest.raises(ValueError, match="zero everywhere"):
        plot.reconstruction_panels(torch.zeros(S, S), truth)


# ---------------------------------------------------------------- sample_grid


def test_sample_grid_mean_std_and_scales(tmp_path):
    truth = random_fields(1, S, S, seed=6)
    samples = truth + 0.5 * random_fields(6, 1, S, S, seed=7)
    fig = plot.sample_grid(samples, truth=truth, max_samples=3, units="1/s")
    axes = panels(fig)
    assert [ax.get_title().split("\n")[0] for ax in axes] == [
        "truth", "sample 0", "sample 1", "sample 2", "mean of 6", "std of 6"]
    mean = samples[:, 0].mean(0)
    np.testing.assert_allclose(axes[4].images[0].get_array(), mean.numpy().T)
    np.testing.assert_allclose(axes[5].images[0].get_array(), samples[:, 0].std(0, unbiased=True).numpy().T)
    error = float(torch.linalg.norm(mean - truth[0]) / torch.linalg.norm(truth[0]))
    assert axes[4].get_title().endswith(f"rel. L2 error {100 * error:.2f} %")
    assert len({clim(ax) for ax in axes[:5]}) == 1
    assert clim(axes[5])[0] == 0.0
    assert sorted(cb.get_ylabel() for cb in colorbars(fig)) == ["posterior std [1/s]", "value [1/s]"]
    assert_readable(fig, tmp_path / "samples.png")


def test_sample_grid_one_row_per_channel_and_validation():
    samples = random_fields(3, 2, S, S, seed=8)
    fig = plot.sample_grid(samples)
    assert len(panels(fig)) == 2 * (3 + 2) and len(colorbars(fig)) == 4
    stored = xr.DataArray(samples[:, :1].numpy(), dims=("sample", "time", "x", "y"))
    assert len(panels(plot.sample_grid(stored))) == 3 + 2
    with pytest.raises(ValueError, match="N >= 2"):
        plot.sample_grid(samples[:1])
    with pytest.raises(ValueError, match="truth must match one sample"):
        plot.sample_grid(samples, truth=torch.zeros(S, S))


# ---------------------------------------------------------------- spectra


def test_radial_spectrum_of_one_fourier_mode():
    size = 32
    X, Y = grid(size)
    mode = np.cos(2 * np.pi * (3 * X + 4 * Y))  # |k| = 5 exactly
    wavenumbers, power = plot.radial_spectrum(torch.from_numpy(mode))
    np.testing.assert_array_equal(wavenumbers, np.arange(size // 2 + 1))
    half = size // 2
    shell = sum(1 for kx, ky in itertools.product(range(-half, half), repeat=2) if round(np.hypot(kx, ky)) == 5)
    assert power[5] * shell == pytest.approx(0.5)  # Parseval: mean of cos^2
    assert np.abs(np.delete(power, 5)).max() < 1e-25


def test_radial_spectrum_of_white_noise_is_flat():
    size, sigma = 32, 2.0
    noise = sigma * random_fields(64, 1, size, size, seed=9)
    _, power = plot.radial_spectrum(noise)
    expected = sigma**2 / size**2
    np.testing.assert_allclose(power[1:], expected, rtol=0.2)
    assert power[1:].mean() == pytest.approx(expected, rel=0.03)
    _, from_xarray = plot.radial_spectrum(xr.DataArray(noise.numpy(), dims=("sample", "time", "x", "y")))
    np.testing.assert_allclose(from_xarray, power)


def test_spectrum_plot_has_log_axes_labels_and_legend(tmp_path):
    fig = plot.spectrum_plot({"data": random_fields(4, 1, S, S), "samples": random_fields(4, 1, 2 * S, 2 * S)})
    (ax,) = fig.axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["data", "samples"]
    assert [line.get_xdata()[0] for line in ax.lines] == [1.0, 1.0]
    assert [len(line.get_xdata()) for line in ax.lines] == [S // 2, S]
    assert ax.get_xlabel() and ax.get_ylabel()
    assert_readable(fig, tmp_path / "spectrum.png")
    with pytest.raises(ValueError, match="empty"):
        plot.spectrum_plot({})


# ---------------------------------------------------------------- benchmarks


def record(task, method, mean, std=0.01, nfe=500):
    return {"task": task, "method": method, "rel_l2_mean": mean, "rel_l2_std": std, "nfe": nfe,
            "seconds_per_sample": 1.0}


TABLE = [
    record("helmholtz-forward", "dps", 0.10, 0.02),
    record("helmholtz-forward", "dps+equireg", 0.08, 0.01),
    record("helmholtz-forward", "fundps", 0.02, 0.005),
    record("ns-inverse", "dps", 0.20, 0.03),
    record("ns-inverse", "dps+equireg", 0.15, 0.02),
]


def bars(ax) -> dict[str, BarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}


def test_bench_bars_heights_error_bars_and_styles(tmp_path):
    fig = plot.bench_bars(TABLE, title="64 x 64")
    (ax,) = [a for a in fig.axes]
    by_method = bars(ax)
    assert list(by_method) == ["dps", "dps+equireg", "fundps"]
    assert [p.get_height() for p in by_method["dps"]] == pytest.approx([10.0, 20.0])
    assert [p.get_height() for p in by_method["fundps"]] == pytest.approx([2.0])
    ((low, high),) = [segment[:, 1] for segment in by_method["fundps"].errorbar.lines[2][0].get_segments()]
    assert (low, high) == pytest.approx((1.5, 2.5))
    dps, equireg = by_method["dps"].patches[0], by_method["dps+equireg"].patches[0]
    assert dps.get_facecolor() == equireg.get_facecolor()
    assert (dps.get_hatch(), equireg.get_hatch()) == (None, "//")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["helmholtz-forward", "ns-inverse"]
    assert "relative L2 error (%)" in ax.get_ylabel() and ax.get_xlabel() == "task"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["dps", "dps+equireg", "fundps"]
    assert_readable(fig, tmp_path / "bars.png")


def test_bench_bars_accepts_dataframes_and_rejects_bad_tables():
    pandas = pytest.importorskip("pandas")
    fig = plot.bench_bars(pandas.DataFrame(TABLE))
    assert [p.get_height() for p in bars(fig.axes[0])["dps+equireg"]] == pytest.approx([8.0, 15.0])
    with pytest.raises(ValueError, match="several results"):
        plot.bench_bars(TABLE + [TABLE[0]])
    with pytest.raises(ValueError, match=r"lacks keys \['rel_l2_std'\]"):
        plot.bench_bars([{"task": "t", "method": "m", "rel_l2_mean": 0.1}])
    with pytest.raises(ValueError, match="empty"):
        plot.bench_bars([])


def test_error_vs_steps_curves_sorted_on_log_axes(tmp_path):
    table = [
        record(task, method, 0.3 / nfe**0.5 * (0.8 if "equireg" in method else 1.0), nfe=nfe)
        for task in ("helmholtz-forward", "ns-forward")
        for method in ("dps", "dps+equireg")
        for nfe in (1000, 100, 10)
    ]
    fig = plot.error_vs_steps(table)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["helmholtz-forward", "ns-forward"]
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() == "network evaluations (NFE)" for ax in axes)
    curves = {c.get_label(): c.lines[0] for c in axes[0].containers if isinstance(c, ErrorbarContainer)}
    plain, equireg = curves["dps"], curves["dps+equireg"]
    np.testing.assert_array_equal(plain.get_xdata(), [10, 100, 1000])
    np.testing.assert_allclose(plain.get_ydata(), [30 / 10**0.5, 3.0, 30 / 1000**0.5])
    assert plain.get_color() == equireg.get_color()
    assert (plain.get_linestyle(), equireg.get_linestyle()) == ("-", "--")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["dps", "dps+equireg"]
    assert_readable(fig, tmp_path / "steps.png")
    with pytest.raises(ValueError, match="different keys"):
        plot.error_vs_steps(table, hue="task")
    with pytest.raises(ValueError, match="several results"):
        plot.error_vs_steps(table + table[:1])


def test_figures_are_not_registered_with_pyplot():
    plot.field_grid(torch.zeros(S, S))
    plot.bench_bars(TABLE)
    assert plt.get_fignums() == []
