"""The documentation: the Sphinx build with warnings as errors, the docstring examples, the generated tables."""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pdeinv.bench import tables

ROOT = Path(__file__).resolve().parents[1]


def _modules_with_examples() -> list[str]:
    """Dotted names of the pdeinv modules whose docstrings hold ``>>>`` examples."""
    names = []
    for path in sorted((ROOT / "pdeinv").rglob("*.py")):
        if ">>> " in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module):
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(importlib.import_module(module), optionflags=flags, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module} failed (output above)"


def test_committed_tables_match_the_generated_ones():
    stale = [str(path.relative_to(ROOT)) for path in tables.outdated(ROOT)]
    assert stale == [], f"{stale} differ from what `python -m pdeinv.bench.tables` generates; run it and commit"


def test_documentation_builds_without_warnings(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
               str(tmp_path / "html")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    built = {path.relative_to(tmp_path / "html").as_posix() for path in (tmp_path / "html").rglob("*.html")}
    expected = {"index.html", "getting-started.html", "priors.html", "benchmarks.html", "architecture.html",
                "changelog.html", "studies/index.html", "studies/equireg.html", "api/operators.html"}
    assert expected <= built
    api = (tmp_path / "html" / "api" / "operators.html").read_text()
    assert "Helmholtz" in api and "PointObservation" in api
