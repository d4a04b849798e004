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
def server_process(key_file):
    """(host, port) of a simulated robot server process; stopped at the end of the test."""
    port = free_port()
    cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "sim",
           "--listen", f"127.0.0.1:{port}", "--key", str(key_file), "--stats-s", "0", "--duration", "60",
           "--timeout-ms", "250"]  # generous: the test machine is shared and loaded
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t_end = time.monotonic() + 30
    lines = []
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        lines.append(line)
        if "teleop server (sim) on" in line:
            break
        if proc.poll() is not None:
            raise RuntimeError("server did not start:\n" + "".join(lines) + proc.stdout.read())
    else:
        proc.kill()
        raise RuntimeError("server did not start in 30 s:\n" + "".join(lines))
    try:
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
