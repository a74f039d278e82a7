"""The HDF5 schema: The Well's rules, statistics, xarray/netCDF round trip, validation, shard store."""

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from pdeinv.cli import main
from pdeinv.datasets.generate import generate, make_config
from pdeinv.datasets.inspection import check_file, summary
from pdeinv.datasets.store import ShardStore
from pdeinv.datasets.xarray_view import open_xarray


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    helmholtz = generate(make_config("helmholtz", 9, 5, seed=0), root / "h.h5", progress=False)
    ns = generate(make_config("navier-stokes", 8, 3, seed=0, time=0.02, dt=0.01), root / "ns.h5", progress=False)
    return {"helmholtz": helmholtz, "navier-stokes": ns}


def is_bool(value):
    return isinstance(value, (bool, np.bool_))


def well_checker_assertions(f):
    """The rules of The Well's check_thewell_formatting.py, as described in the reference notes."""
    assert isinstance(f.attrs["dataset_name"], str) and isinstance(f.attrs["grid_type"], str)
    for key in ("n_spatial_dims", "n_trajectories"):
        value = f.attrs[key]
        assert isinstance(value, (int, np.integer)) and np.ndim(value) == 0
    for name in f.attrs["simulation_parameters"]:
        assert name in f.attrs and name in f["scalars"]
    n, d = int(f.attrs["n_trajectories"]), int(f.attrs["n_spatial_dims"])
    spatial = [len(f["dimensions"][axis]) for axis in f["dimensions"].attrs["spatial_dims"]]
    assert f["dimensions/time"].attrs["time_varying"] == np.True_
    n_time = len(f["dimensions/time"])
    datasets = list(f["dimensions"].values()) + list(f["scalars"].values())
    for order, group in enumerate(("t0_fields", "t1_fields", "t2_fields")):
        assert sorted(f[group].attrs["field_names"]) == sorted(f[group].keys())
        for ds in f[group].values():
            assert len(ds.attrs["dim_varying"]) == d
            expected = (
                ((n,) if ds.attrs["sample_varying"] else ())
                + ((n_time,) if ds.attrs["time_varying"] else ())
                + tuple(size for size, varying in zip(spatial, ds.attrs["dim_varying"]) if varying)
                + (d,) * order
            )
            assert ds.shape == expected
            datasets.append(ds)
    for name in ("x", "y"):
        assert f["dimensions"][name].shape[:-1] == ()
    for ds in datasets:
        assert is_bool(ds.attrs["sample_varying"]) and is_bool(ds.attrs["time_varying"]), ds.name
    for bc in f["boundary_conditions"].values():
        assert isinstance(bc.attrs["bc_type"], str) and bc.attrs["bc_type"].lower() in bc.name
        assert is_bool(bc.attrs["sample_varying"]) and is_bool(bc.attrs["time_varying"])
        dims = list(bc.attrs["associated_dims"])
        assert all(isinstance(v, str) for v in dims + list(bc.attrs["associated_fields"]))
        assert bc["mask"].shape == tuple(len(f["dimensions"][dim]) for dim in dims)


@pytest.mark.parametrize("pde", ["helmholtz", "navier-stokes"])
def test_files_follow_the_well_schema_and_pdeinv_conventions(files, pde):
    with h5py.File(files[pde], "r") as f:
        well_checker_assertions(f)
        s = int(f.attrs["resolution"])
        expected_x = np.arange(s) / (s - 1) if pde == "helmholtz" else np.arange(s) / s
        np.testing.assert_array_equal(f["x"][()], expected_x.astype(np.float32))
        for ds in f["t0_fields"].values():
            assert ds.dtype == np.float32 and ds.chunks == (1, 1, s, s)
            assert ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle
        assert f.attrs["pde"] == pde and f.attrs["seed"] == 0 and f.attrs["Conventions"] == "CF-1.10"
        assert "grf_alpha" in f.attrs and "generator_version" in f.attrs


@pytest.mark.parametrize("pde", ["helmholtz", "navier-stokes"])
def test_stored_statistics_are_those_of_the_data(files, pde):
    with h5py.File(files[pde], "r") as f:
        for ds in f["t0_fields"].values():
            data = ds[()].astype(np.float64)
            np.testing.assert_allclose(ds.attrs["mean"], data.mean(), rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(ds.attrs["std"], data.std(), rtol=1e-10)
            np.testing.assert_allclose(ds.attrs["time_mean"], data.mean(axis=(0, 2, 3)), rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(ds.attrs["time_std"], data.std(axis=(0, 2, 3)), rtol=1e-10)


def test_xarray_netcdf_round_trip_preserves_values_coordinates_attributes(files, tmp_path):
    path = files["navier-stokes"]
    view = open_xarray(path).load()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(view["vorticity"].values, f["t0_fields/vorticity"][()])
        root_attrs = dict(f.attrs)
    assert view["vorticity"].dims == ("sample", "time", "x", "y")
    np.testing.assert_array_equal(view["x"].values, (np.arange(8) / 8).astype(np.float32))
    np.testing.assert_array_equal(view["time"].values, np.float32([0.0, 0.02]))
    np.testing.assert_array_equal(view["sample"].values, np.arange(3))
    assert set(view.attrs) == set(root_attrs)
    for key, value in root_attrs.items():
        if isinstance(value, np.ndarray) and value.dtype == object:
            # string lists: xarray returns a 1-element list as a plain str (both forms are valid)
            assert list(np.atleast_1d(view.attrs[key])) == list(value), key
        else:
            assert np.array_equal(np.asarray(view.attrs[key]), np.asarray(value)), key
    nc = tmp_path / "round_trip.nc"
    view.to_netcdf(nc, engine="netcdf4")
    with xr.open_dataset(nc, engine="netcdf4") as back:
        xr.testing.assert_identical(back.load(), view)
    # plain xarray sees real dimension names in the field group (the root scales)
    with xr.open_dataset(path, engine="h5netcdf", group="t0_fields") as plain:
        assert plain["vorticity"].dims == ("sample", "time", "x", "y")


def test_check_accepts_valid_files_and_reports_damage(files, tmp_path, capsys):
    assert check_file(files["helmholtz"]) == []
    assert main(["data", "check", str(files["helmholtz"])]) == 0
    nan_file = tmp_path / "nan.h5"
    shutil.copy(files["helmholtz"], nan_file)
    with h5py.File(nan_file, "r+") as f:
        f["t0_fields/source"][2, 0, 3, 3] = np.nan
    assert any("1 NaN or infinite values" in p for p in check_file(nan_file))
    stats_file = tmp_path / "stats.h5"
    shutil.copy(files["helmholtz"], stats_file)
    with h5py.File(stats_file, "r+") as f:
        f["t0_fields/solution"].attrs["time_std"] = np.array([1.0])
    assert any("stored time_std" in p for p in check_file(stats_file))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(files["helmholtz"].read_bytes()[:4000])
    capsys.readouterr()
    assert main(["data", "check", str(truncated)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    no_attr = tmp_path / "no_attr.h5"
    shutil.copy(files["helmholtz"], no_attr)
    with h5py.File(no_attr, "r+") as f:
        del f.attrs["n_trajectories"]
    assert "root attribute 'n_trajectories' is missing" in check_file(no_attr)


def test_info_summarises_the_file(files):
    text = summary(files["navier-stokes"])
    assert "pde: navier-stokes" in text and "samples: 3" in text and "(3, 2, 8, 8)" in text
    assert "inputs: ['vorticity[0]']" in text and "outputs: ['vorticity[-1]']" in text


def test_shard_store_plans_aligned_ranges_and_refuses_gaps(tmp_path):
    store = ShardStore(tmp_path / "x.h5", {"a": 1})
    store.open()
    assert store.missing(10, batch_size=5, align=2) == [(0, 6), (6, 10)]
    store.write(0, 4, {"v": np.zeros((4, 1))})
    store.write(6, 8, {"v": np.ones((2, 1))})
    assert store.missing(10, batch_size=3, align=2) == [(4, 6), (8, 10)]
    with pytest.raises(ValueError, match="do not cover samples 0..9 exactly once"):
        list(store.shards(10))
    with pytest.raises(ValueError, match="holds 3 samples, expected 2"):
        store.write(4, 6, {"v": np.zeros((3, 1))})
    with pytest.raises(RuntimeError, match="another process is writing"):
        ShardStore(tmp_path / "x.h5", {"a": 1}).open()
    store.close()
    with pytest.raises(ValueError, match=r"a: 1 \(existing\) vs 2 \(requested\)"):
        ShardStore(tmp_path / "x.h5", {"a": 2}).open()
