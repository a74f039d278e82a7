"""FieldDataset: channels, normalisation with the file's statistics, downsampling, workers, errors."""

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pdeinv.datasets.field_dataset import FieldDataset
from pdeinv.datasets.generate import generate, make_config
from pdeinv.datasets.schema import FieldInfo, FileLayout, create_layout
from pdeinv.datasets.statistics import Moments, write_statistics


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    return {
        "helmholtz": generate(make_config("helmholtz", 17, 6, seed=1), root / "h.h5", progress=False),
        "ns": generate(make_config("navier-stokes", 16, 5, seed=1, time=0.02, dt=0.01), root / "ns.h5", progress=False),
    }


def raw(path, field):
    with h5py.File(path, "r") as f:
        return f["t0_fields"][field][()].astype(np.float64)


def write_linear_file(path, s, n=2):
    """A vertex-grid file whose source is the linear field 1 + 2x - 3y (sample-scaled), for interpolation checks."""
    fields = (FieldInfo("source", "linear"),)
    layout = FileLayout("linear", "helmholtz", "vertex", s, n, (0.0,), fields, ("source",), ())
    x = np.arange(s) / (s - 1)
    data = np.stack([(k + 1) * (1 + 2 * x[:, None] - 3 * x[None, :]) for k in range(n)])[:, None].astype(np.float32)
    with h5py.File(path, "w") as f:
        ds = create_layout(f, layout)["source"]
        ds[...] = data
        moments = Moments.empty(1)
        for sample in data:
            moments.add_sample(sample)
        write_statistics(ds, moments)
    return data


def test_default_channels_and_normalisation_use_the_file_statistics(files):
    ds = FieldDataset(files["ns"])
    assert ds.channel_names == ("vorticity[0]", "vorticity[-1]") and len(ds) == 5
    w = raw(files["ns"], "vorticity")
    np.testing.assert_allclose(ds.mean.numpy(), w.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ds.std.numpy(), w.std(axis=(0, 2, 3)), rtol=1e-5)
    item = ds[3]
    assert item.shape == (2, 16, 16) and item.dtype == torch.float32
    expected = (w[3] - w.mean(axis=(0, 2, 3))[:, None, None]) / w.std(axis=(0, 2, 3))[:, None, None]
    np.testing.assert_allclose(item.numpy(), expected, rtol=1e-5, atol=1e-5)
    everything = ds.load_all(block_size=2)
    assert torch.equal(everything[3], item)
    # normalised data over the whole file have zero mean and unit (biased) std per channel
    np.testing.assert_allclose(everything.double().mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(everything.double().std(dim=(0, 2, 3), correction=0).numpy(), 1.0, rtol=1e-5)


def test_explicit_channels_without_normalisation_are_the_stored_values(files):
    ds = FieldDataset(files["helmholtz"], channels=["solution"], normalize=False)
    assert ds.channel_names == ("solution",)
    np.testing.assert_array_equal(ds[-1].numpy(), raw(files["helmholtz"], "solution")[-1])
    ns = FieldDataset(files["ns"], channels=["vorticity[1]", "vorticity[0]"], normalize=False)
    w = raw(files["ns"], "vorticity")
    np.testing.assert_array_equal(ns[0].numpy(), w[0, ::-1])


def test_periodic_downsampling_keeps_every_other_point(files):
    ds = FieldDataset(files["ns"], resolution=8, normalize=False)
    np.testing.assert_array_equal(ds[1].numpy(), raw(files["ns"], "vorticity")[1, :, ::2, ::2])
    with pytest.raises(ValueError, match="choose a resolution dividing 16"):
        FieldDataset(files["ns"], resolution=6)


def test_vertex_downsampling_keeps_coordinates(files, tmp_path):
    stride = FieldDataset(files["helmholtz"], resolution=9, normalize=False)  # 17 -> 9: (16/8) = stride 2
    stored = np.concatenate([raw(files["helmholtz"], "source")[2], raw(files["helmholtz"], "solution")[2]])
    np.testing.assert_array_equal(stride[2].numpy(), stored[:, ::2, ::2])
    data = write_linear_file(tmp_path / "linear.h5", 16)
    coarse = FieldDataset(tmp_path / "linear.h5", resolution=6, normalize=False)  # 15/5 = 3: stride 3
    np.testing.assert_array_equal(coarse[0].numpy(), data[0, :, ::3, ::3])
    interp = FieldDataset(tmp_path / "linear.h5", resolution=7, normalize=False)  # 15/6 not integral: linear
    x = np.arange(7) / 6
    exact = 2 * (1 + 2 * x[:, None] - 3 * x[None, :])  # a linear field is interpolated exactly
    np.testing.assert_allclose(interp[1].numpy()[0], exact, rtol=0, atol=1e-5)


def test_dataloader_workers_read_the_same_samples(files):
    ds = FieldDataset(files["helmholtz"])
    loaded = torch.cat(list(DataLoader(ds, batch_size=4, num_workers=2)))
    assert torch.equal(loaded, ds.load_all())


def test_bad_arguments_are_explained(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="pdeinv data generate"):
        FieldDataset(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="has 2 time steps; name one, e.g. 'vorticity\\[0\\]'"):
        FieldDataset(files["ns"], channels=["vorticity"])
    with pytest.raises(ValueError, match="no field 'pressure'"):
        FieldDataset(files["helmholtz"], channels=["pressure"])
    with pytest.raises(ValueError, match="time index 2 is out of range"):
        FieldDataset(files["ns"], channels=["vorticity[2]"])
    with pytest.raises(ValueError, match="between 2 and the stored 17"):
        FieldDataset(files["helmholtz"], resolution=32)
    with pytest.raises(IndexError, match="out of range for 6 samples"):
        FieldDataset(files["helmholtz"])[6]
