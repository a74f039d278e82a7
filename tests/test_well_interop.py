"""The Well both ways, with the real ``the-well`` package: pdeinv files in WellDataset / hdf5_to_xarray, Well files in pdeinv."""

import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml

from pdeinv.cli import main
from pdeinv.datasets import FieldDataset, summary
from pdeinv.datasets.xarray_view import open_xarray

well_data = pytest.importorskip("the_well.data")
from the_well.data.normalization import ZScoreNormalization  # noqa: E402
from the_well.utils.dummy_data import write_dummy_data  # noqa: E402
from the_well.utils.export import hdf5_to_xarray  # noqa: E402


@pytest.fixture(scope="module")
def pdeinv_files(tmp_path_factory):
    """Files written by ``pdeinv data generate``, each alone in its folder (with the stats.yaml it writes)."""
    root = tmp_path_factory.mktemp("well")
    (root / "h").mkdir(), (root / "ns").mkdir()
    small = {"h": ["helmholtz", "--resolution", "17", "--n", "4"],
             "ns": ["navier-stokes", "--resolution", "16", "--n", "3", "--time", "0.02", "--dt", "0.01"]}
    for name, argv in small.items():
        out = str(root / name / f"{name}.h5")
        assert main(["data", "generate", *argv, "--seed", "1", "--out", out, "--no-progress"]) == 0
    return {name: root / name / f"{name}.h5" for name in small}


@pytest.fixture(scope="module")
def well_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dummy") / "dummy.h5"
    write_dummy_data(str(path))
    return path


def test_well_dataset_reads_pdeinv_files_with_the_written_statistics(pdeinv_files):
    """NS with WellDataset's defaults; steady Helmholtz as one snapshot (n_steps_output=0); z-scores from the
    stats.yaml that ``pdeinv data generate`` wrote, whose values are the data's own (numpy, biased std)."""
    for name, options in (("ns", {}), ("h", {"n_steps_output": 0})):
        path = pdeinv_files[name]
        stats = yaml.safe_load((path.parent / "stats.yaml").read_text())
        with h5py.File(path) as f:
            for field, ds in f["t0_fields"].items():
                values = ds[()].astype(np.float64)
                assert stats["mean"][field] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
                assert stats["std"][field] == pytest.approx(values.std(), rel=1e-9)
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


def test_generate_names_the_statistics_of_a_file_that_shares_its_folder_and_refuses_to_replace_them(
    pdeinv_files, tmp_path, capsys
):
    """A second file in a folder gets FILE.stats.yaml (stats.yaml stays the first file's); --overwrite rules apply."""
    folder = tmp_path
    for name in ("h.h5", "stats.yaml"):
        shutil.copy(pdeinv_files["h"].parent / name, folder / name)
    first = (folder / "stats.yaml").read_text()
    argv = ["data", "generate", "poisson", "--resolution", "9", "--n", "2", "--seed", "0", "--no-progress"]
    assert main([*argv, "--out", str(folder / "p.h5")]) == 0
    assert f"wrote {folder / 'p.stats.yaml'}" in capsys.readouterr().out
    assert (folder / "stats.yaml").read_text() == first
    with h5py.File(folder / "p.h5") as f:
        mean = f["t0_fields/source"][()].astype(np.float64).mean()
    assert yaml.safe_load((folder / "p.stats.yaml").read_text())["mean"]["source"] == pytest.approx(mean, abs=1e-12)
    (folder / "p.h5").unlink()  # the data file is gone, its statistics remain: refused without --overwrite
    assert main([*argv, "--out", str(folder / "p.h5")]) == 2
    assert "p.stats.yaml exists; pass --overwrite" in capsys.readouterr().err and not (folder / "p.h5").exists()
    assert main([*argv, "--out", str(folder / "p.h5"), "--overwrite"]) == 0


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
