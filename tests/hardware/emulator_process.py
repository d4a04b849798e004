"""A ``ChainEmulator`` in its own process, as ``machaon hw emulate`` runs it for users.

In the test process the emulator's serving thread shares the GIL with pytest's threads (an
operator client sending at 100 Hz and receiving, polling loops doing forward kinematics): each of
them can hold a status packet back, and on a loaded machine long enough for the host's reply
deadline to pass, which a servo chain (its own microcontrollers) never does. In its own process
only the OS scheduler stands between a request and its answer. The test reads the servos'
control-table items through a pipe (one round trip per query).
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterable
from multiprocessing.connection import Connection


def _serve(conn: Connection, ids: list[int], kwargs: dict) -> None:
    """Child: run the emulator, answer item queries until told to stop (or the parent is gone)."""
    from machaon.hardware.emulator import ChainEmulator

    sys.setswitchinterval(5e-4)  # this thread's queries never hold the serving thread back for long
    try:
        em = ChainEmulator(ids, **kwargs)
    except Exception as exc:  # a bad argument: say so in the parent
        conn.send(("error", repr(exc)))
        return
    with em:
        conn.send(("port", em.port))
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            item, query_ids = msg
            try:
                conn.send(("ok", [em.servo(i).get(item) for i in query_ids]))
            except Exception as exc:
                conn.send(("error", repr(exc)))


class EmulatorProcess:
    """``ChainEmulator(ids, **kwargs)`` served by a child process; ``port`` is its pty.

    ``items(item, ids)`` reads one control-table item (``"present_position"``...) of each servo,
    as the servo's memory holds it. Use as a context manager; ``close()`` stops the child.
    """

    def __init__(self, ids: Iterable[int], *, start_timeout_s: float = 60.0, **kwargs: object) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of pytest's threads or locks
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, list(ids), kwargs), name="chain-emulator", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise RuntimeError(f"the emulator process did not start within {start_timeout_s:g} s")
        kind, value = self._conn.recv()
        if kind != "port":
            self.close()
            raise RuntimeError(f"the emulator process failed to start: {value}")
        self.port: str = value

    def items(self, item: str, ids: Iterable[int]) -> list[int]:
        self._conn.send((item, list(ids)))
        kind, value = self._conn.recv()
        if kind != "ok":
            raise RuntimeError(f"emulator query {item!r}: {value}")
        return value

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(5.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
