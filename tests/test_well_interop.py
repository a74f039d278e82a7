"""The Well both ways, with the real ``the-well`` package: pdeinv files in WellDataset / hdf5_to_xarray, Well files in pdeinv."""

import h5py
import numpy as np
import pytest
import torch

from pdeinv.datasets import FieldDataset, summary
from pdeinv.datasets.generate import generate, make_config
from pdeinv.datasets.statistics import write_well_statistics
from pdeinv.datasets.xarray_view import open_xarray

well_data = pytest.importorskip("the_well.data")
from the_well.data.normalization import ZScoreNormalization  # noqa: E402
from the_well.utils.dummy_data import write_dummy_data  # noqa: E402
from the_well.utils.export import hdf5_to_xarray  # noqa: E402


@pytest.fixture(scope="module")
def pdeinv_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("well")
    (root / "h").mkdir(), (root / "ns").mkdir()
    return {
        "h": generate(make_config("helmholtz", 17, 4, seed=1), root / "h" / "h.h5", progress=False),
        "ns": generate(make_config("navier-stokes", 16, 3, seed=1, time=0.02, dt=0.01), root / "ns" / "ns.h5", progress=False),
    }


@pytest.fixture(scope="module")
def well_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dummy") / "dummy.h5"
    write_dummy_data(str(path))
    return path


def test_well_dataset_reads_pdeinv_files_with_the_written_statistics(pdeinv_files):
    """NS with WellDataset's defaults; steady Helmholtz as one snapshot (n_steps_output=0); z-scores from stats.yaml."""
    for name, options in (("ns", {}), ("h", {"n_steps_output": 0})):
        path = pdeinv_files[name]
        write_well_statistics(path)
        dataset = well_data.WellDataset(
            path=str(path.parent), use_normalization=True, normalization_type=ZScoreNormalization, **options
        )
        item = dataset[1]
        with h5py.File(path) as f:
            names = [n.decode() if isinstance(n, bytes) else n for n in f["t0_fields"].attrs["field_names"]]
            for c, field in enumerate(names):
                ds = f["t0_fields"][field]
                expected = (ds[1, 0] - ds.attrs["mean"]) / ds.attrs["std"]
                np.testing.assert_allclose(item["input_fields"][0, ..., c].numpy(), expected, atol=1e-5)
        if name == "ns":
            assert item["output_fields"].shape == (1, 16, 16, 1)


def test_hdf5_to_xarray_keeps_every_field(pdeinv_files):
    with h5py.File(pdeinv_files["h"]) as f:
        view = hdf5_to_xarray(f)
        np.testing.assert_array_equal(view["source"].values[:, 0], f["t0_fields/source"][:, 0])
        assert view["solution"].dims == ("sample", "time", "x", "y")


def test_well_file_opens_in_pdeinv(well_file):
    """Dummy Well data: t1 components and the time-constant field read right in FieldDataset, xarray and summary."""
    with h5py.File(well_file) as f:
        constant, vector = f["t0_fields/constant_field"][()], f["t1_fields/field"][()]
    data = FieldDataset(well_file, channels=["constant_field", "field_x[3]", "field_y[-1]"], normalize=False)
    assert data.grid == "periodic" and data.resolution == 32 and len(data) == 2
    np.testing.assert_array_equal(data[1][0].numpy(), constant[1])
    np.testing.assert_array_equal(data[1][1].numpy(), vector[1, 3, :, :, 0])
    np.testing.assert_array_equal(data[0][2].numpy(), vector[0, -1, :, :, 1])
    normalised = FieldDataset(well_file, channels=["constant_field"]).load_all()
    assert abs(float(normalised.mean())) < 1e-5 and float(normalised.std(unbiased=False)) == pytest.approx(1, abs=1e-4)
    view = open_xarray(well_file)
    assert view["constant_field"].dims == ("sample", "x", "y")
    np.testing.assert_array_equal(view["field_y"].values, vector[..., 1])
    text = summary(well_file)
    assert "t1_fields/field: (2, 10, 32, 32, 2)" in text and "time-constant" in text


def test_a_prior_trains_on_a_well_file(well_file, tmp_path):
    from pdeinv.priors.data import load_training_data
    from pdeinv.priors.training import TrainConfig, train

    data = load_training_data(str(well_file), channels=["field_x[0]", "field_y[0]"])
    config = TrainConfig(
        out=str(tmp_path / "prior"), backbone_options={"width": 8, "n_modes": 4, "n_layers": 2, "embedding_dim": 16},
        steps=3, batch_size=2, warmup=1, ema_halflife=2.0, checkpoint_every=3, log_every=1, progress=False,
    )
    train(config, data)
    from pdeinv.priors import load

    prior = load(str(tmp_path / "prior"))
    assert prior.channels == ("field_x[0]", "field_y[0]")
    out = prior(torch.randn(1, 2, 32, 32), 1.0)
    assert out.shape == (1, 2, 32, 32) and torch.isfinite(out).all()
