"""Bad inputs to ``pdeinv data | bench | solve | demo``: one-line errors, the right exit code, no file touched.

Each case runs ``pdeinv.cli.main`` in-process and asserts the exit code (2: usage, 1: failed run),
a key phrase of the message, that stderr holds no traceback, and that no file of the shared
fixture folder changed or appeared (SHA-256 of every file before and after).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pdeinv import cli
from pdeinv.bench import commands as bench_commands
from pdeinv.datasets.generate import generate, make_config

S = 16
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
RECORD = {
    "task": "helmholtz-inverse-64", "method": "kriging", "n": 2, "rel_l2_mean": 0.1, "rel_l2_std": 0.01,
    "seconds_per_sample": 0.1, "nfe": 0, "device": "cpu",
}  # fmt: skip


def _copy_with(source: Path, target: Path, edit) -> Path:
    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        edit(f)
    return target


def _swap_solutions(f):
    solution = f["t0_fields/solution"]
    first, second = solution[0], solution[1]
    solution[0], solution[1] = second, first


def _raise_viscosity(f):
    f.attrs["generation_config"] = f.attrs["generation_config"].replace('"viscosity": 0.001', '"viscosity": 0.1')


def _as_float16(f):
    ds = f["t0_fields/source"]
    data, attrs, chunks = ds[()], dict(ds.attrs), ds.chunks
    del f["t0_fields/source"]
    new = f.create_dataset("t0_fields/source", data=data.astype(np.float16), chunks=chunks, compression="gzip")
    new.attrs.update(attrs)


def _nan_in_second_solution(f):
    f["t0_fields/solution"][1, 0, 5, 5] = np.nan


def _zero_fields(f):
    for name in ("source", "solution"):
        f[f"t0_fields/{name}"][...] = 0.0


def _write_measurements(folder: Path) -> dict[str, Path]:
    mask = np.zeros((S, S), dtype=bool)
    mask[3, 4] = mask[7, 9] = True
    base = {"values": np.array([0.1, 0.2]), "mask": mask, "pde": "helmholtz", "observed": "output"}
    variants = {
        "y_ok": {},
        "y_nan": {"values": np.array([0.1, np.nan])},
        "y_count": {"values": np.ones(3)},
        "y_nopde": {"pde": None},
        "y_observed": {"observed": "sideways"},
        "y_intmask": {"mask": mask.astype(np.int64)},
        "y_novalues": {"values": None},
        "y_noise": {"noise_std": -1.0},
        "y_strings": {"values": np.array(["a", "b"])},
        "y_outside": {"mask": None, "indices": np.array([[1, 2], [16, 3]]), "resolution": S},
        "y_nores": {"mask": None, "indices": np.array([[1, 2], [5, 3]])},
    }
    paths = {}
    for name, change in variants.items():
        content = {k: v for k, v in {**base, **change}.items() if v is not None}
        paths[name] = folder / f"{name}.npz"
        np.savez(paths[name], **content)
    paths["y_text"] = folder / "y_text.npz"
    paths["y_text"].write_text("values: 1, 2\n")
    paths["y_suffix"] = folder / "y.txt"
    paths["y_suffix"].write_text("0.1 0.2\n")
    paths["y_truncated"] = folder / "y_truncated.h5"
    with h5py.File(folder / "y_full.h5", "w") as f:
        f["values"] = np.arange(500.0)
        f["indices"] = np.stack([np.arange(500) % S, np.arange(500) // S % S], 1)
        f.attrs.update(resolution=S, pde="helmholtz", observed="output")
    paths["y_truncated"].write_bytes((folder / "y_full.h5").read_bytes()[:3000])
    return paths


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    h64 = generate(make_config("helmholtz", 64, 2, seed=2), root / "h64.h5", progress=False)
    h9 = generate(make_config("helmholtz", 9, 3, seed=0), root / "h9.h5", progress=False)
    p9 = generate(make_config("poisson", 9, 2, seed=0), root / "p9.h5", progress=False)
    ns = generate(make_config("navier-stokes", 8, 2, seed=0, time=0.02, dt=0.01), root / "ns.h5", progress=False)
    found = {
        "root": root,
        "h64": h64,
        "h9": h9,
        "h64_nan": _copy_with(h64, root / "h64_nan.h5", _nan_in_second_solution),
        "h64_zero": _copy_with(h64, root / "h64_zero.h5", _zero_fields),
        "h9_nan": _copy_with(h9, root / "h9_nan.h5", lambda f: f["t0_fields/source"].__setitem__((1, 0, 3, 3), np.inf)),
        "relabelled": _copy_with(p9, root / "relabelled.h5", lambda f: f.attrs.__setitem__("pde", "helmholtz")),
        "swapped": _copy_with(h9, root / "swapped.h5", _swap_solutions),
        "heat": _copy_with(h9, root / "heat.h5", lambda f: f.attrs.__setitem__("pde", "heat")),
        "ns": ns,
        "ns_viscosity": _copy_with(ns, root / "ns_viscosity.h5", _raise_viscosity),
        "half": _copy_with(h9, root / "half.h5", _as_float16),
        "text": root / "notes.txt",
        "folder": root / "folder",
        "missing": root / "missing.h5",
        "nodir": root / "no" / "such" / "dir" / "out.json",
        "existing_json": root / "existing.json",
        "existing_md": root / "existing.md",
        "record": root / "record.json",
        "record_nan": root / "record_nan.json",
        "record_other": root / "other.json",
        "sets": root / "sets",
        "demo_dir": root / "demo",
        "out": root / "fresh.json",
        "out_h5": root / "fresh.h5",
    }
    found["text"].write_text("not HDF5\n")
    found["folder"].mkdir()
    found["existing_json"].write_text('{"keep": true}\n')
    found["existing_md"].write_text("| keep |\n")
    found["record"].write_text(json.dumps(RECORD))
    found["record_nan"].write_text(json.dumps({**RECORD, "rel_l2_mean": float("nan")}))
    found["record_other"].write_text(json.dumps({"task": "x"}))
    found["sets"].mkdir()
    (found["sets"] / "helmholtz_9_test.h5").write_bytes(h9.read_bytes())
    found["demo_dir"].mkdir()
    (found["demo_dir"] / "demo.png").write_bytes(b"\x89PNG keep")
    truncated = root / "truncated.h5"
    truncated.write_bytes(h9.read_bytes()[:4000])
    found["truncated"] = truncated
    found.update(_write_measurements(root))
    return found


def snapshot(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


GEN = "data generate helmholtz --resolution 9 --n 2 --seed 0 --no-progress"
H9 = "data generate helmholtz --resolution 9"
NS = "data generate navier-stokes --resolution 8 --n 2 --seed 0 --no-progress"
BENCH = "bench --task helmholtz-inverse-64 --method kriging --n 2 --data {h64} --no-progress"
DWGF = "bench --task helmholtz-inverse-64 --method dwgf --n 2 --data {h64} --no-progress"
FWD = "bench --task helmholtz-forward-64 --method interp-solve --n 2 --no-progress"
SOLVE = "solve --measurements {y_ok} --method kriging"

CASES = [
    # top level
    ("no-command", "", 2, "required: COMMAND"),
    ("unknown-command", "frobnicate", 2, "invalid choice: 'frobnicate'"),
    # data generate
    ("gen-unknown-pde", "data generate heat --resolution 9 --n 2 --seed 0 --out {out_h5}", 2, "unknown PDE 'heat'"),
    ("gen-n-zero", H9 + " --n 0 --seed 0 --out {out_h5}", 2, "n must be an integer >= 1"),
    ("gen-n-negative", H9 + " --n -3 --seed 0 --out {out_h5}", 2, "got -3"),
    ("gen-n-text", H9 + " --n abc --seed 0 --out {out_h5}", 2, "invalid int value: 'abc'"),
    ("gen-resolution", "data generate helmholtz --resolution 2 --n 2 --seed 0 --out {out_h5}", 2, "resolution must be"),
    ("gen-seed", H9 + " --n 2 --seed -1 --out {out_h5}", 2, "seed must be an integer >= 0"),
    ("gen-dt-helmholtz", GEN + " --dt 0.1 --out {out_h5}", 2, "only apply to navier-stokes"),
    ("gen-dt-negative", NS + " --dt -1 --out {out_h5}", 2, "dt must be a positive number"),
    ("gen-viscosity-nan", NS + " --viscosity nan --out {out_h5}", 2, "viscosity must be a positive number"),
    ("gen-batch-size", GEN + " --batch-size 0 --out {out_h5}", 2, "must be a positive integer"),
    ("gen-solver-batch", GEN + " --solver-batch 0 --out {out_h5}", 2, "solver_batch must be an integer >= 1"),
    ("gen-float16-device", GEN + " --device float16 --out {out_h5}", 2, "unknown device 'float16'"),
    ("gen-bfloat16-device", GEN + " --device bfloat16 --out {out_h5}", 2, "unknown device 'bfloat16'"),
    ("gen-cuda", GEN + " --device cuda --out {out_h5}", 2, "CUDA is not available"),
    ("gen-existing-out", GEN + " --out {h9}", 2, "exists; pass --overwrite"),
    ("gen-out-directory", GEN + " --out {folder}", 2, "is a directory"),
    ("gen-out-no-folder", GEN + " --out {nodir}", 2, "does not exist; create"),
    ("gen-no-out", GEN, 2, "required: --out"),
    # data benchmark-sets
    ("sets-out-file", "data benchmark-sets --out {text} --resolution 9 --n 2", 2, "is a file"),
    ("sets-resolution", "data benchmark-sets --out {sets} --resolution 2 --n 2", 2, "resolution must be"),
    ("sets-n-zero", "data benchmark-sets --out {sets} --resolution 9 --n 0", 2, "n must be an integer >= 1"),
    ("sets-existing", "data benchmark-sets --out {sets} --resolution 9 --n 2", 2, "exists; pass --overwrite"),
    ("sets-device", "data benchmark-sets --out {sets} --resolution 9 --n 2 --device gpu", 2, "unknown device 'gpu'"),
    # data info
    ("info-missing", "data info {missing}", 1, "does not exist"),
    ("info-text", "data info {text}", 1, "cannot be opened as HDF5"),
    ("info-directory", "data info {folder}", 1, "cannot be opened as HDF5"),
    # data check
    ("check-missing", "data check {missing}", 1, "does not exist"),
    ("check-text", "data check {text}", 1, "truncated or corrupt"),
    ("check-directory", "data check {folder}", 1, "is a directory"),
    ("check-truncated", "data check {truncated}", 1, "truncated or corrupt"),
    ("check-nan", "data check {h9_nan}", 1, "NaN or infinite values (first in sample 1)"),
    ("check-relabelled", "data check {relabelled}", 1, "sample 0: the stored solution is not the helmholtz solve"),
    ("check-swapped", "data check {swapped}", 1, "sample 1: the stored solution is not the helmholtz solve"),
    ("check-unknown-pde", "data check {heat}", 1, "'heat' is not a known PDE"),
    ("check-ns-settings", "data check {ns_viscosity}", 1, "sample 0: the stored vorticity[-1] is not the navier-stokes"),
    ("check-float16", "data check {half}", 1, "stored as float16; fields must be float32 or float64"),
    ("check-physics-samples", "data check {h9} --physics-samples -1", 2, "must be >= 0"),
    # bench
    ("bench-task-typo", "bench --task helmholtz-inverse-65 --method kriging --out {out}", 2, "unknown task"),
    ("bench-method-typo", "bench --task helmholtz-inverse-64 --method krigging --out {out}", 2, "unknown method"),
    ("bench-repa-baseline", "bench --task helmholtz-inverse-64 --method kriging+repa --out {out}", 2, "applies to"),
    ("bench-option-key", DWGF + " --method-option learning_rate=1 --out {out}", 2, "valid keys: betas, steps"),
    ("bench-option-type", DWGF + " --method-option steps=1.5 --out {out}", 2, "steps='1.5': expected an integer"),
    ("bench-option-value", DWGF + " --method-option lr=-1 --out {out}", 2, "need gamma >= 0, lr > 0"),
    ("bench-option-form", DWGF + " --method-option lr --out {out}", 2, "expected KEY=VALUE"),
    ("bench-preset", DWGF + " --method-preset tuned --out {out}", 2, "choose one of paper, calibrated"),
    ("bench-preset-tmpd", BENCH.replace("kriging", "tmpd") + " --method-preset calibrated --out {out}", 2,
     "no preset 'calibrated'"),
    ("bench-n-zero", BENCH + " --n 0 --out {out}", 2, "must be a positive integer, got 0"),
    ("bench-n-negative", BENCH + " --n -4 --out {out}", 2, "must be a positive integer, got -4"),
    ("bench-n-float", BENCH + " --n 2.5 --out {out}", 2, "expected a positive integer"),
    ("bench-steps", BENCH + " --steps 0 --out {out}", 2, "argument --steps"),
    ("bench-samples", BENCH + " --samples 0 --out {out}", 2, "argument --samples"),
    ("bench-batch-size", BENCH + " --batch-size 0 --out {out}", 2, "argument --batch-size"),
    ("bench-seed", BENCH + " --seed -1 --out {out}", 2, "non-negative integer"),
    ("bench-float16", BENCH + " --device float16 --out {out}", 2, "unknown device 'float16'"),
    ("bench-bfloat16", BENCH + " --device bfloat16 --out {out}", 2, "unknown device 'bfloat16'"),
    ("bench-cuda", BENCH + " --device cuda:0 --out {out}", 2, "CUDA is not available"),
    ("bench-equireg-weight", BENCH + " --equireg-weight 0 --out {out}", 2, "finite positive number"),
    ("bench-repa-cutoff", BENCH + " --repa-cutoff 2 --out {out}", 2, "fraction in [0, 1]"),
    ("bench-solver-dt-zero", BENCH + " --solver-dt 0 --out {out}", 2, "argument --solver-dt"),
    ("bench-solver-dt-helmholtz", BENCH + " --solver-dt 0.01 --out {out}", 1, "Drop --solver-dt"),
    ("bench-particle-state", BENCH + " --particle-state both --out {out}", 2, "invalid choice: 'both'"),
    ("bench-prior-unknown", BENCH + " --method fundps --prior nosuchprior --out {out}", 1, "'nosuchprior'"),
    ("bench-data-directory", BENCH + " --data {folder} --out {out}", 2, "is a directory"),
    ("bench-data-text", BENCH + " --data {text} --out {out}", 1, "is not an HDF5 file"),
    ("bench-data-missing", BENCH + " --data {missing} --out {out}", 1, "pdeinv data generate helmholtz"),
    ("bench-data-wrong-pde", BENCH.replace("helmholtz", "poisson") + " --out {out}", 1, "needs poisson"),
    ("bench-data-nan", BENCH + " --data {h64_nan} --out {out}", 1, "test sample 1 holds NaN"),
    ("bench-data-too-few", BENCH + " --n 5 --out {out}", 1, "has 2 samples but --n 5"),
    ("bench-zero-truth", FWD + " --data {h64_zero} --out {out}", 1, "test sample 0 of"),
    ("bench-out-existing", BENCH + " --out {existing_json}", 2, "exists; pass --overwrite"),
    ("bench-out-is-data", BENCH + " --out {h64} --overwrite", 2, "is also an input"),
    ("bench-out-no-folder", BENCH + " --out {nodir}", 2, "does not exist; create"),
    ("bench-no-out", BENCH, 2, "--task, --method and --out are required"),
    ("table-missing", "bench --table {missing}", 1, "is not a file"),
    ("table-text", "bench --table {text}", 1, "not a valid pdeinv bench record"),
    ("table-nan", "bench --table {record_nan}", 1, "holds NaN"),
    ("table-not-record", "bench --table {record_other}", 1, "is not a pdeinv bench record"),
    ("table-out-is-input", "bench --table {record} --out {record} --overwrite", 2, "is also an input"),
    ("table-out-existing", "bench --table {record} --out {existing_md}", 2, "exists; pass --overwrite"),
    # solve
    ("solve-missing", "solve --measurements {missing} --method kriging --out {out_h5}", 1, "does not exist"),
    ("solve-directory", "solve --measurements {folder} --method kriging --out {out_h5}", 1, "is a directory"),
    ("solve-text-npz", "solve --measurements {y_text} --method kriging --out {out_h5}", 1, "cannot be read as an .npz"),
    ("solve-suffix", "solve --measurements {y_suffix} --method kriging --out {out_h5}", 1, "must be .npz or .h5"),
    ("solve-truncated-h5", "solve --measurements {y_truncated} --method kriging --out {out_h5}", 1, "read as HDF5"),
    ("solve-nan", "solve --measurements {y_nan} --method kriging --out {out_h5}", 1, "NaN or infinite"),
    ("solve-count", "solve --measurements {y_count} --method kriging --out {out_h5}", 1, "sensors define 2 points"),
    ("solve-no-pde", "solve --measurements {y_nopde} --method kriging --out {out_h5}", 1, "pass --pde"),
    ("solve-observed", "solve --measurements {y_observed} --method kriging --out {out_h5}", 1, "pass --observe"),
    ("solve-int-mask", "solve --measurements {y_intmask} --method kriging --out {out_h5}", 1, "square boolean"),
    ("solve-no-values", "solve --measurements {y_novalues} --method kriging --out {out_h5}", 1, "no 'values'"),
    ("solve-noise-file", "solve --measurements {y_noise} --method kriging --out {out_h5}", 1, "noise_std must be"),
    ("solve-strings", "solve --measurements {y_strings} --method kriging --out {out_h5}", 1, "must be numbers"),
    ("solve-outside", "solve --measurements {y_outside} --method kriging --out {out_h5}", 1, "must lie in 0..15"),
    ("solve-no-resolution", "solve --measurements {y_nores} --method kriging --out {out_h5}", 1, "add 'resolution'"),
    ("solve-noise-flag", SOLVE + " --noise-std -1 --out {out_h5}", 2, "argument --noise-std"),
    ("solve-pde-flag", SOLVE + " --pde heat --out {out_h5}", 2, "invalid choice: 'heat'"),
    ("solve-method", "solve --measurements {y_ok} --method magic --out {out_h5}", 2, "unknown method 'magic'"),
    ("solve-no-prior", "solve --measurements {y_ok} --method fundps --out {out_h5}", 2, "needs a diffusion prior"),
    ("solve-prior-unknown", "solve --measurements {y_ok} --prior nosuchprior --out {out_h5}", 1, "'nosuchprior'"),
    ("solve-out-existing", SOLVE + " --out {h9}", 2, "exists; pass --overwrite"),
    ("solve-out-is-input", SOLVE + " --out {y_ok} --overwrite", 2, "is also an input"),
    ("solve-figure-is-out", SOLVE + " --out {out_h5} --figure {out_h5}", 2, "same file"),
    ("solve-figure-existing", SOLVE + " --out {out_h5} --figure {existing_md}", 2, "exists; pass --overwrite"),
    ("solve-float16", SOLVE + " --device float16 --out {out_h5}", 2, "unknown device 'float16'"),
    ("solve-samples", SOLVE + " --samples 0 --out {out_h5}", 2, "argument --samples"),
    ("solve-option", SOLVE + " --method-option gamma=1 --out {out_h5}", 2, "kriging has no option 'gamma'"),
    ("solve-no-out", SOLVE, 2, "required: --out"),
    # demo
    ("demo-n-zero", "demo --n 0 --out {demo_dir}", 2, "argument --n"),
    ("demo-steps", "demo --steps -5 --out {demo_dir}", 2, "argument --steps"),
    ("demo-method-typo", "demo --method tmpdd --out {demo_dir}", 2, "unknown method 'tmpdd'"),
    ("demo-method-baseline", "demo --method kriging --out {demo_dir}", 2, "is not one of"),
    ("demo-out-file", "demo --out {text}", 2, "is a file"),
    ("demo-existing-figure", "demo --out {demo_dir}", 2, "exists; pass --overwrite"),
]


PARAMS = [pytest.param(*case, id=case[0], marks=[NO_CUDA] if "cuda" in case[0] else []) for case in CASES]


@pytest.mark.parametrize("name, command, code, phrase", PARAMS)
def test_bad_input_is_one_clear_line_and_touches_no_file(paths, capsys, name, command, code, phrase):
    argv = [part.format(**paths) for part in command.split()]
    before = snapshot(paths["root"])
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert phrase in err, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if argv[:2] == ["data", "check"] and code == 1:
        assert all(line.startswith(argv[2]) for line in lines), err
    else:
        assert len(lines) == 1 and lines[0].startswith("pdeinv"), err
    assert snapshot(paths["root"]) == before


@pytest.mark.parametrize("name", ["h9", "ns"])
def test_check_accepts_the_generated_files_with_their_physics(paths, capsys, name):
    assert cli.main(["data", "check", str(paths[name])]) == 0
    assert capsys.readouterr().out.strip() == f"{paths[name]}: OK"


def test_debug_shows_the_traceback(paths):
    with pytest.raises(ValueError, match="unknown task"):
        cli.main(["--debug", "bench", "--task", "nope", "--method", "kriging", "--out", str(paths["out"])])


def test_missing_standard_test_set_is_generated_on_first_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDEINV_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(bench_commands, "STANDARD_SET_SIZE", 2)
    out = tmp_path / "run.json"
    argv = ["bench", "--task", "helmholtz-forward-64", "--method", "interp-solve", "--n", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    standard = tmp_path / "data" / "helmholtz_64_test.h5"
    assert "is missing; generating it now" in captured.err and "--seed 2" in captured.err
    assert "2/2" in captured.err, "the progress bar reports the batches"
    assert f"wrote {standard}" in captured.out and f"wrote {out}" in captured.out
    reference = generate(make_config("helmholtz", 64, 2, seed=2), tmp_path / "reference.h5", progress=False)
    assert standard.read_bytes() == reference.read_bytes()
    assert json.loads(out.read_text())["data"] == str(standard)


def test_an_unexpected_error_is_one_line_that_points_to_debug(monkeypatch, capsys):
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr("pdeinv.datasets.commands.run", broken)
    assert cli.main(["data", "info", "x.h5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "pdeinv data info: internal error (TypeError): unsupported operand; "
        "rerun with 'pdeinv --debug ...' for the traceback and report it"
    )


def test_an_interrupt_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("pdeinv.datasets.commands.run", interrupted)
    assert cli.main(["data", "info", "x.h5"]) == 130
    assert capsys.readouterr().err.strip() == "pdeinv data info: interrupted"
