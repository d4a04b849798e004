"""Output files that are checked before the work starts and never left half-written.

``check_writable(path)`` says, before a long run, whether ``path`` can be created (its folder
exists and is writable, it is not a directory); ``atomic_write(path)`` writes to a temporary file
in the same folder and renames it over ``path`` only when the block finishes without an
exception, so a reader sees the old file or the complete new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from machaon.errors import UsageError


class OutputPathError(UsageError):
    """An output path cannot be written (missing folder, no permission, a directory): bad input,
    exit code 2 in the CLI."""


def check_writable(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """``path`` as a ``Path`` if a file can be created or replaced there; ``OutputPathError``
    saying what to fix otherwise. Creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {p}: is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        for up in parent.parents:
            if up.exists() and not up.is_dir():
                raise OutputPathError(f"{what} {p}: {up} is a file, not a folder")
        if parent.exists():
            raise OutputPathError(f"{what} {p}: {parent} is not a folder")
        raise OutputPathError(f"{what} {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {p}: no permission to write in {parent}")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{what} {p}: file is not writable")
    return p


def check_output_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """``path`` as a ``Path`` if it is, or can be created as, a writable folder (with any missing
    parents, as ``mkdir(parents=True)`` does: ``out/demo`` on a fresh clone); ``OutputPathError``
    otherwise. Creates nothing."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise OutputPathError(f"{what} {p}: exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what} {p}: no permission to write in it")
        return p
    up = p.absolute().parent
    while not up.exists():
        up = up.parent
    if not up.is_dir():
        raise OutputPathError(f"{what} {p}: {up} is a file, not a folder")
    if not os.access(up, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {p}: no permission to create folders in {up}")
    return p


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8",
                 file_mode: int = 0o644) -> Iterator[IO]:
    """Open a temporary file beside ``path`` (``mode`` "w" or "wb"); on success it is flushed,
    synced and renamed to ``path`` (mode ``file_mode``); on an exception it is removed and
    ``path`` is untouched. A symlink at ``path`` is replaced, never followed."""
    p = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
