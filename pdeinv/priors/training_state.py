"""The resumable state of a training run, stored without pickle.

A run directory holds ``training_state.json`` (step, data position, wall time, world size, the
run's settings and card, the training file's SHA-256, optimiser hyper-parameters) and the
tensors it names, ``training_state.step<N>.safetensors``::

    model/<name>, ema/<name>          weights of the trained model and its EMA copy
    optimizer/<index>/<key>           optimiser state (AdamW: step, exp_avg, exp_avg_sq)
    generators/<rank>                 every rank's torch.Generator state (uint8)

Neither file can run code when read (``torch.load`` of a pickle can). The tensors are written
first under a new name, then the JSON (with the tensors' SHA-256) replaces the old one, then the
previous tensors file is removed; each write is atomic, so a run killed at any moment leaves a
JSON whose tensors file exists and matches it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from pdeinv.errors import PdeinvError
from pdeinv.files import atomic_write

STATE = "training_state.json"
LEGACY_STATE = "training_state.pt"
FORMAT = "pdeinv-training-state"
FORMAT_VERSION = 1
_TENSOR_GLOB = "training_state.step*.safetensors"


def _flatten(state: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """Split a trainer state into its JSON part and its named tensors."""
    tensors = {}
    for section in ("model", "ema"):
        tensors.update({f"{section}/{k}": v for k, v in state[section].items()})
    scalars = {}
    for index, entry in state["optimizer"]["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors.update({f"generators/{rank}": g for rank, g in enumerate(state["generators"])})
    meta = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer", "generators")}
    meta["optimizer"] = {"param_groups": state["optimizer"]["param_groups"], "scalars": scalars}
    return meta, {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _unflatten(meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Inverse of :func:`_flatten`."""
    state = {k: v for k, v in meta.items() if k not in ("format", "format_version", "tensors", "tensors_sha256")}
    state["model"], state["ema"], optimizer, generators = {}, {}, {}, {}
    for name, tensor in tensors.items():
        section, rest = name.split("/", 1)
        if section in ("model", "ema"):
            state[section][rest] = tensor
        elif section == "optimizer":
            index, key = rest.split("/", 1)
            optimizer.setdefault(int(index), {})[key] = tensor
        elif section == "generators":
            generators[int(rest)] = tensor
    for index, entry in meta["optimizer"]["scalars"].items():
        optimizer.setdefault(int(index), {}).update(entry)
    state["optimizer"] = {"state": dict(sorted(optimizer.items())), "param_groups": meta["optimizer"]["param_groups"]}
    state["generators"] = [generators[rank] for rank in sorted(generators)]
    return state


def save_training_state(directory: str | os.PathLike, state: dict) -> Path:
    """Write a trainer state (:meth:`pdeinv.priors.training.Trainer.state_dict`) into ``directory``.

    Returns
    -------
    pathlib.Path
        The JSON file.
    """
    from safetensors.torch import save

    directory = Path(directory)
    meta, tensors = _flatten(state)
    name = f"training_state.step{int(state['step']):09d}.safetensors"
    payload = save(tensors)
    with atomic_write(directory / name) as tmp:
        tmp.write_bytes(payload)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "tensors": name,
        "tensors_sha256": hashlib.sha256(payload).hexdigest(),
    }
    with atomic_write(directory / STATE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for stale in directory.glob(_TENSOR_GLOB):
        if stale.name != name:
            stale.unlink(missing_ok=True)
    return directory / STATE


def read_training_state(directory: str | os.PathLike) -> dict:
    """Read the state :func:`save_training_state` wrote into ``directory`` (no pickle is read).

    Raises
    ------
    FileNotFoundError
        If the directory holds no training state.
    PdeinvError
        If it holds only the pickle state of an older pdeinv (never read: unpickling can run
        code), or the state is corrupt (unreadable JSON, missing or altered tensors file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    directory = Path(directory)
    path = directory / STATE
    if not path.is_file():
        if (directory / LEGACY_STATE).is_file():
            raise PdeinvError(
                f"{directory} holds {LEGACY_STATE}, the pickle-based training state of an older pdeinv; it is not "
                "read, since unpickling a file can run arbitrary code. Start the run again (--overwrite) or "
                "in another --out"
            )
        raise FileNotFoundError(f"nothing to resume: {path} does not exist; drop --resume to start afresh")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PdeinvError(f"{path} is not valid JSON ({err}); the training state is corrupt") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PdeinvError(f"{path} is not a pdeinv training state (expected \"format\": \"{FORMAT}\")")
    tensors_path = directory / str(meta.get("tensors", ""))
    if Path(str(meta.get("tensors", ""))).name != meta.get("tensors") or not tensors_path.is_file():
        raise PdeinvError(f"{path} names the tensors file {meta.get('tensors')!r}, which is missing from {directory}")
    payload = tensors_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != meta.get("tensors_sha256"):
        raise PdeinvError(
            f"{tensors_path} does not match the SHA-256 recorded in {path}; the training state is corrupt"
        )
    try:
        tensors = load(payload)
    except (SafetensorError, ValueError) as err:
        raise PdeinvError(f"{tensors_path} is not a readable safetensors file ({err})") from err
    return _unflatten(meta, tensors)


def state_files(directory: str | os.PathLike) -> list[Path]:
    """The training-state files present in ``directory`` (JSON, tensors, an older pickle state)."""
    directory = Path(directory)
    found = [directory / STATE, directory / LEGACY_STATE, *directory.glob(_TENSOR_GLOB)]
    return [p for p in found if p.is_file()]
