"""Provenance of benchmark records and the rule that keeps stale records out of the tables."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from pdeinv.bench import tables
from pdeinv.bench.provenance import PACKAGE_DIR, checkpoint_weights, git_state, provenance
from pdeinv.files import file_sha256
from pdeinv.priors.checkpoint import SHIPPED


def test_file_hash_matches_hashlib(tmp_path):
    path = tmp_path / "data.bin"
    payload = bytes(range(256)) * 5000
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()


def test_provenance_names_code_weights_data_and_machine(tmp_path):
    data = tmp_path / "test.h5"
    data.write_bytes(b"test set")
    record = provenance("helmholtz-joint", data, "cpu")
    assert set(record) == {"commit", "dirty", "versions", "prior_weights", "data_sha256", "threads", "device",
                           "timestamp"}
    weights = (SHIPPED / "helmholtz-joint" / "model.safetensors").read_bytes()
    assert record["prior_weights"] == {"helmholtz-joint": hashlib.sha256(weights).hexdigest()}
    assert record["data_sha256"] == hashlib.sha256(b"test set").hexdigest()
    assert set(record["versions"]) == {"python", "pdeinv", "torch", "deepinv"}
    assert record["threads"] >= 1 and record["timestamp"].endswith("+00:00")
    json.dumps(record)


def test_latent_prior_provenance_includes_its_autoencoder():
    assert {"ns-latent", "ns-autoencoder"} <= set(checkpoint_weights("ns-latent"))


def test_outside_a_checkout_the_commit_is_unversioned(tmp_path):
    assert git_state(tmp_path / "pdeinv") == ("unversioned", None)


def test_a_package_inside_another_repository_is_unversioned(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    package = tmp_path / "venv" / "site-packages" / "pdeinv"
    package.mkdir(parents=True)
    assert git_state(package) == ("unversioned", None)


def test_this_checkout_has_a_commit():
    if not (PACKAGE_DIR.parent / ".git").exists():
        pytest.skip("pdeinv is not installed from a git checkout")
    commit, dirty = git_state()
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(dirty, bool)


@pytest.fixture
def shipped():
    return {"helmholtz-joint": "a" * 64, "ns-joint": "b" * 64}


def _record(**provenance_entries):
    base = {"commit": "0123456789abcdef", "dirty": False, "prior_weights": {}}
    return {"task": "helmholtz-inverse-64", "method": "tmpd", "provenance": {**base, **provenance_entries}}


def test_stale_reasons(shipped):
    assert tables.stale_reason({"task": "t", "method": "m"}, shipped).startswith("no provenance")
    assert "modified checkout" in tables.stale_reason(_record(dirty=True), shipped)
    changed = _record(prior_weights={"helmholtz-joint": "c" * 64})
    assert "differ from the shipped" in tables.stale_reason(changed, shipped)
    assert "not a shipped" in tables.stale_reason(_record(prior_weights={"my-run": "c" * 64}), shipped)


def test_current_records(shipped):
    assert tables.stale_reason(_record(), shipped) is None
    assert tables.stale_reason(_record(prior_weights={"helmholtz-joint": "a" * 64}), shipped) is None
    # a training directory holding the shipped weights is the shipped prior
    assert tables.stale_reason(_record(prior_weights={"helmholtz-joint-run": "b" * 64}), shipped) is None


def test_stale_section_lists_each_stale_record_or_says_there_is_none(tmp_path, shipped):
    path = tmp_path / "results" / "old.json"
    record = {"task": "helmholtz-inverse-64", "method": "tmpd"}
    _, stale = tables.split_records([(path, record)], shipped)
    listed = tables.stale_table(stale, tmp_path)
    assert "1 record(s), no provenance" in listed and "`results/old.json`" in listed
    assert tables.stale_table([], tmp_path) == "None: every benchmark record under `results/` is current."


def test_committed_results_hold_no_stale_record():
    found = tables.read_results(tables.ROOT / "results")
    _, stale = tables.split_records(found, tables.shipped_weights())
    assert [str(path.relative_to(tables.ROOT)) for path, _, _ in stale] == [], "remove stale records from results/"


def test_replace_block_needs_its_markers():
    text = "before\n<!-- table:x -->\nold\n<!-- /table:x -->\nafter\n"
    assert tables.replace_block(text, "x", "new") == "before\n<!-- table:x -->\nnew\n<!-- /table:x -->\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        tables.replace_block("no markers", "x", "new")


def test_headline_ranks_only_runs_over_the_most_test_fields():
    def run(method, n, error, prior=None):
        record = {"task": "t", "method": method, "n": n, "rel_l2_mean": error, "rel_l2_std": 0.0, "prior": prior,
                  "seconds_per_sample": 1.0, "nfe": 1, "device": "cpu", "provenance": {"threads": 1}}
        return (None, record)

    table = tables.headline_table([run("a", 32, 0.2, "p"), run("b", 8, 0.1, "p"), run("kriging", 32, 0.3)])
    assert "| t | a | p |" in table and "| b |" not in table and "| t | kriging |" in table


def test_published_table_sets_each_reproduction_beside_its_published_figure():
    def run(method, steps, error, prior="ns-joint", task="ns-inverse", n=8):
        record = {"task": task, "method": method, "steps": steps, "n": n, "rel_l2_mean": error, "rel_l2_std": 0.0,
                  "prior": prior, "seconds_per_sample": 1.0, "nfe": 2 * (steps or 0), "device": "cpu",
                  "provenance": {"threads": 1}}
        return (None, record)

    current = [run("fundps", 200, 0.101), run("fundps", 500, 0.085), run("tmpd", 50, 0.12),
               run("interp-solve", None, 0.2, prior=None), run("fundps", 200, 0.5, task="ns-inverse-64")]
    rows = {line.split(" | ")[0].strip("| "): line for line in tables.published_table(current).splitlines()}
    cells = rows["ns-inverse"].strip("|").split(" | ")
    assert cells[1:5] == ["8.48", "8.50 (n = 8)", "9.87", "10.10 (n = 8)"]
    assert cells[5:7] == ["9.63", "-"]
    assert cells[7].startswith("8.50: fundps") and cells[8].startswith("20.00: interp-solve")
    assert rows["darcy-inverse (error rate)"].count(" - ") == 5
    fewer = tables.published_table([run("diffusionpde", 2000, 0.05, n=2), *current])
    assert "| 8.50: fundps" in fewer and "| 5.00: diffusionpde" not in fewer  # 2 fields do not outrank 8


def test_headline_keeps_to_the_evaluation_budget():
    def run(method, nfe, error):
        record = {"task": "t", "method": method, "n": 32, "rel_l2_mean": error, "rel_l2_std": 0.0, "prior": "p",
                  "seconds_per_sample": 1.0, "nfe": nfe, "device": "cpu", "provenance": {"threads": 1}}
        return (None, record)

    table = tables.headline_table([run("cheap", tables.HEADLINE_NFE, 0.2), run("costly", 399, 0.1)])
    assert "| t | cheap |" in table and "costly" not in table


def test_steps_table_holds_runs_measured_at_three_or_more_step_counts():
    def run(steps, error, n=8, method="dwgf"):
        record = {"task": "t", "method": method, "steps": steps, "n": n, "rel_l2_mean": error, "rel_l2_std": 0.0,
                  "prior": "p", "seconds_per_sample": 1.0, "nfe": steps, "device": "cpu", "provenance": {"threads": 1}}
        return (None, record)

    current = [run(25, 0.4), run(50, 0.2), run(200, 0.1), run(100, 0.15, n=32), run(50, 0.3, method="tmpd"),
               run(100, 0.2, method="tmpd"), run(200, 0.1, method="tmpd", n=32)]
    lines = tables.steps_table(current).splitlines()
    assert lines[0] == "| task | method | prior | n | 25 steps | 50 steps | 200 steps |"
    assert lines[2:] == ["| t | dwgf | p | 8 | 40.00 (NFE 25) | 20.00 (NFE 50) | 10.00 (NFE 200) |"]
    assert tables.steps_table(current[3:]) == "No run is measured at three or more step counts."


def test_denoiser_share_table_lists_network_runs_of_the_tracked_samplers(tmp_path):
    def run(name, method, **extra):
        record = {"task": "t", "method": method, "steps": 50, "n": 8, "rel_l2_mean": 0.1, "rel_l2_std": 0.0,
                  "prior": "p", "resolution": 64, "seconds_per_sample": 3.0, "denoiser_seconds": 2.0, "nfe": 99,
                  "device": "cpu", "provenance": {"threads": 1}, **extra}
        return (tmp_path / "results" / f"{name}.json", record)

    current = [run("a", "tmpd"), run("b", "tmpd", gaussian_part=True), run("c", "dwgf"),
               run("d", "fundps", prior=None), run("e", "fundps+equireg")]
    rows = tables.denoiser_share_table(current, tmp_path).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| `results/a.json`", "| `results/e.json`"]
    assert "| 3 | 2 | 1.50 | 99 | cpu, 1 thread |" in rows[0]
    assert tables.denoiser_share_table(current[1:4], tmp_path).startswith("No current record")
