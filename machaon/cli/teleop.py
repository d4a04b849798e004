"""``machaon teleop``: link profiles, the latency-injection relay, the robot server, the console.

Subcommands:

- ``netem``: UDP relay applying a link profile in both directions, with live statistics.
- ``serve``: the robot server (``--backend sim`` or ``hardware``; chosen here, by name).
- ``console``: the operator console (terminal UI), or ``--script FILE`` for a headless replay.
- ``sweep``: a scripted task through every link profile in simulation; table and plots (a front
  of the teleop study, ``machaon trial teleop``, on Ray).
- ``profiles``: list the link profiles.
- ``keygen``: a new pre-shared key file (mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from typing import TYPE_CHECKING

from machaon.cli._bridges import add_live_view_args, open_live_view, open_run_log
from machaon.cli._common import add_backend_arguments, command, open_backend
from machaon.errors import TeleopError, UsageError

if TYPE_CHECKING:  # the CLI imports its subsystems when a command runs, not at start-up
    from machaon.control.supervisor import Supervisor
    from machaon.robot.model import RobotModel
    from machaon.teleop.client import TeleopClient
    from machaon.teleop.mapping import TeleopConfig
    from machaon.teleop.profiles import LinkProfile
    from machaon.teleop.relay import RelayStats
    from machaon.teleop.replay import ScriptReplay
    from machaon.teleop.server import RobotServer

log = logging.getLogger("machaon.cli.teleop")

DEFAULT_SERVER = "127.0.0.1:47000"
# Default loop rate on a Dynamixel chain: a cycle (sync write + fast sync read of six servos at 4 Mbaud)
# measured 0.8 ms p50 / 1.2 ms p99 on the emulator's pty, and a USB adapter adds its latency timer
# (>= 1 ms) to every read, so 1 kHz overruns and times out; 250 Hz leaves margin (500 Hz on an idle host).
HARDWARE_RATE_HZ = 250.0


_TELEOP_HELP = ("teleoperation: netem (link-profile relay), serve (robot server), console (operator), "
                "sweep (every profile in sim), profiles, keygen")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teleop", help=_TELEOP_HELP)
    tsub = p.add_subparsers(dest="teleop_command", metavar="SUBCOMMAND", required=True)

    _register_netem(tsub)
    _register_serve(tsub)
    _register_console(tsub)
    _register_tools(tsub)


def _register_netem(tsub: argparse._SubParsersAction) -> None:
    n = tsub.add_parser("netem", help="UDP relay that injects a link profile's delay, jitter and loss")
    n.add_argument("--listen", required=True, metavar="HOST:PORT", help="where clients send (e.g. 127.0.0.1:47001)")
    n.add_argument("--to", required=True, metavar="HOST:PORT", help="where the relay forwards (the server)")
    n.add_argument("--profile", default="5g_sa_surgery", help="link profile name (see `teleop profiles`)")
    n.add_argument("--profiles-file", metavar="TOML", help="extra user profiles")
    n.add_argument("--delay-ms", type=float, help="override the mean one-way delay")
    n.add_argument("--jitter-ms", type=float, help="override the delay standard deviation")
    n.add_argument("--loss", type=float, help="override the loss rate (0..1)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--stats-s", type=float, default=1.0, help="statistics print interval (0: quiet)")
    n.add_argument("--duration", type=float, help="stop after this many seconds")
    n.add_argument("--rt-priority", type=int, default=10,
                   help="SCHED_FIFO priority of the release thread, so other processes cannot delay a "
                        "release (0: normal scheduling; refused without privileges, then normal)")
    n.set_defaults(func=_netem)


def _register_serve(tsub: argparse._SubParsersAction) -> None:
    s = tsub.add_parser("serve", help="run the robot server (control loop + authenticated link)")
    add_backend_arguments(s)
    s.add_argument("--listen", default=DEFAULT_SERVER, metavar="HOST:PORT")
    s.add_argument("--key", required=True, metavar="FILE", help="pre-shared key file (mode 0600)")
    s.add_argument("--rate-hz", type=float, default=None,
                   help=f"control loop rate (default: 1000 for sim, {HARDWARE_RATE_HZ:.0f} for hardware: one "
                        "cycle is a sync write plus a sync read of the whole chain, about 1-2 ms with the USB "
                        "adapter's 1 ms latency timer at 4 Mbaud, so a six-servo bus sustains 250-500 Hz, not 1 kHz)")
    s.add_argument("--home", action="store_true",
                   help="first move the arm to the description's home pose (joint-space, --home-speed); "
                        "needed when the arm starts outside the workspace box")
    s.add_argument("--home-speed", type=float, default=0.3, help="joint speed limit of the --home move (rad/s)")
    s.add_argument("--timeout-ms", type=float, default=100.0, help="command gap that puts the arm in HOLD")
    s.add_argument("--v-max", type=float, default=0.10, help="tool speed limit at speed scale 1 (m/s)")
    s.add_argument("--tremor-hz", type=float, default=4.0, help="tremor low-pass cut-off (0: off)")
    s.add_argument("--state-hz", type=float, default=100.0, help="state messages per second")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--stats-s", type=float, default=2.0, help="status print interval (0: quiet)")
    s.add_argument("--record", metavar="MCAP", help="record states, commands, targets and events (machaon log)")
    s.add_argument("--record-decimation", type=int, default=10, help="record every k-th control cycle")
    s.add_argument("--rt-priority", type=int, default=0,
                   help="SCHED_FIFO priority (1-99) of the control loop thread, so other processes cannot delay "
                        "its cycles (0: normal scheduling; refused without privileges, then normal)")
    add_live_view_args(s, fast=False)
    s.set_defaults(func=_serve)


def _register_console(tsub: argparse._SubParsersAction) -> None:
    c = tsub.add_parser("console", help="operator console (terminal UI; works over SSH)")
    c.add_argument("--connect", default=DEFAULT_SERVER, metavar="HOST:PORT")
    c.add_argument("--key", required=True, metavar="FILE")
    c.add_argument("--script", metavar="FILE", help="replay an operator script (JSON) headless")
    c.add_argument("--rate-hz", type=float, default=100.0, help="command stream rate")
    c.add_argument("--out", metavar="JSON", help="with --script: write a summary of the run here")
    c.add_argument("--device", metavar="PATH",
                   help="drive with a 3D mouse (3Dconnexion SpaceMouse) or a gamepad: /dev/input/eventN, a "
                        "/dev/input/by-id/ link, or 'auto'; hold its clutch button (SpaceMouse left button, "
                        "gamepad right shoulder) to move")
    c.add_argument("--device-kind", choices=("spacemouse", "gamepad"), help="override the detected device kind")
    c.add_argument("--device-speed", type=float, default=0.05,
                   help="tool speed at full deflection, m/s (default 0.05; rotation 0.5 rad/s)")
    c.set_defaults(func=_console)


def _register_tools(tsub: argparse._SubParsersAction) -> None:
    """``sweep``, ``profiles``, ``keygen``."""
    w = tsub.add_parser("sweep", help="scripted task through every link profile in simulation")
    w.add_argument("--profiles", help="comma-separated profile names (default: all)")
    w.add_argument("--profiles-file", metavar="TOML")
    w.add_argument("--task", choices=("square", "hold"), default="square")
    w.add_argument("--out", default="teleop_sweep", metavar="DIR", help="directory for table and plots")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--workers", type=int, metavar="N", help="CPUs for the runs (Ray; default: all)")
    w.set_defaults(func=_sweep)

    pr = tsub.add_parser("profiles", help="list the link profiles")
    pr.add_argument("--profiles-file", metavar="TOML")
    pr.set_defaults(func=_profiles)

    k = tsub.add_parser("keygen", help="write a new random pre-shared key file (mode 0600)")
    k.add_argument("path", help="key file to create")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.set_defaults(func=_keygen)


@command
def _keygen(args: argparse.Namespace) -> int:
    from machaon.teleop.keys import KeyFileError, write_key

    try:
        write_key(args.path, overwrite=args.force)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from exc
    print(f"wrote {args.path} (mode 0600)")
    return 0


@command
def _profiles(args: argparse.Namespace) -> int:
    from machaon.teleop.profiles import ProfileError, load_profiles

    try:
        profiles = load_profiles(args.profiles_file)
    except (ProfileError, OSError, ValueError) as exc:
        raise UsageError(f"{args.profiles_file}: {exc}" if isinstance(exc, UnicodeDecodeError) else str(exc)) from exc
    print(f"{'name':18s} {'delay ms':>9s} {'jitter ms':>9s} {'loss %':>7s} {'burst':>5s} {'outage':>12s}  description")
    for name, p in profiles.items():
        out = f"{p.outage_s * 1e3:.0f}ms/{p.outage_every_s:g}s" if p.outage_every_s and p.outage_s else "-"
        print(f"{name:18s} {p.delay_s * 1e3:9.2f} {p.jitter_s * 1e3:9.2f} {p.loss * 100:7.3f} "
              f"{p.loss_burst:5.1f} {out:>12s}  {p.description}")
    return 0


@command
def _netem(args: argparse.Namespace) -> int:
    from machaon.teleop.profiles import ProfileError, get_profile
    from machaon.teleop.relay import parse_hostport

    try:
        listen, to = parse_hostport(args.listen), parse_hostport(args.to)
        prof = get_profile(args.profile, args.profiles_file).with_overrides(
            delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, loss=args.loss)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    except ProfileError as exc:
        raise UsageError(str(exc)) from exc
    if not (0 <= args.stats_s < math.inf):
        raise UsageError(f"--stats-s must be >= 0, got {args.stats_s}")
    if args.duration is not None and not (0 < args.duration < math.inf):
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration}")
    # The relay's scheduler and receiver share the GIL; a shorter switch interval bounds how long
    # one can wait for the other (this process runs nothing else).
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(5e-4)
    try:
        return _run_relay(args, listen, to, prof)
    finally:
        sys.setswitchinterval(old_interval)


def _run_relay(args: argparse.Namespace, listen: tuple[str, int], to: tuple[str, int], prof: LinkProfile) -> int:
    from machaon.teleop.relay import UdpRelay

    try:
        relay = UdpRelay(listen, to, prof, seed=args.seed, rt_priority=args.rt_priority)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc}") from exc
    print(f"netem {args.listen} -> {args.to}: profile {prof.name} (delay {prof.delay_s * 1e3:.2f} ms, "
          f"jitter {prof.jitter_s * 1e3:.2f} ms, loss {prof.loss * 100:.3f} %)", flush=True)
    t_end = None if args.duration is None else time.monotonic() + args.duration
    with relay:
        try:
            while t_end is None or time.monotonic() < t_end:
                time.sleep(args.stats_s if args.stats_s > 0 else 0.5)
                if args.stats_s > 0:
                    _print_relay(relay.stats())
        except KeyboardInterrupt:
            pass
    _print_relay(relay.stats())
    return 0


def _print_relay(st: RelayStats) -> None:
    for name, d in (("up", st.up), ("down", st.down)):
        print(f"{name:4s} rx {d.received:7d} fwd {d.forwarded:7d} lost {d.link.lost:5d} "
              f"(ge {d.link.lost_random} outage {d.link.lost_outage} queue {d.link.lost_queue}) "
              f"dup {d.link.duplicated} reord {d.link.reordered} | delay p50 {d.delay_p50_s * 1e3:7.2f} "
              f"p99 {d.delay_p99_s * 1e3:7.2f} ms | release err p50 {d.release_err_p50_s * 1e6:6.1f} "
              f"p99 {d.release_err_p99_s * 1e6:7.1f} us", flush=True)


def _serve_settings(args: argparse.Namespace) -> tuple:
    """(key, listen address, description, robot model, TeleopConfig, loop rate Hz) from the flags."""
    from machaon.robot.description import DescriptionError, load_description
    from machaon.robot.model import robot_model
    from machaon.teleop.keys import KeyFileError, load_key
    from machaon.teleop.mapping import TeleopConfig
    from machaon.teleop.relay import parse_hostport

    try:
        psk = load_key(args.key)
        listen = parse_hostport(args.listen)
        desc = load_description(args.robot)
        model = robot_model(desc, args.tool)
        config = TeleopConfig(
            command_timeout_s=args.timeout_ms * 1e-3, v_max=args.v_max, tremor_cutoff_hz=args.tremor_hz,
            workspace_min=desc.workspace_min, workspace_max=desc.workspace_max, state_rate_hz=args.state_hz,
        )
    except (KeyFileError, DescriptionError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    from machaon._io import check_writable

    if args.record:  # outputs are checked before the arm moves, not after
        check_writable(args.record, what="--record")
    if args.record_decimation < 1:
        raise UsageError(f"--record-decimation must be >= 1, got {args.record_decimation}")
    if args.duration is not None and not (0 < args.duration < math.inf):
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration}")
    if not (0 <= args.stats_s < math.inf):
        raise UsageError(f"--stats-s must be >= 0, got {args.stats_s}")
    if not 0 <= args.rt_priority <= 99:
        raise UsageError(f"--rt-priority must be in 0..99, got {args.rt_priority}")
    rate_hz = args.rate_hz if args.rate_hz is not None else (1000.0 if args.backend == "sim" else HARDWARE_RATE_HZ)
    if not (0 < rate_hz < math.inf and 0 < args.home_speed < math.inf):
        raise UsageError("--rate-hz and --home-speed must be positive and finite")
    if args.backend == "hardware" and rate_hz > 2 * HARDWARE_RATE_HZ:
        log.warning("--rate-hz %g: above what a six-servo bus sustains (250-500 Hz at 4 Mbaud); expect "
                    "communication timeouts and overruns", rate_hz)
    return psk, listen, desc, model, config, rate_hz


@command
def _serve(args: argparse.Namespace) -> int:
    import numpy as np

    from machaon.robot.homing import HomingError, move_home
    from machaon.robot.model import outside_workspace
    from machaon.teleop.mapping import workspace_fixture
    from machaon.teleop.robot_setup import inner_controller
    from machaon.teleop.server import RobotServer

    psk, listen, desc, model, config, rate_hz = _serve_settings(args)
    # teleop drives the servos in current (torque) or position mode, not velocity
    backend = open_backend(args, desc=desc, modes=("current", "position", "current_position"))
    if args.backend == "sim":
        position = False
        fault_cycles = 3
    else:
        position = backend.config.mode in ("position", "current_position")
        # the config's lost_cycles says how many incomplete bus reads in a row this chain tolerates;
        # the supervisor's device check uses the same count
        fault_cycles = backend.config.lost_cycles
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(backend)
        except Exception as exc:  # port vanished, servo missing: say which and stop
            raise UsageError(f"{args.backend} backend: {exc}") from exc
        # The supervisor stops an arm whose tool starts outside the workspace box at once: check
        # here, and bring it home first when asked.
        start = backend.read()
        if not start.ok:
            raise UsageError(f"{args.backend} backend reports faults at start: {list(start.faults)}")
        why = outside_workspace(model, start.q)
        if args.home:
            print(f"homing to {np.round(np.rad2deg(desc.q_home), 1).tolist()} deg ...", flush=True)
            try:
                move_home(backend, model, position_mode=position, rate_hz=rate_hz, speed=args.home_speed,
                          fault_cycles=fault_cycles)
            except HomingError as exc:
                raise UsageError(str(exc)) from exc
        elif why is not None:
            raise UsageError(f"{why}; move the arm into the box or start with --home")
        inner = inner_controller(model, position_mode=position,
                                 fixtures=workspace_fixture(desc.workspace_min, desc.workspace_max))
        sup = _supervisor(model, config, position, fault_cycles, hardware=args.backend == "hardware")
        recorder = _serve_observers(args, stack, backend.joint_names, desc, model, rate_hz)
        try:
            server = RobotServer(backend, model.chain, inner, psk, listen=listen, config=config,
                                 supervisor=sup, rate_hz=rate_hz, recorder=recorder,
                                 realtime_priority=args.rt_priority or None)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.listen}: {exc}") from exc
        stack.callback(server.close)  # also when starting it fails half-way
        # The link thread shares the GIL with the control loop; a short switch interval bounds
        # how long a command or a state message waits for it (the default 5 ms, several times per
        # packet, shows up as tens of ms of "network" latency).
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(5e-4)
        try:
            server.start()  # the loop first (it holds the arm), then the network process
        except RuntimeError as exc:
            raise TeleopError(f"cannot start the server: {exc}") from exc
        print(f"teleop server ({args.backend}) on {server.address[0]}:{server.address[1]}", flush=True)
        _run_server(server, args.duration, args.stats_s)
    return 0


def _serve_observers(args: argparse.Namespace, stack: contextlib.ExitStack, joint_names: tuple[str, ...],
                     desc: object, model: RobotModel, rate_hz: float) -> object | None:
    """The run log (``--record``) and the Foxglove live view (``--foxglove-port``) of ``teleop serve``,
    each optional, as the loop's recorder; both show the workspace box. Bad paths or ports: UsageError."""
    from machaon.robot.link_frames import LinkFrames

    frames = LinkFrames.from_chain(model.chain, tool_frame=desc.tool(args.tool).tcp_link if args.tool else "tool")
    recorder = open_run_log(args, stack, {"source": "machaon teleop serve", "backend": args.backend,
                                          "robot": args.robot},
                            rate_hz=rate_hz, joint_names=joint_names, link_frames=frames)
    live = open_live_view(args, joint_names, frames)  # a taken port: exit 2, said in one line
    if live is not None:
        from machaon.robot.observers import Observers

        stack.enter_context(live)
        recorder = live if recorder is None else Observers(recorder, live)
    if recorder is not None:  # the run log shows the workspace box as the live view does
        from machaon.robot.topics import workspace_box_entity

        recorder.record_scene(0.0, [workspace_box_entity(desc.base_link, desc.workspace_min, desc.workspace_max)])
    return recorder


def _supervisor(model: RobotModel, config: TeleopConfig, position: bool, fault_cycles: int,
                hardware: bool = False) -> Supervisor:
    """The teleop supervisor: the robot's safety settings, hold/stop in the servos' mode; on hardware
    also the joint speed limits and 1.5 x the effort limits on the measured torque."""
    import numpy as np

    from machaon.robot.model import safety_settings
    from machaon.teleop.server import build_supervisor
    from machaon.types import CommandMode

    safety = safety_settings(model)
    safety["fault_cycles"] = fault_cycles
    if hardware:  # joint speed and measured torque act on the servos too
        safety["dq_max"] = np.asarray(model.desc.velocity_limit, dtype=float)
        safety["tau_measured_max"] = 1.5 * np.asarray(model.desc.effort_limit, dtype=float)
    if position:  # the supervisor's hold/stop commands must be in the servos' mode
        safety["hold_mode"] = CommandMode.POSITION
    return build_supervisor(model.chain, config, None if position else model.dynamics, **safety)


def _run_server(server: RobotServer, duration: float | None, stats_s: float) -> None:
    """Serve for ``duration`` s (None: until Ctrl-C), printing statistics every ``stats_s`` s."""
    t_end = None if duration is None else time.monotonic() + duration
    t_print = time.monotonic() + stats_s
    try:
        while t_end is None or time.monotonic() < t_end:
            time.sleep(0.1)
            if server.loop.error is not None:
                raise UsageError(f"control loop stopped: {server.loop.error}")
            if server.link_error is not None:
                raise TeleopError(f"network link stopped: {server.link_error}")
            if stats_s > 0 and time.monotonic() >= t_print:
                t_print += stats_s
                _print_server(server)
    except KeyboardInterrupt:
        pass
    _print_server(server)


def _print_server(server: RobotServer) -> None:
    st = server.stats()
    snap = server.controller.snapshot()
    pos = "" if snap is None else " tool [" + ", ".join(f"{x * 1e3:7.1f}" for x in snap.T_base_tool[:3, 3]) + "] mm"
    rtt = st.link.rtt_p50_s * 1e3
    print(f"{st.supervisor.value:15s} hold={st.hold_reason.name:11s} cmds {st.accepted:6d} "
          f"dropped {sum(st.dropped.values()):4d} {dict(st.dropped) or ''} rtt p50 {rtt:6.2f} ms"
          f"{pos}", flush=True)


def _connect(client: TeleopClient) -> None:
    """Handshake with the server; a ``TeleopError`` (exit 1: a failure) saying why when it does not answer."""
    from machaon.teleop.client import ConnectError

    try:
        client.connect()
    except ConnectError as exc:
        client.close()
        raise TeleopError(str(exc)) from exc


@command
def _console(args: argparse.Namespace) -> int:
    from machaon._io import atomic_write, check_writable
    from machaon.teleop.client import TeleopClient
    from machaon.teleop.keys import KeyFileError, load_key
    from machaon.teleop.relay import parse_hostport

    try:
        psk = load_key(args.key)
        server = parse_hostport(args.connect)
    except (KeyFileError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if args.out:
        check_writable(args.out, what="--out")  # before connecting, not after the run
    if not (0 < args.rate_hz <= 1000):
        raise UsageError(f"--rate-hz must be in (0, 1000], got {args.rate_hz}")
    if args.script:
        from machaon.teleop.replay import replay
        from machaon.teleop.script import OperatorScript, ScriptError

        try:
            script = OperatorScript.load(args.script)
        except (ScriptError, OSError) as exc:
            raise UsageError(str(exc)) from exc
        client = TeleopClient(server, psk, rate_hz=args.rate_hz)
        _connect(client)
        with client.start():
            res = replay(client, script)
        summary = _replay_summary(res)
        text = json.dumps(summary, indent=2, allow_nan=False)
        print(text)
        if args.out:
            with atomic_write(args.out) as fh:
                fh.write(text + "\n")
        if not res.states:
            # the handshake worked but the robot never answered: another operator holds it (one at a
            # time), or everything we send is dropped; either way the script did not run
            raise TeleopError("connected, but the robot sent no state in the whole run: another operator is "
                              "driving it, or its link drops our commands (see the server's log)")
        return 0
    from machaon.teleop.console import ConsoleApp

    source = None
    if args.device:
        from machaon.teleop.input_device import open_device

        if not (0 < args.device_speed <= 0.5):
            raise UsageError("--device-speed: must be in (0, 0.5] m/s")
        source = open_device(args.device, args.device_kind)  # DeviceError: one line, exit 2
    client = TeleopClient(server, psk, rate_hz=args.rate_hz)
    _connect(client)
    with client.start(), contextlib.ExitStack() as stack:
        device = None
        if source is not None:
            from machaon.teleop.device_driver import DeviceTeleop
            from machaon.teleop.device_mapping import profile_for

            stack.enter_context(source)
            profile = profile_for(source.info, v_max_m_s=args.device_speed, w_max_rad_s=10 * args.device_speed)
            device = stack.enter_context(DeviceTeleop(client, source, profile, rate_hz=args.rate_hz))
        ConsoleApp(client, device=device).run()
    return 0


def _finite(x: float) -> float | None:
    """JSON has no NaN: a figure that could not be measured is null."""
    return float(x) if math.isfinite(x) else None


def _replay_summary(res: ScriptReplay) -> dict:
    h = res.health
    last = res.states[-1][1] if res.states else None
    return {
        "commands_sent": int(res.t_sent.size),
        "states_received": len(res.states),
        "rtt_p50_ms": _finite(h.rtt_p50_s * 1e3),
        "rtt_p99_ms": _finite(h.rtt_p99_s * 1e3),
        "jitter_ms": _finite(h.jitter_s * 1e3),
        "state_loss": _finite(h.loss),
        "final_supervisor": None if last is None else last.supervisor.name,
        "final_hold_reason": None if last is None else last.hold_reason.name,
        "final_tool_position_m": None if last is None else list(last.p_base_tool),
    }


@command
def _sweep(args: argparse.Namespace) -> int:
    from machaon.cli.trial import sim_arm
    from machaon.teleop.profiles import ProfileError, load_profiles
    from machaon.trials.teleop import run_sweep

    try:
        profiles = load_profiles(args.profiles_file)
        names = list(profiles) if not args.profiles else [n.strip() for n in args.profiles.split(",")]
        missing = [n for n in names if n not in profiles]
        if missing:
            raise UsageError(f"unknown profiles {missing}; known: {', '.join(profiles)}")
    except (ProfileError, OSError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    from machaon._io import check_output_dir

    check_output_dir(args.out, what="--out")
    if args.seed < 0 or (args.workers is not None and args.workers < 1):
        raise UsageError("--seed must be >= 0 and --workers >= 1")
    # the teleop study on Ray, one seed per profile (machaon.trials.teleop); its errors are MachaonErrors
    report = run_sweep([profiles[n] for n in names], sim_arm, task=args.task, out_dir=args.out, seed=args.seed,
                       workers=args.workers)
    print(report.table())
    print(f"wrote {report.out_dir}/sweep.json, sweep.png")
    return 0
