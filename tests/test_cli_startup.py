"""Start-up of the command line: help and metadata commands import no deep-learning stack.

The check inspects ``sys.modules`` in a fresh interpreter after the command ran (robust, unlike
a timing assertion): ``pdeinv --help``, ``pdeinv data info``, the ``--help`` of ``pdeinv data``,
``pdeinv train`` and ``pdeinv evaluate`` and their sub-commands, and a retired ``pdeinv train``
spelling must not import deepinv, diffusers, neuraloperator, matplotlib or torch.
"""

import json
import os
import subprocess
import sys

import pytest

from pdeinv.datasets.generate import generate, make_config

HEAVY = ("torch", "deepinv", "diffusers", "neuralop", "matplotlib", "xarray", "scipy")

PROBE = """
import contextlib, io, json, sys
from pdeinv import cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": [m for m in %s if m in sys.modules]}))
"""


def imported_after(*argv: str, watched: tuple[str, ...] = HEAVY) -> dict:
    """Exit code of ``pdeinv *argv`` and which of the ``watched`` modules it imported (fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (watched,), *argv], capture_output=True, text=True, env=os.environ.copy(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return generate(make_config("helmholtz", 9, 2, seed=0), tmp_path_factory.mktemp("startup") / "h.h5", progress=False)


HELP = {
    "help": ("--help",),
    "data-check-help": ("data", "check", "--help"),
    "data-help": ("data", "--help"),
    "data-info-help": ("data", "info", "--help"),
    "train-help": ("train", "--help"),
    "train-prior-help": ("train", "prior", "--help"),
    "train-autoencoder-help": ("train", "autoencoder", "--help"),
    "train-surrogate-help": ("train", "surrogate", "--help"),
    "evaluate-help": ("evaluate", "--help"),
}


@pytest.mark.parametrize("argv", HELP.values(), ids=HELP.keys())
def test_help_imports_no_heavy_module(argv):
    outcome = imported_after(*argv)
    assert outcome == {"code": 0, "heavy": []}


def test_retired_train_spelling_is_refused_before_any_heavy_import():
    outcome = imported_after("train", "--data", "x.h5", "--model", "autoencoder", "--out", "run")
    assert outcome == {"code": 2, "heavy": []}


def test_data_info_imports_no_heavy_module(small_file):
    outcome = imported_after("data", "info", str(small_file))
    assert outcome == {"code": 0, "heavy": []}


def test_data_check_without_physics_imports_no_heavy_module(small_file):
    outcome = imported_after("data", "check", "--physics-samples", "0", str(small_file))
    assert outcome == {"code": 0, "heavy": []}


def test_data_check_with_physics_imports_no_sampler(small_file):
    """The physics check needs the PDE operator (torch, deepinv), not the samplers."""
    outcome = imported_after("data", "check", str(small_file), watched=("pdeinv.sampling",))
    assert outcome == {"code": 0, "heavy": []}


def test_package_names_stay_importable_lazily():
    import pdeinv.bench as bench
    import pdeinv.datasets as datasets
    import pdeinv.priors as priors

    for package in (bench, datasets, priors):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
    import pdeinv.datasets.generate  # noqa: F401  (the module must not hide the function of the same name)

    assert callable(datasets.generate) and datasets.generate.__name__ == "generate"
