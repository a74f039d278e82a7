"""The spelling of `pdeinv train prior | autoencoder | surrogate` and `pdeinv evaluate RUN_DIR`.

Each help fits one screen and ends with an example that parses; retired spellings are one-line
usage errors naming the new ones; options of one network are not accepted by another; a
resolution finer than the file's is refused at the command boundary with the flag to use.
"""

from __future__ import annotations

import shlex

import pytest

from pdeinv import cli
from pdeinv.datasets.generate import generate, make_config

HELP_SCREEN = 40
HELP_WIDTH = 100


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("commands") / "h.h5"
    return generate(make_config("helmholtz", 9, 2, seed=0), path, progress=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", ["train prior", "train autoencoder", "train surrogate", "evaluate", "train"])
def test_help_fits_one_screen_and_ends_with_an_example_that_parses(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(HELP_WIDTH))
    code, out, _ = run(capsys, *command.split(), "--help")
    lines = out.rstrip("\n").splitlines()
    assert code == 0 and len(lines) <= HELP_SCREEN, f"{len(lines)} lines"
    assert max(len(line) for line in lines) <= HELP_WIDTH
    assert lines[-2].startswith("example") or lines[-1].startswith("example")
    example = shlex.split(lines[-1].split("example:")[-1])
    argv = example[1:]
    assert example[0] == "pdeinv" and argv[:len(command.split())] == command.split()
    assert cli.build_parser(argv).parse_args(argv).command == argv[0]


RETIRED = {
    "no-network": (["train", "--data", "d.h5", "--out", "r"], "pdeinv train",
                   "`pdeinv train prior --data d.h5 --out r`"),
    "model-autoencoder": (["train", "--data", "d.h5", "--model", "autoencoder"], "pdeinv train",
                          "`pdeinv train autoencoder`"),
    "model-equals-surrogate": (["train", "--model=surrogate"], "pdeinv train", "`pdeinv train surrogate`"),
    "model-after-network": (["train", "prior", "--model", "denoiser"], "pdeinv train", "`pdeinv train prior`"),
    "evaluate-option": (["train", "--evaluate", "runs/p", "--eval-samples", "4"], "pdeinv train",
                        "`pdeinv evaluate DIR`"),
    "eval-prefix": (["evaluate", "runs/p", "--eval-resolution", "128"], "pdeinv evaluate",
                    "--eval-resolution is now --resolution"),
    "eval-prefix-equals": (["evaluate", "runs/p", "--eval-solver-dt=0.01"], "pdeinv evaluate",
                           "--eval-solver-dt is now --solver-dt"),
    "prior-option-on-autoencoder": (["train", "autoencoder", "--data", "d.h5", "--out", "r", "--backbone", "unet"],
                                    "pdeinv train autoencoder", "unrecognized arguments: --backbone unet"),
}


@pytest.mark.parametrize("argv, prog, new", RETIRED.values(), ids=RETIRED.keys())
def test_retired_spellings_are_one_line_usage_errors_naming_the_new_one(argv, prog, new, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: ") and new in err


def test_default_resolution_above_the_file_names_the_file_resolution_and_the_flag(small_file, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "autoencoder", "--data", str(small_file), "--out", str(out))
    assert code == 2 and not out.exists()
    assert f"{small_file} holds 9 x 9 fields, coarser than --resolution 64 (the default); pass --resolution 9" in err
    code, _, err = run(capsys, "train", "prior", "--data", str(small_file), "--out", str(out), "--resolution", "17")
    assert code == 2 and "coarser than --resolution 17; pass --resolution 9" in err and not out.exists()


def test_evaluate_refuses_a_resolution_above_its_data_and_an_autoencoder_without_data(small_file, capsys):
    code, _, err = run(capsys, "evaluate", "helmholtz-joint", "--data", str(small_file), "--resolution", "128")
    assert code == 2 and "holds 9 x 9 fields, coarser than --resolution 128; pass --data FILE.h5 with fields" in err
    code, _, err = run(capsys, "evaluate", "helmholtz-autoencoder")
    assert code == 2 and "is an autoencoder: pass --data TEST.h5" in err
    code, _, err = run(capsys, "evaluate", "helmholtz-joint", "--solver-dt", "0.01")
    assert code == 2 and "add --consistent" in err


def test_option_choices_are_the_library_ones():
    from pdeinv.priors import commands
    from pdeinv.priors.backbones import BACKBONES
    from pdeinv.priors.edm import RESIDUALS, EDMConfig
    from pdeinv.priors.spectral_gaussian import BASE_CHOICES
    from pdeinv.priors.training import LR_SCHEDULES

    assert set(commands.BACKBONES) == set(BACKBONES)
    assert commands.LR_SCHEDULES == tuple(LR_SCHEDULES)
    assert commands.GAUSSIAN_BASES == tuple(BASE_CHOICES)
    assert commands.RESIDUALS == tuple(RESIDUALS)
    assert EDMConfig().sigma_data == 1.0, "the help of --sigma-data says 'default 1'"
