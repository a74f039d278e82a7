"""Execute every notebook in ``notebooks/`` top to bottom in the quick configuration and check its results.

Each notebook runs in a fresh ``python3`` kernel (this interpreter) with ``PDEINV_QUICK=1``, its
working directory and ``TMPDIR`` set to a temporary directory, so that everything it writes lands
there. Beyond "every cell ran", each test reads the JSON file the notebook saves in its working
directory and checks the numbers that the notebook's conclusions rest on, and counts its figures.

A notebook that needs a trained prior is skipped, with the missing path in the reason, only when
that prior's shipped checkpoint directory ``pdeinv/priors/checkpoints/<name>/`` does not exist.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

from pdeinv.priors.checkpoint import SHIPPED  # noqa: E402

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 600
# notebook -> (shipped priors it loads, minimum number of figures it shows)
NOTEBOOKS = {
    "01_quickstart.ipynb": (("helmholtz-joint",), 4),
    "02_helmholtz_inverse_uncertainty.ipynb": (("helmholtz-joint",), 5),
    "03_navier_stokes.ipynb": (("ns-joint",), 7),
    "04_equireg_ablation.ipynb": (("ns-joint",), 3),
    "05_benchmarking.ipynb": (("helmholtz-joint",), 3),
    "06_latent_and_particles.ipynb": (("ns-autoencoder", "ns-latent", "ns-joint"), 10),
}


def test_every_notebook_is_listed_and_stripped():
    found = {p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert found == set(NOTEBOOKS), f"notebooks on disk {sorted(found)} differ from the tested set {sorted(NOTEBOOKS)}"
    for name in NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{name} carries outputs"
        assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5, f"{name} has too little prose"
        assert "PDEINV_QUICK" in "".join(cell.source for cell in code), f"{name} ignores PDEINV_QUICK"


def _run(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, Path]:
    priors, _ = NOTEBOOKS[name]
    for prior in priors:
        if not (SHIPPED / prior).is_dir():
            pytest.skip(f"{name} needs the shipped prior checkpoint directory {SHIPPED / prior}, which is missing")
    before = sorted(p.name for p in NOTEBOOKS_DIR.iterdir())
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PDEINV_QUICK": "1", "TMPDIR": str(cwd)}
    env.pop("PDEINV_RESULTS", None)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if any cell fails
    assert sorted(p.name for p in NOTEBOOKS_DIR.iterdir()) == before, f"{name} wrote into {NOTEBOOKS_DIR}"
    return notebook, cwd


def _figures(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _result(name: str, tmp_path: Path, filename: str) -> dict:
    notebook, cwd = _run(name, tmp_path)
    minimum = NOTEBOOKS[name][1]
    assert _figures(notebook) >= minimum, f"{name} showed {_figures(notebook)} figures, expected at least {minimum}"
    path = cwd / filename
    assert path.is_file(), f"{name} did not save {filename} in its working directory"
    result = json.loads(path.read_text())
    assert result["quick"] is True
    return result


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def test_01_quickstart(tmp_path):
    result = _result("01_quickstart.ipynb", tmp_path, "quickstart.json")
    kriging, diffusion = result["rel_l2"]["kriging"], result["rel_l2"]["tmpd"]
    assert _finite(kriging, diffusion)
    assert kriging < 0.3  # exact posterior mean from 123 noise-free readings
    assert kriging < diffusion  # the Bayes limit on a linear-Gaussian problem
    assert result["nfe"]["tmpd"] > 0 and result["nfe"]["kriging"] == 0


def test_02_uncertainty(tmp_path):
    result = _result("02_helmholtz_inverse_uncertainty.ipynb", tmp_path, "uncertainty.json")
    posteriors = result["posteriors"]
    kriging = posteriors["kriging"]
    assert set(posteriors) == {"kriging", "TMPD, trained prior", "TMPD, exact prior"}
    # the exact posterior is calibrated: +-2 std holds about 95 % of the pixels of a typical source
    assert 0.80 <= kriging["coverage ±2 std (%)"] / 100 <= 1.0
    assert kriging["std ratio"] == pytest.approx(1.0) and kriging["distance to Bayes mean (%)"] == pytest.approx(0.0)
    for name, row in posteriors.items():
        assert _finite(*row.values()), name
        assert row["std ratio"] > 0, name
    # with the exact Gaussian prior TMPD's likelihood is exact: the mean of K near-exact samples has an
    # expected error of sqrt(1 + 1/K) times the Bayes error (it may fall below it on one source)
    expected = math.sqrt(1 + 1 / result["samples"]) * kriging["error (%)"]
    assert posteriors["TMPD, exact prior"]["error (%)"] <= 1.3 * expected
    assert 0 < result["coverage_target_k_samples"] < 0.954


def test_03_navier_stokes(tmp_path):
    result = _result("03_navier_stokes.ipynb", tmp_path, "navier_stokes.json")
    assert result["dt_difference"] < 1e-2  # the quick time step changes w(T) negligibly
    errors = result["rel_l2"]
    assert set(errors["forward"]) == {"interp-solve", "adjoint", "dps"}
    assert set(errors["inverse"]) == {"adjoint", "dps"}
    assert _finite(*errors["forward"].values(), *errors["inverse"].values(), *result["consistency"].values())
    assert errors["forward"]["interp-solve"] < 0.2  # 500 readings of w0 pin down w(T)
    assert errors["forward"]["adjoint"] < 0.2


def test_04_equireg(tmp_path):
    result = _result("04_equireg_ablation.ipynb", tmp_path, "equireg.json")
    assert result["commutation_forced_max_true"] < 1e-4  # exact symmetries, float32 rounding
    assert result["commutation_forced_min_d4"] > 1e-2  # plain rotations and flips are not symmetries
    variants = {r["variant"] for r in result["ablation"]}
    assert len(variants) == 5 and len(result["ablation"]) == 5 * len(result["steps"])
    assert all(_finite(r["rel_l2_mean"], r["rel_l2_std"]) and r["nfe"] > 0 for r in result["ablation"])


def test_05_benchmarking(tmp_path):
    result = _result("05_benchmarking.ipynb", tmp_path, "benchmark_summary.json")
    errors = result["rel_l2_mean"]
    assert set(errors) == {"helmholtz-forward-64", "helmholtz-inverse-64"}
    assert all(_finite(*by_method.values()) for by_method in errors.values())
    inverse = errors["helmholtz-inverse-64"]
    assert {"kriging", "adjoint", "dps", "tmpd"} <= set(inverse)
    # kriging is the exact posterior mean: below every diffusion method, and the best up to sampling noise
    assert inverse["kriging"] < min(inverse["dps"], inverse["tmpd"])
    assert inverse["kriging"] <= 1.1 * min(inverse.values())


def test_06_latent_and_particles(tmp_path):
    result = _result("06_latent_and_particles.ipynb", tmp_path, "latent_particles.json")
    autoencoder = result["autoencoder"]
    # the shipped autoencoder's floor: about 1 % on w(T) and 5 % on the rough w0 (card: 32 test fields)
    assert autoencoder["rel_l2_wT"] < 0.05 and autoencoder["rel_l2_w0"] < 0.15
    latent = result["latent_task"]
    assert set(latent["rel_l2"]) == {"pinv", "tmpd", "latent-dps", "psld"}
    assert _finite(*latent["rel_l2"].values(), latent["floor_wT"])
    assert latent["nfe"]["pinv"] == 0 and all(latent["nfe"][m] > 0 for m in ("tmpd", "latent-dps", "psld"))
    assert latent["rel_l2"]["tmpd"] < 0.5  # 256 noisy values of a smooth field and the joint prior
    particles = result["particles"]
    assert set(particles["methods"]) == {"rlsd", "rlsd-norep", "dwgf"}
    for row in particles["per_field"]:
        # triangle inequality: the particle mean is never further from the truth than the average particle
        assert row["particle mean (%)"] <= row["mean single particle (%)"] + 1e-9, row
    by_field = {(r["method"], r["field"]): r for r in particles["per_field"]}
    for field in range(particles["n"]):
        # same seed and noise; repulsion is the only difference, and it spreads the set on every field
        repulsive, plain = by_field[("rlsd", field)], by_field[("rlsd-norep", field)]
        assert repulsive["pairwise distance"] > plain["pairwise distance"], field
        assert repulsive["pairwise cosine"] < plain["pairwise cosine"], field
