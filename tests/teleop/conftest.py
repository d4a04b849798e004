"""Shared fixtures: the robot server as its own process (``machaon teleop serve --backend sim``),
as it is deployed; the relay and the operator run in the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from machaon.teleop.keys import write_key
from tests.hardware.util import stop_process

PSK = bytes(range(100, 132))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def key_file(tmp_path):
    p = tmp_path / "teleop.key"
    write_key(p, PSK)
    assert (os.stat(p).st_mode & 0o777) == 0o600
    return p


@pytest.fixture
def server_process(key_file, tmp_path, request):
    """(host, port) of a simulated robot server process; stopped at the end of the test.

    Its command-gap timeout is 250 ms, or ``request.param`` ms (``indirect`` parametrisation) for a
    test that never means to cut the link: the test process (operator threads, a UI) can stall for
    longer than 250 ms on a loaded machine, and the server then holds and waits for a new clutch.
    The server writes to a file, not a pipe nobody reads after start-up (a full pipe would block it).
    """
    port = free_port()
    timeout_ms = getattr(request, "param", 250)
    cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "sim",
           "--listen", f"127.0.0.1:{port}", "--key", str(key_file), "--stats-s", "0", "--duration", "60",
           "--timeout-ms", str(timeout_ms)]  # 250: generous, the test machine is shared and loaded
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, text=True)
    t_end = time.monotonic() + 30
    while "teleop server (sim) on" not in log_path.read_text():
        if proc.poll() is not None:
            raise RuntimeError("server did not start:\n" + log_path.read_text())
        if time.monotonic() > t_end:
            proc.kill()
            proc.wait()
            raise RuntimeError("server did not start in 30 s:\n" + log_path.read_text())
        time.sleep(0.02)
    try:
        yield ("127.0.0.1", port)
    finally:
        stop_process(proc)
