"""Repeating warnings are summarised: per cause the first at once, then at most one line per second
with counts (``RateLimitedLog``), as the supervisor does for transient device faults."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from machaon.control.ratelog import RateLimitedLog
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.types import DeviceFault, JointCommand, JointState

_log = logging.getLogger("tests.ratelog")


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _lines(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


def test_first_at_once_then_one_summary_per_interval_per_cause(caplog):
    caplog.set_level(logging.WARNING)
    clock = FakeClock()
    rl = RateLimitedLog(_log, interval_s=1.0, clock=clock)
    assert rl.log("timeout", "joint 0", "servo 1: no answer")  # the first: logged at once
    for k in range(999):  # 1 kHz for a second: counted, not logged
        clock.t += 0.001
        assert not rl.log("timeout", f"joint {k % 3}", f"servo {k % 3 + 1}: no answer")
    assert rl.log("crc", "joint 4", "servo 5: bad checksum")  # another cause has its own budget
    clock.t += 0.0011
    assert rl.log("timeout", "joint 1", "servo 2: no answer")  # a second has passed: the summary
    lines = _lines(caplog, "tests.ratelog")
    assert lines[:2] == ["servo 1: no answer", "servo 5: bad checksum"]
    assert len(lines) == 3
    assert lines[2].startswith("timeout: 1000 more in the last 1.0 s (joint 0, joint 1, joint 2)")
    assert lines[2].endswith("latest: servo 2: no answer")
    assert rl.total == {"timeout": 1001, "crc": 1}
    # what is left is written by flush(), once
    clock.t += 0.2
    rl.log("timeout", "joint 2", "servo 3: no answer")
    rl.flush()
    rl.flush()
    lines = _lines(caplog, "tests.ratelog")
    assert len(lines) == 4 and lines[3].startswith("timeout: 1 more in the last 0.2 s (joint 2)")
    with pytest.raises(ValueError, match="interval_s"):
        RateLimitedLog(_log, interval_s=0.0)


def test_supervisor_summarises_per_joint_comm_timeouts(caplog):
    """Six servos time out for 2.5 s of a 1 kHz loop (transient: each read still succeeds often
    enough): three lines, not 15 000, and the loop keeps running."""
    caplog.set_level(logging.WARNING, logger="machaon.control.supervisor")
    clock = FakeClock()
    sup = Supervisor(SafetyConfig(fault_cycles=10))
    sup._fault_log.clock = clock  # the log's wall clock, here stepped with the loop's
    faults = tuple(DeviceFault(f"dxl:{j + 1}", "comm_timeout", f"servo {j + 1}: no valid status (timeout)", j)
                   for j in range(6))
    q = np.zeros(6)
    for i in range(2500):
        clock.t += 0.001
        state = JointState(i * 0.001, q, q, q, None, faults, True)
        sup.check(state, JointCommand.torque(q), i * 0.001)
    assert sup.state is SupervisorState.RUN
    lines = [m for m in _lines(caplog, "machaon.control.supervisor") if "comm_timeout" in m]
    assert len(lines) == 3, lines
    assert lines[0] == "device fault dxl:1/comm_timeout (joint 0): servo 1: no valid status (timeout)"
    counts = []
    for line in lines[1:]:
        m = re.fullmatch(r"device fault comm_timeout: (\d+) more in the last 1\.0 s "
                         r"\(dxl:1, dxl:2, dxl:3, dxl:4, dxl:5, dxl:6\); latest: device fault dxl:\d/comm_timeout "
                         r"\(joint \d\): servo \d: no valid status \(timeout\)", line)
        assert m, line
        counts.append(int(m.group(1)))
    assert all(abs(c - 6000) <= 6 for c in counts), counts  # a second of six joints at 1 kHz
    assert sup._fault_log.total == {"device fault comm_timeout": 15000}
