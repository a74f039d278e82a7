"""Provenance of a benchmark record: which code, weights, data, libraries and machine produced it.

:func:`provenance` is stored under the ``"provenance"`` key of every ``pdeinv bench`` record, so a
number in a table can be traced to the commit, the prior's weights and the test file behind it, and
a record made with weights that are no longer shipped can be recognised
(:func:`pdeinv.bench.tables.stale_reason`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from pdeinv import __version__
from pdeinv.files import file_sha256

PACKAGE_DIR = Path(__file__).resolve().parents[1]
WEIGHTS = "model.safetensors"


def git_state(package_dir: str | Path = PACKAGE_DIR) -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the git checkout whose root holds ``package_dir``; ``("unversioned", None)`` otherwise.

    A package installed into another project's repository (e.g. a virtual environment inside it)
    is unversioned. ``dirty`` is True when tracked files differ from the commit (untracked files
    are ignored).
    """
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(package_dir), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != Path(package_dir).resolve().parent:
            return "unversioned", None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unversioned", None
    return commit, dirty


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def checkpoint_weights(prior: str | Path) -> dict[str, str]:
    """``{checkpoint name: SHA-256 of its weights}`` for a prior and the checkpoints its card names.

    A latent prior names its autoencoder (``card["latent"]["autoencoder"]``) and a REPA-trained
    prior its alignment encoder (``card["repa"]["encoder"]["reference"]``); both enter the result.
    Names are checkpoint directory names (``helmholtz-joint``, ``runs/x`` gives ``x``).
    """
    from pdeinv.priors.checkpoint import resolve

    hashes: dict[str, str] = {}
    pending = [str(prior)]
    while pending:
        directory = resolve(pending.pop())
        if directory.name in hashes:
            continue
        hashes[directory.name] = file_sha256(directory / WEIGHTS)
        card = json.loads((directory / "card.json").read_text())
        autoencoder = card.get("latent", {}).get("autoencoder")
        encoder = card.get("repa", {}).get("encoder", {}).get("reference")
        pending += [r for r in (autoencoder, encoder) if r]
    return hashes


def provenance(prior: str | Path | None, data: str | Path | None, device: str = "cpu") -> dict:
    """What produced a benchmark record.

    Parameters
    ----------
    prior : str or Path, optional
        Prior name or checkpoint directory of the run; ``None`` for a method without a prior.
    data : str or Path, optional
        Test-set file of the run.
    device : str
        Torch device the run used.

    Returns
    -------
    dict
        ``commit`` (``git rev-parse HEAD`` of the checkout holding pdeinv, or ``"unversioned"``),
        ``dirty`` (tracked files modified; ``None`` when unversioned), ``versions`` (python, pdeinv,
        torch, deepinv), ``prior_weights`` (:func:`checkpoint_weights`, ``{}`` without a prior),
        ``data_sha256`` (``None`` without a file), ``threads`` (``torch.get_num_threads()``),
        ``device`` and ``timestamp`` (UTC, ISO 8601).
    """
    commit, dirty = git_state()
    return {
        "commit": commit,
        "dirty": dirty,
        "versions": {
            "python": sys.version.split()[0],
            "pdeinv": __version__,
            "torch": torch.__version__,
            "deepinv": _version("deepinv"),
        },
        "prior_weights": checkpoint_weights(prior) if prior is not None else {},
        "data_sha256": file_sha256(data) if data is not None and Path(data).is_file() else None,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
