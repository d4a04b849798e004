"""Pre-shared key files for the teleoperation link.

A key file holds one 32-byte key as 64 hexadecimal characters (one line, optional trailing
newline). It must be private to its owner: ``load_key`` refuses a file that group or others can
read or write (mode & 0o077), because anyone who can read it can drive the robot.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from machaon.errors import TeleopError

log = logging.getLogger(__name__)

KEY_BYTES = 32


class KeyFileError(TeleopError):
    """A key file is missing, malformed or has unsafe permissions."""


def generate_key() -> bytes:
    """A fresh random 32-byte key from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def write_key(path: str | os.PathLike[str], key: bytes | None = None, *, overwrite: bool = False) -> bytes:
    """Write ``key`` (a new random one if None) to ``path`` with mode 0600 and return it.

    The file is created with 0600 from the start (never world-readable, not even briefly). A
    symlink at ``path`` is refused, never followed (``overwrite`` would otherwise replace and chmod
    whatever it points to). Raises ``KeyFileError`` if the file exists and ``overwrite`` is False,
    ``path`` is a symlink or its folder does not exist, or the key is not 32 bytes.
    """
    key = generate_key() if key is None else bytes(key)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key must be {KEY_BYTES} bytes, got {len(key)}")
    p = Path(path)
    if p.is_symlink():
        raise KeyFileError(f"{p}: is a symlink; give the real path (a key file is never written through a link)")
    if not p.parent.is_dir():
        raise KeyFileError(f"{p}: folder {p.parent} does not exist")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{p}: exists (use overwrite to replace it)") from None
    except OSError as exc:  # ELOOP: a symlink appeared meanwhile; EISDIR, EACCES ...
        raise KeyFileError(f"{p}: cannot write the key file: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(key.hex() + "\n")
    return key


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a 32-byte key from ``path``.

    Raises ``KeyFileError`` when the file is missing, is not a regular file, is readable or
    writable by group/others, or does not hold exactly 64 hex characters.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{p}: key file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{p}: not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{p}: unsafe permissions {stat.filemode(st.st_mode)}; the key must be private "
            f"(chmod 600 {p})"
        )
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{p}: not a hex key") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{p}: key must be {KEY_BYTES} bytes ({2 * KEY_BYTES} hex digits), got {len(key)}")
    return key
