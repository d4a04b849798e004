"""The operator console: a terminal UI (textual) that works over SSH.

Keys (also listed in the footer):

==========  ==========================================================
w / s       jog +x / -x          a / d   jog +y / -y
r / f       jog +z / -z          i / k   rotate about +x / -x
j / l       rotate about +y / -y u / o   rotate about +z / -z
t           toggle jog frame (tool / base)
space       clutch (engage / release; a fresh press resumes after a HOLD)
m           mode (FOLLOW / HOLD)
+ / -       speed scale up / down (0.1 .. 1.0)
] / [       motion scale up / down (1:1 .. 5:1)
e           E-STOP (latched on the robot)
x           reset an E-stop, a protective stop or a servo fault
q           quit
==========  ==========================================================

With ``device`` (a running ``machaon.teleop.device_driver.DeviceTeleop``: a 3D mouse or a gamepad)
the device's dead man's button is the clutch and its axes jog the tool; the keys still work, and
the operator panel shows the device's state (LOST puts the robot in HOLD).

Panels: link health (RTT p50/p99, jitter, loss, one-way estimate, state age), robot pose
(measured, delayed by the link; predicted = measured extrapolated over the state's age plus the
one-way delay; commanded target) and tool force, supervisor state, and an event log. Lengths are
shown in mm and angles in degrees (converted here, at the edge); everything inside is SI.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable

import numpy as np
from scipy.spatial.transform import Rotation
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, RichLog, Static

from machaon.teleop.client import TeleopClient
from machaon.teleop.messages import MAX_STEP_M, MAX_STEP_RAD, OperatorMode

JOG_STEP_M = 0.001  # one key press at speed scale 1 (m)
JOG_STEP_RAD = math.radians(2.0)
assert JOG_STEP_M <= MAX_STEP_M and JOG_STEP_RAD <= MAX_STEP_RAD

_JOG = {
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "i": (3, 1), "k": (3, -1), "j": (4, 1), "l": (4, -1), "u": (5, 1), "o": (5, -1),
}


def _mm(p: Iterable[float]) -> str:
    return "[" + ", ".join(f"{x * 1e3:8.2f}" for x in p) + "] mm"


def _ms(x: float) -> str:
    return "   -   " if not math.isfinite(x) else f"{x * 1e3:7.2f}"


class _PanelLog(logging.Handler):
    """Routes log records into the event panel (a stream handler would scribble over the UI)."""

    def __init__(self, app: ConsoleApp) -> None:
        super().__init__(logging.INFO)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        msg = f"{record.levelname.lower()}: {record.getMessage()}"
        try:
            if threading.get_ident() == self.app._thread_id:
                self.app.log_event(msg)
            else:
                self.app.call_from_thread(self.app.log_event, msg)
        except Exception:  # app shutting down: drop the line rather than raise in a logger
            pass


class ConsoleApp(App):
    """Textual app over a started ``TeleopClient``."""

    CSS = """
    #panels { height: 1fr; }
    .panel { border: round $accent; padding: 0 1; width: 1fr; }
    #events { height: 12; border: round $warning; }
    """
    BINDINGS = [
        *[Binding(k, f"jog('{k}')", f"jog {k}", show=False) for k in _JOG],
        Binding("space", "clutch", "clutch"),
        Binding("t", "frame", "tool/base"),
        Binding("m", "mode", "mode"),
        Binding("plus,equals_sign", "speed(1)", "speed+"),
        Binding("minus", "speed(-1)", "speed-"),
        Binding("right_square_bracket", "scale(1)", "scale+"),
        Binding("left_square_bracket", "scale(-1)", "scale-"),
        Binding("e", "estop", "E-STOP"),
        Binding("x", "reset", "reset"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, client: TeleopClient, refresh_hz: float = 10.0, device: object | None = None) -> None:
        super().__init__()
        self.client = client
        self.device = device
        self.client.input.master = False  # keyboard: heartbeats + jog increments
        self.refresh_hz = refresh_hz
        self._last_sup: tuple | None = None
        self._last_drops = 0

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with Horizontal(id="panels"):
            with Vertical():
                yield Static(id="link", classes="panel")
                yield Static(id="operator", classes="panel")
            with Vertical():
                yield Static(id="robot", classes="panel")
                yield Static(id="supervisor", classes="panel")
        yield RichLog(id="events", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        root = logging.getLogger()
        self._saved_handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
        for h in self._saved_handlers:
            root.removeHandler(h)
        self._panel_log = _PanelLog(self)
        root.addHandler(self._panel_log)
        self.title = f"Machaon teleop console -> {self.client.server[0]}:{self.client.server[1]}"
        self.log_event("connected; press space to engage the clutch, e for E-STOP")
        self.set_interval(1.0 / self.refresh_hz, self.refresh_panels)
        self.refresh_panels()

    def on_unmount(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._panel_log)
        for h in self._saved_handlers:
            root.addHandler(h)

    # -- actions ---------------------------------------------------------------------------------------
    def log_event(self, text: str) -> None:
        self.query_one("#events", RichLog).write(text)

    def action_jog(self, key: str) -> None:
        axis, sign = _JOG[key]
        u = self.client.input
        inc = np.zeros(6)
        inc[axis] = sign * (JOG_STEP_M if axis < 3 else JOG_STEP_RAD) * u.speed_scale
        if not u.clutch:
            self.log_event("jog ignored: clutch released (space to engage)")
            return
        self.client.jog(inc)

    def action_clutch(self) -> None:
        u = self.client.input
        u.clutch = not u.clutch
        self.log_event(f"clutch {'ENGAGED' if u.clutch else 'released'}")

    def action_frame(self) -> None:
        u = self.client.input
        u.tool_frame = not u.tool_frame
        self.log_event(f"jog frame: {'tool' if u.tool_frame else 'base'}")

    def action_mode(self) -> None:
        u = self.client.input
        u.mode = OperatorMode.HOLD if u.mode == OperatorMode.FOLLOW else OperatorMode.FOLLOW
        self.log_event(f"mode {u.mode.name}")

    def action_speed(self, d: int) -> None:
        u = self.client.input
        u.speed_scale = float(np.clip(round(u.speed_scale + 0.1 * d, 2), 0.1, 1.0))
        self.log_event(f"speed scale {u.speed_scale:.1f}")

    def action_scale(self, d: int) -> None:
        u = self.client.input
        u.motion_scale = float(np.clip(u.motion_scale + 0.5 * d, 1.0, 5.0))
        self.log_event(f"motion scale {u.motion_scale:.1f}:1")

    def action_estop(self) -> None:
        self.client.input.estop = True
        self.client.input.clutch = False
        self.log_event("[b red]E-STOP sent[/]")

    def action_reset(self) -> None:
        self.client.input.reset = True
        self.log_event("reset requested")

    # -- panels ----------------------------------------------------------------------------------------
    def refresh_panels(self) -> None:
        c = self.client
        h = c.health()
        self.query_one("#link", Static).update(
            "[b]Link health[/]\n"
            f"RTT p50 {_ms(h.rtt_p50_s)} ms   p99 {_ms(h.rtt_p99_s)} ms\n"
            f"one-way est {_ms(h.one_way_s)} ms   jitter {_ms(h.jitter_s)} ms\n"
            f"state loss {h.loss * 100 if math.isfinite(h.loss) else float('nan'):6.2f} %   "
            f"age {_ms(h.age_s)} ms\n"
            f"received {h.received}   dropped here {c.endpoint.drops.total}"
        )
        u = c.input
        self.query_one("#operator", Static).update(
            "[b]Operator[/]\n"
            f"clutch {'[b green]ENGAGED[/]' if u.clutch else 'released'}   mode {u.mode.name}\n"
            f"jog frame {'tool' if u.tool_frame else 'base'}   speed {u.speed_scale:.1f}   "
            f"scale {u.motion_scale:.1f}:1"
            + ("" if self.device is None else f"\ndevice {self.device.status}")
        )
        s = c.latest
        if s is None:
            self.query_one("#robot", Static).update("[b]Robot[/]\nwaiting for state ...")
            return
        rpy = Rotation.from_quat(s.quat_base_tool).as_euler("xyz", degrees=True)
        pred = c.predicted_position()
        f = np.asarray(s.wrench[:3])
        self.query_one("#robot", Static).update(
            "[b]Robot (base frame)[/]\n"
            f"measured  {_mm(s.p_base_tool)}  (delayed)\n"
            f"predicted {_mm(pred) if pred is not None else '-'}\n"
            f"target    {_mm(s.p_target)}\n"
            f"rpy [{rpy[0]:7.1f}, {rpy[1]:7.1f}, {rpy[2]:7.1f}] deg\n"
            f"force {np.linalg.norm(f):6.2f} N  [{f[0]:6.2f}, {f[1]:6.2f}, {f[2]:6.2f}]"
        )
        colour = {"OK": "green", "HOLD": "yellow", "ESTOP": "red", "FAULT": "red"}[s.supervisor.name]
        self.query_one("#supervisor", Static).update(
            "[b]Supervisor[/]\n"
            f"state [b {colour}]{s.supervisor.name}[/]   hold reason {s.hold_reason.name}\n"
            f"E-stop {'[b red]LATCHED[/]' if s.estop_latched else 'clear'}   robot clutch {s.clutch}\n"
            f"robot t {s.t_robot:9.3f} s   last cmd seq {s.last_seq}   robot drops {s.dropped_packets}"
        )
        key = (s.supervisor, s.hold_reason, s.estop_latched)
        if key != self._last_sup:
            self.log_event(f"robot: {s.supervisor.name} (hold reason {s.hold_reason.name}"
                           f"{', E-stop latched' if s.estop_latched else ''})")
            self._last_sup = key
        if s.dropped_packets != self._last_drops:
            self.log_event(f"robot dropped {s.dropped_packets - self._last_drops} packet(s)")
            self._last_drops = s.dropped_packets
