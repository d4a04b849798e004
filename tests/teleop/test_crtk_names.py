"""The teleoperation server's robot-facing API in CRTK's names and states."""

from __future__ import annotations

import time

import numpy as np

from machaon.control.impedance import CartesianGains, CartesianImpedance
from machaon.kinematics import Chain
from machaon.robot.clock import MonotonicClock
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.teleop.mapping import TeleopConfig
from machaon.teleop.server import RobotServer, build_supervisor
from tests.robot.latching import LatchingBackend


def test_server_speaks_crtk():
    desc = load_description("machaon_arm")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    backend = FakeBackend(desc.dof, q0=np.array(desc.q_home), clock=MonotonicClock(spin_s=0.0))
    backend.set_wrench_tool(np.array([0.0, 0.0, -3.0, 0.0, 0.0, 0.0]))
    config = TeleopConfig()
    sup = build_supervisor(chain, config, period_max_s=2.0)
    inner = CartesianImpedance(chain, CartesianGains.isotropic(300.0, 10.0))
    server = RobotServer(backend, chain, inner, bytes(32), config=config, supervisor=sup, rate_hz=200)
    assert server.operating_state() == "DISABLED"
    with server:
        time.sleep(0.1)
        assert server.operating_state() == "PAUSED"  # the server starts holding, waiting for the operator
        q, dq, tau = server.measured_js()
        assert np.allclose(q, desc.q_home, atol=1e-3) and dq.shape == tau.shape == (6,)
        assert np.allclose(server.measured_cp(), chain.fk(q), atol=1e-9)
        assert np.allclose(server.measured_cf(), [0, 0, -3.0, 0, 0, 0])
        assert server.setpoint_cp().shape == (4, 4)
        assert server.enable() and server.operating_state() == "ENABLED"
        server.hold()
        assert server.operating_state() == "PAUSED"
        sup.protective_stop("test")
        assert server.operating_state() == "FAULT"
        time.sleep(0.2)
        assert server.enable()
        server.disable()
        assert server.operating_state() == "DISABLED"


def test_enable_sets_a_latched_backend_up_again():
    """CRTK ``enable`` on the server leaves a stop caused by a latched device fault, as the
    operator's RESET does (before, the supervisor's reset was undone by the next read)."""
    desc = load_description("machaon_arm")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    backend = LatchingBackend(desc.dof, q0=np.array(desc.q_home), clock=MonotonicClock(spin_s=0.0))
    config = TeleopConfig()
    sup = build_supervisor(chain, config, period_max_s=2.0)
    inner = CartesianImpedance(chain, CartesianGains.isotropic(300.0, 10.0))
    with RobotServer(backend, chain, inner, bytes(32), config=config, supervisor=sup, rate_hz=200) as server:
        assert server.enable()
        backend.trip()
        deadline = time.monotonic() + 2.0
        while server.operating_state() != "FAULT" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.operating_state() == "FAULT"
        assert server.enable() and server.operating_state() == "ENABLED"
        time.sleep(0.1)
        assert server.operating_state() == "ENABLED"
        assert backend.resets_served == 1 and backend.latched_fault is None
