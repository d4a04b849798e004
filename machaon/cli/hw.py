"""``machaon hw ...``: serial actuator tools.

- ``machaon hw emulate --ids 1-6 [--baud N] [--model XM430-W350] [--sim]``: a Dynamixel chain on a
  pseudo-terminal; the first line of output is the pty path, then it serves until Ctrl-C. SIGUSR1
  unplugs the emulated adapter, SIGUSR2 plugs a new one in and prints its path (``--link`` keeps
  one stable path across both).
  ``--sim`` couples the servos to the PyBullet arm (hardware in the loop): this module, the only
  layer that may import both ``machaon.hardware`` and ``machaon.sim``, hands the emulator
  ``machaon.sim.plant.ArmSimPlant`` (``ArmSim`` as the emulator's ``Plant``).
  ``--robot NAME`` takes ids, models and mountings from the robot description's servo map (e.g.
  ``desk``: three XM540-W270 and three XM430-W350); with ``--sim`` the servos drive that robot's
  PyBullet arm. ``--kt-scale``/``--friction-scale`` make the emulated servos differ from their
  datasheet (what ``machaon bench --identify`` must find).
- ``machaon hw scan --port PORT``: ping every id at one or more baud rates. PORT may be a device or
  a stable ``/dev/serial/by-id/...`` link; without ``--port`` the candidate ports are listed. Warns
  when the USB serial adapter's latency timer is above 1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import sys
from typing import TYPE_CHECKING

import numpy as np

from machaon.cli._common import command, usage_errors, warn
from machaon.errors import HardwareError, UsageError

if TYPE_CHECKING:  # the CLI imports its subsystems when a command runs, not at start-up
    from machaon.hardware.emulator import ChainEmulator


def parse_ids(text: str) -> list[int]:
    """``"1-6"``, ``"1,2,5"`` or ``"1-3,7"`` -> sorted distinct ids; ValueError for ids outside 0..252."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if lo > hi:
                raise ValueError(f"ids: empty range {part!r}")
            ids.update(range(lo, hi + 1))
        else:
            ids.add(int(part))
    if not ids or not all(0 <= i <= 252 for i in ids):
        raise ValueError(f"ids: expected ids in 0..252, got {text!r}")
    return sorted(ids)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``hw`` subcommand and its own subcommands to ``sub``."""
    hw = sub.add_parser("hw", help="serial actuator tools: servo-chain emulator, bus scan")
    hw_sub = hw.add_subparsers(dest="hw_command", metavar="HWCOMMAND", required=True)

    em = hw_sub.add_parser("emulate", help="emulate a Dynamixel X-series chain on a pseudo-terminal")
    em.add_argument("--ids", default=None, help="servo ids, e.g. 1-6 or 1,2,5 (default 1-6, or the robot's)")
    em.add_argument("--baud", type=int, default=1_000_000, help="bus baud rate (default 1000000)")
    em.add_argument("--model", default="XM430-W350", help="X-series model (default XM430-W350; --robot: the map's)")
    em.add_argument("--robot", default=None,
                    help="robot description (name or TOML): its servo map gives ids, models and mountings, and "
                         "--sim drives its arm (default for --sim: machaon_arm)")
    em.add_argument("--kt-scale", type=float, default=1.0,
                    help="emulated servos' torque constant, times the datasheet's (default 1)")
    em.add_argument("--friction-scale", type=float, default=1.0,
                    help="emulated servos' gear friction, times the model's estimate (default 1)")
    em.add_argument("--return-delay-us", type=float, default=0.0,
                    help="servos' Return Delay Time in us (default 0; factory default is 500)")
    em.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="answer at once instead of pacing at the baud rate")
    em.add_argument("--link", default=None, help="also expose the pty under this path (symlink)")
    em.add_argument("--sim", action="store_true",
                    help="couple the servos to the PyBullet arm (hardware in the loop); ids = arm joints")
    em.add_argument("--drop-prob", type=float, default=0.0, help="probability a status packet is lost")
    em.add_argument("--corrupt-prob", type=float, default=0.0, help="probability a status packet has a bit flip")
    em.add_argument("--delay-ms", type=float, default=0.0, help="extra delay before every status packet")
    em.add_argument("--missing-ids", default="", help="ids that never answer, e.g. 3 or 2,5")
    em.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    em.set_defaults(func=_cmd_emulate)

    scan = hw_sub.add_parser("scan", help="ping every id on a bus at one or more baud rates")
    scan.add_argument("--port", default=None,
                      help="serial port, e.g. /dev/ttyUSB0 or /dev/serial/by-id/usb-FTDI_...; omit it to list ports")
    scan.add_argument("--baud", default="57600,1000000,2000000,3000000,4000000",
                      help="comma-separated baud rates to try")
    scan.add_argument("--max-id", type=int, default=252)
    scan.add_argument("--sysfs-root", default="/sys", help=argparse.SUPPRESS)  # tests point it at a fake tree
    scan.set_defaults(func=_cmd_scan)


def robot_emulator(robot: str | None, *, sim: bool, ids: list[int] | None = None, model: str = "XM430-W350",
                   kt_scale: float = 1.0, friction_scale: float = 1.0, **emulator_kw: object) -> tuple:
    """A ``ChainEmulator`` for ``robot`` (a description name or TOML path; None: a bare chain of
    ``ids`` x ``model``), and with ``sim`` the ``ArmSim`` its servos drive. Returns ``(emulator, sim)``.

    A description's ``[hardware]`` servo map sets ids, models, directions and zero ticks (``ids``,
    when given, must match it). The coupled arm runs without the description's joint damping and
    friction (the servo model is the gear friction) and with the servos' reflected rotor inertia
    (the description's armature, else the models' figures); it rests until a servo is powered.
    ``kt_scale``/``friction_scale`` scale every emulated servo's torque constant and friction.
    Raises ``ValueError`` (a ``DescriptionError`` is one) with a message for the user.
    """
    from machaon.hardware.backend import ActuatorConfig
    from machaon.hardware.control_table import model_by_name
    from machaon.hardware.emulator import ChainEmulator

    if not (np.isfinite(kt_scale) and kt_scale > 0):
        raise ValueError(f"--kt-scale: must be a positive number, got {kt_scale!r}")
    if not (np.isfinite(friction_scale) and friction_scale >= 0):
        raise ValueError(f"--friction-scale: must be a number >= 0, got {friction_scale!r}")
    servo_map = None
    if robot is not None:
        try:
            servo_map = ActuatorConfig.from_robot(robot, port="-")
        except ValueError:
            servo_map = None  # a description without a servo map: --ids and --model describe the chain
    if servo_map is not None:
        map_ids = [j.id for j in servo_map.joints]
        if ids is not None and ids != map_ids:
            raise ValueError(f"--ids {ids} differ from the servo map of {robot} ({map_ids}); leave --ids out")
        ids, models = map_ids, [j.model for j in servo_map.joints]
        mounts = {"directions": [j.direction for j in servo_map.joints],
                  "zero_ticks": [j.zero_ticks for j in servo_map.joints]}
    else:
        ids = ids if ids is not None else list(range(1, 7))
        models = [model] * len(ids)
        mounts = {}
    specs = [model_by_name(m) for m in models]
    arm = plant = None
    if sim:
        from machaon.robot.description import load_description
        from machaon.sim import ArmSim
        from machaon.sim.plant import ArmSimPlant

        desc = load_description(robot or "machaon_arm")
        if desc.dof != len(ids):
            raise ValueError(f"--sim drives the {desc.dof}-joint {desc.name} arm; give {desc.dof} ids "
                             f"(got {len(ids)})")
        arm = ArmSim(desc, joint_damping=np.zeros(desc.dof), joint_friction=np.zeros(desc.dof))
        rotor = 0.0 if (desc.armature > 0).any() else [m.rotor_inertia_out for m in specs]
        plant = ArmSimPlant(arm, rotor)
        emulator_kw = {**emulator_kw, "physics_dt": arm.dt, "rest_until_torque": True}
    try:
        em = ChainEmulator(ids, model=specs, plant=plant, **mounts, **emulator_kw)
    except Exception:
        if arm is not None:
            arm.close()
        raise
    for i, m in zip(ids, specs, strict=True):
        em.set_motor(i, kt_nm_per_a=m.kt_nm_per_a * kt_scale, coulomb_nm=m.coulomb_friction * friction_scale,
                     viscous_nms_rad=m.viscous_friction * friction_scale)
    return em, arm


@command
def _cmd_emulate(args: argparse.Namespace) -> int:
    from machaon.hardware.emulator import Faults

    with usage_errors():
        ids = parse_ids(args.ids) if args.ids is not None else None
        missing = set(parse_ids(args.missing_ids)) if args.missing_ids.strip() else set()
    faults = Faults(drop_prob=args.drop_prob, corrupt_prob=args.corrupt_prob, delay_s=args.delay_ms / 1000.0,
                    missing_ids=missing, seed=args.seed)
    with contextlib.ExitStack() as stack:
        with usage_errors():
            em, sim = robot_emulator(args.robot, sim=args.sim, ids=ids, model=args.model, kt_scale=args.kt_scale,
                                     friction_scale=args.friction_scale, baudrate=args.baud,
                                     return_delay_us=args.return_delay_us, realtime=args.realtime, link=args.link,
                                     faults=faults)
        if sim is not None:
            stack.callback(sim.close)
        return _serve_emulator(args, em, em.ids, coupled=sim is not None)


def _serve_emulator(args: argparse.Namespace, em: ChainEmulator, ids: list[int], coupled: bool) -> int:
    """Print the pty path, serve until Ctrl-C or SIGTERM, close the emulator."""
    # SIGUSR1 pulls the adapter out (the pty vanishes), SIGUSR2 plugs a new one in (its path is printed).
    # The handlers only queue the request and this loop carries it out: a signal arriving while a handler
    # ran would otherwise run the next handler inside it (a replug in the middle of an unplug).
    requests: queue.SimpleQueue[str] = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, lambda *_: requests.put("stop"))
    signal.signal(signal.SIGUSR1, lambda *_: requests.put("unplug"))
    signal.signal(signal.SIGUSR2, lambda *_: requests.put("replug"))
    print(em.port, flush=True)
    models = ", ".join(sorted({m.name for m in em.models}))
    arm = f" coupled to the PyBullet {em.plant.sim.desc.name} arm" if coupled else ""
    print(f"emulating {models} ids {ids} at {args.baud} baud{arm}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            try:  # a timeout: the signal may land in another thread and not wake a blocked get()
                req = requests.get(timeout=0.05)
            except queue.Empty:
                continue
            if req == "stop":
                break
            if req == "unplug":
                em.unplug()
            else:
                print(em.replug(), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        em.close()
        print(f"stopped: {em.stats}", file=sys.stderr)
    return 0


@command
def _cmd_scan(args: argparse.Namespace) -> int:
    from machaon.hardware.control_table import MODELS_BY_NUMBER
    from machaon.hardware.dynamixel import Bus

    try:
        bauds = [int(b) for b in args.baud.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--baud: expected comma-separated integers, got {args.baud!r}") from None
    if args.port is None:
        from machaon.hardware.ports import describe_candidates

        print("serial ports (pass one with --port):")
        print(describe_candidates())
        return 2
    from machaon.hardware.latency import latency_warning

    if (msg := latency_warning(args.port, args.sysfs_root)) is not None:
        warn(msg)
    found_any = False
    with Bus(args.port, bauds[0]) as bus:  # PortError: exit 1, said in one line by main
        for b in bauds:
            bus.set_baudrate(b)
            found = bus.broadcast_ping(max_id=args.max_id)
            for i, info in found.items():
                m = MODELS_BY_NUMBER.get(info.model_number)
                name = m.name if m else f"model {info.model_number}"
                print(f"{b:>8} baud  id {i:3d}  {name}  firmware {info.firmware_version}")
            found_any |= bool(found)
    if not found_any:
        raise HardwareError(f"no servo answered on {args.port} at {args.baud} baud")
    return 0
