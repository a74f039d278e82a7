"""Resumable, atomic storage of generated samples: shards in ``FILE.h5.parts/``, then one HDF5 file.

While a data set is generated, each finished batch ``[start, stop)`` is written to its own shard
``FILE.h5.parts/shard-<start>-<stop>.npz`` (temporary file, fsync, rename), next to the
configuration ``config.json``. A shard therefore exists completely or not at all, even after
SIGKILL, and a resumed run generates exactly the sample indices no shard holds yet. Completion
assembles the final file inside the parts directory, renames it onto ``FILE.h5`` and removes
the parts directory, so ``FILE.h5`` never exists half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from pdeinv.errors import NonFiniteError, PdeinvError

_SHARD = re.compile(r"^shard-(\d+)-(\d+)\.npz$")


def describe_differences(existing: dict, requested: dict) -> str:
    """``"key: existing -> requested"`` for every setting that differs, joined by ``"; "``."""
    keys = sorted(set(existing) | set(requested))
    return "; ".join(
        f"{key}: {existing.get(key)!r} (existing) vs {requested.get(key)!r} (requested)"
        for key in keys
        if existing.get(key) != requested.get(key)
    )


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ShardStore:
    """The parts directory of one output file.

    Parameters
    ----------
    out : path-like
        The final output file ``FILE.h5``; the parts live in ``FILE.h5.parts/``.
    config : dict
        JSON-serialisable generation settings; a parts directory holding other settings is refused.
    """

    def __init__(self, out: str | os.PathLike, config: dict):
        self.out = Path(out)
        self.directory = self.out.with_name(self.out.name + ".parts")
        self.config = config
        self._lock = None

    def open(self) -> None:
        """Create the parts directory or check that an existing one has the same configuration; lock it.

        Raises
        ------
        ValueError
            If the existing parts were generated with different settings (the message names them).
        RuntimeError
            If another process is writing the same output.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise RuntimeError(
                f"another process is writing {self.out} (lock held on {self.directory / 'lock'})"
            ) from None
        config_path = self.directory / "config.json"
        if config_path.exists():
            try:
                existing = json.loads(config_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                self.close()
                raise PdeinvError(
                    f"{config_path} is corrupt ({err}); delete {self.directory} (or choose another --out) to start over"
                ) from err
            if existing != self.config:
                self.close()
                raise ValueError(
                    f"{self.directory} holds a partial run with different settings: "
                    f"{describe_differences(existing, self.config)}. Re-run with the original settings to "
                    f"resume, or delete {self.directory} (or choose another --out) to start over"
                )
        else:
            _write_atomic(config_path, lambda handle: handle.write(json.dumps(self.config, sort_keys=True).encode()))

    def close(self) -> None:
        """Release the lock (the parts stay on disk)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def ranges(self) -> list[tuple[int, int]]:
        """Sample ranges ``[start, stop)`` of the finished shards, sorted."""
        found = (_SHARD.match(p.name) for p in self.directory.iterdir()) if self.directory.exists() else ()
        return sorted((int(m.group(1)), int(m.group(2))) for m in found if m)

    def missing(self, n: int, batch_size: int, align: int = 1) -> list[tuple[int, int]]:
        """The ranges of samples ``0..n-1`` still to generate.

        Each range starts at a multiple of ``align`` and holds whole blocks of ``align`` samples
        (the last one may end at ``n``), at most ``batch_size`` rounded up to a multiple of
        ``align``. A block counts as done only if every one of its samples is in a shard.
        """
        done = np.zeros(n, dtype=bool)
        for start, stop in self.ranges():
            done[start:stop] = True
        blocks_per_range = -(-batch_size // align)
        todo_blocks = [b for b in range(-(-n // align)) if not done[b * align : (b + 1) * align].all()]
        todo: list[tuple[int, int]] = []
        for block in todo_blocks:
            start, stop = block * align, min((block + 1) * align, n)
            if todo and todo[-1][1] == start and (start - todo[-1][0]) < blocks_per_range * align:
                todo[-1] = (todo[-1][0], stop)
            else:
                todo.append((start, stop))
        return todo

    def write(self, start: int, stop: int, arrays: dict[str, np.ndarray]) -> None:
        """Atomically store the arrays of samples ``[start, stop)`` (first axis of every array).

        Raises
        ------
        ValueError
            If an array does not hold ``stop - start`` samples or is complex (fields are real).
        NonFiniteError
            If an array holds NaN or infinite values (naming the array and the first sample).
        """
        for name, array in arrays.items():
            if array.shape[0] != stop - start:
                raise ValueError(f"array {name!r} holds {array.shape[0]} samples, expected {stop - start}")
            if np.iscomplexobj(array):
                raise ValueError(f"array {name!r} is complex ({array.dtype}); pdeinv stores real fields")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(1))
                raise NonFiniteError(
                    f"the solver produced NaN or infinite values in {name!r} for sample(s) "
                    f"{(bad + start).tolist()[:10]}; nothing was stored for samples {start}..{stop - 1}"
                )
        path = self.directory / f"shard-{start:09d}-{stop:09d}.npz"
        _write_atomic(path, lambda handle: np.savez(handle, **arrays))

    def shards(self, n: int) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """Yield ``(start, stop, arrays)`` for every shard in sample order; they must tile ``[0, n)`` exactly.

        Raises
        ------
        ValueError
            If samples are missing or held twice (a parts directory that was tampered with).
        """
        ranges = self.ranges()
        edges = [0] + [stop for _, stop in ranges]
        if [start for start, _ in ranges] != edges[:-1] or edges[-1] != n:
            raise ValueError(
                f"the shards in {self.directory} do not cover samples 0..{n - 1} exactly once ({ranges}); "
                f"delete {self.directory} and generate again"
            )
        for start, stop in ranges:
            yield start, stop, self._read(self.directory / f"shard-{start:09d}-{stop:09d}.npz")

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        """The arrays of one shard (no pickle), or a :class:`~pdeinv.errors.PdeinvError` naming a corrupt shard."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            raise PdeinvError(
                f"the shard {path} is corrupt ({type(err).__name__}: {err}); delete it and run the same command "
                "again to regenerate its samples"
            ) from err

    def temporary_output(self) -> Path:
        """Where the final file is assembled before it is renamed onto ``out``."""
        return self.directory / "assembled.h5.tmp"

    def commit(self) -> None:
        """Rename the assembled file onto ``out`` and remove the parts directory."""
        os.replace(self.temporary_output(), self.out)
        self.remove()

    def remove(self) -> None:
        """Delete the parts directory (and release the lock)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
