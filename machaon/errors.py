"""The root of every exception Machaon defines.

Every exception class in the package derives from :class:`MachaonError`, so a caller (the CLI
above all) can catch everything Machaon raises on purpose in one place and tell it apart from a
bug. Classes that callers also catch as a built-in keep that built-in as a second base (a bad
argument is a ``MachaonError`` and a ``ValueError``).
"""

from __future__ import annotations


class MachaonError(Exception):
    """Base of every exception Machaon raises on purpose (bad input, device faults, failed plans)."""
