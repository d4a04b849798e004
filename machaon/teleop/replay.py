"""Headless replay of an ``OperatorScript`` through a ``TeleopClient`` in real time.

``machaon teleop console --script FILE`` uses it (no terminal UI); so do the end-to-end tests.
The result lists what was sent and what came back, so a run can be compared with another.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from machaon.teleop.client import TeleopClient
from machaon.teleop.endpoint import LinkHealth
from machaon.teleop.messages import RobotStateMsg
from machaon.teleop.script import OperatorScript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptReplay:
    """``t_sent``/``p_master``: script samples applied (client monotonic time, operator frame, m);
    ``states``: (arrival time, robot state) received; ``health``: link health at the end."""

    t_sent: np.ndarray
    p_master: np.ndarray
    states: tuple[tuple[float, RobotStateMsg], ...]
    health: LinkHealth


def replay(client: TeleopClient, script: OperatorScript, *, settle_s: float = 0.5) -> ScriptReplay:
    """Apply ``script`` to ``client.input`` at ``script.rate_hz`` for its duration plus ``settle_s``
    (the client's sender thread streams the input). The client must be started."""
    period = 1.0 / script.rate_hz
    t0 = time.monotonic()
    t_prev = -np.inf
    ts, ps = [], []
    u = client.input
    while True:
        now = time.monotonic()
        t = now - t0
        if t > script.duration + settle_s:
            break
        s = script.sample(t, t_prev)
        t_prev = t
        u.p, u.quat, u.clutch, u.mode = s.p, s.quat, s.clutch, s.mode
        u.speed_scale, u.motion_scale = s.speed_scale, s.motion_scale
        if s.estop:
            u.estop = True
            log.warning("script: E-stop at t=%.3f", t)
        if s.reset:
            u.reset = True
        ts.append(now)
        ps.append(s.p)
        time.sleep(max(0.0, t0 + (len(ts)) * period - time.monotonic()))
    return ScriptReplay(np.asarray(ts), np.asarray(ps), tuple(client.history()), client.health())
