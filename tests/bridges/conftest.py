"""Shared pieces of the bridge tests: the project's arm (chain with its drill guide) and a loop on it."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.kinematics import Chain
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.robot.link_frames import LinkFrames
from machaon.types import JointCommand


@pytest.fixture(scope="session")
def arm():
    desc = load_description("machaon_arm")
    tool = desc.tool("drill_guide")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(tool.T_flange_tcp)
    return desc, chain, tool.tcp_link


class Wave:
    """Joint positions swinging about ``q0``: every joint moves, so every link's pose changes."""

    def __init__(self, q0: np.ndarray, amp: float = 0.3, hz: float = 0.7) -> None:
        self.q0, self.amp, self.hz = np.asarray(q0, dtype=float), amp, hz

    def update(self, state: object, t: float) -> JointCommand:
        k = np.arange(len(self.q0)) + 1.0
        return JointCommand.position(self.q0 + self.amp * np.sin(2 * np.pi * self.hz * t / k + k))


def make_backend(desc, clock=None) -> FakeBackend:
    return FakeBackend(desc.dof, q0=np.array(desc.q_home), joint_names=desc.joint_names, clock=clock)


def relaxed_supervisor() -> Supervisor:
    """No timing watchdog: these tests are about the bridges, not about a loaded machine's scheduling."""
    return Supervisor(SafetyConfig(period_max_s=5.0, target_timeout_s=None, tool_speed_max=None))


def link_frames(arm) -> LinkFrames:
    _desc, chain, tcp = arm
    return LinkFrames.from_chain(chain, tool_frame=tcp)


@pytest.fixture
def key_file(tmp_path):
    from machaon.teleop.keys import write_key

    p = tmp_path / "teleop.key"
    write_key(p, bytes(range(100, 132)))
    return p


def assert_loop_undisturbed(loop, cycles_before: int, min_cycles: int = 20) -> None:
    """The loop still runs, with its recorder, in RUN, and kept cycling."""
    import time

    from machaon.control.supervisor import SupervisorState

    time.sleep(0.3)
    assert loop.running and loop.error is None and loop.recorder is not None
    assert loop.supervisor.state is SupervisorState.RUN
    assert loop.cycles > cycles_before + min_cycles
