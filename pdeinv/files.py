"""Safe outputs: refuse to destroy a file, write atomically, check writability before the work.

Every command that writes goes through :func:`check_outputs` before it starts (so an output
that exists, equals an input or sits in an unwritable folder is reported at once, not after an
hour of work) and through :func:`atomic_write` when it writes (so a killed run leaves either the
old file or the complete new one, never a truncated one).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pdeinv.errors import OutputExistsError, UsageError


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in ``block``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_outputs(
    outputs: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
) -> list[Path]:
    """Check, before any work, that each output may be written.

    Parameters
    ----------
    outputs : iterable of path-like
        Files the command will write.
    inputs : iterable of path-like or None
        Files the command reads; an output equal to one of them is always refused.
    overwrite : bool
        Allow replacing an existing output (never an input).

    Returns
    -------
    list of pathlib.Path
        The output paths.

    Raises
    ------
    UsageError
        If an output is an input, is a directory, or its folder is missing or not writable.
    OutputExistsError
        If an output exists and ``overwrite`` is false.
    """
    outputs = [Path(p) for p in outputs]
    inputs = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        for source in inputs:
            if _same_file(out, source):
                raise UsageError(f"the output {out} is also an input of this command; choose another output path")
        if out.is_dir():
            raise UsageError(f"the output {out} is a directory; give a file path")
        if out.exists() and not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or choose another path")
        folder = out.parent if str(out.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"the folder of the output {out} does not exist; create {folder} first")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"cannot write into {folder} (permission denied); choose another output path")
    return outputs


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    If the block raises, the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result.json"
    >>> with atomic_write(out) as tmp:
    ...     _ = tmp.write_text(json.dumps({"rel_l2": 0.1}))
    >>> json.loads(out.read_text())
    {'rel_l2': 0.1}
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
