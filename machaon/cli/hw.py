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
import math
import queue
import signal
import sys
from typing import TYPE_CHECKING

import numpy as np

from machaon.cli._common import command, usage_errors, warn
from machaon.errors import HardwareError, UsageError

if TYPE_CHECKING:  # the CLI imports its subsystems when a command runs, not at start-up
    from machaon.hardware.control_table import Model as ServoModel
    from machaon.hardware.emulator import ChainEmulator
    from machaon.sim import ArmSim
    from machaon.sim.plant import ArmSimPlant


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
    hw = sub.add_parser("hw", help="serial actuator tools: emulate (a servo chain on a pseudo-terminal, "
                                          "optionally driving the PyBullet arm), scan (a bus)")
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
    em.add_argument("--hw-config", metavar="TOML",
                    help="the host's chain config: the servos (ids, models) mounted as it says (direction, "
                         "zero_ticks); give the config the host uses")
    em.add_argument("--gravity", type=float, default=9.81,
                    help="--sim: gravity of the simulated arm (m/s^2; 0 for servos too weak to hold the arm)")
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
                   kt_scale: float = 1.0, friction_scale: float = 1.0, hw_config: str | None = None,
                   gravity: float = 9.81, **emulator_kw: object) -> tuple:
    """A ``ChainEmulator`` for ``robot`` (a description name or TOML path; None: a bare chain of
    ``ids`` x ``model``), and with ``sim`` the ``ArmSim`` its servos drive. Returns ``(emulator, sim)``.

    A description's ``[hardware]`` servo map sets ids, models, directions and zero ticks (``ids``,
    when given, must match it). The coupled arm runs without the description's joint damping and
    friction (the servo model is the gear friction) and with the servos' reflected rotor inertia
    (the description's armature, else the models' figures); it rests until a servo is powered.
    ``kt_scale``/``friction_scale`` scale every emulated servo's torque constant and friction.
    ``hw_config`` (the host's chain config, TOML) mounts the servos as the host believes they are
    mounted (ids, models, directions, zero ticks), in place of the description's servo map;
    ``gravity`` (m/s^2) is the coupled arm's, with a warning when the servos cannot hold it.
    Raises ``ValueError`` (a ``DescriptionError`` is one) with a message for the user.
    """
    from machaon.hardware.control_table import model_by_name
    from machaon.hardware.emulator import ChainEmulator

    if not (np.isfinite(kt_scale) and kt_scale > 0):
        raise ValueError(f"--kt-scale: must be a positive number, got {kt_scale!r}")
    if not (np.isfinite(friction_scale) and friction_scale >= 0):
        raise ValueError(f"--friction-scale: must be a number >= 0, got {friction_scale!r}")
    ids, models, mounts = _emulated_servos(robot, ids, model, hw_config)
    specs = [model_by_name(m) for m in models]
    arm, plant = _coupled_arm(robot, ids, specs, gravity) if sim else (None, None)
    if arm is not None:
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


def _emulated_servos(robot: str | None, ids: list[int] | None, model: str,
                     hw_config: str | None) -> tuple[list[int], list[str], dict[str, list]]:
    """The emulated chain's ids, model names and mounts (``directions``, ``zero_ticks``; empty: the
    emulator's defaults): from ``hw_config`` (the host's chain config), else ``robot``'s servo
    map, else ``ids`` (default 1..6) of ``model``. ``ValueError`` for a config that cannot be
    read or ``ids`` that differ from the servo map."""
    from machaon.hardware.backend import ActuatorConfig

    servo_map = None
    source = robot
    if hw_config is not None:
        try:
            servo_map = ActuatorConfig.from_toml(hw_config, port="-")
        except OSError as exc:
            raise ValueError(f"--hw-config {hw_config}: {exc}") from None
        source = f"--hw-config {hw_config}"
    elif robot is not None:
        try:
            servo_map = ActuatorConfig.from_robot(robot, port="-")
        except ValueError:
            servo_map = None  # a description without a servo map: --ids and --model describe the chain
    if servo_map is None:
        ids = ids if ids is not None else list(range(1, 7))
        return ids, [model] * len(ids), {}
    map_ids = [j.id for j in servo_map.joints]
    if ids is not None and ids != map_ids:
        raise ValueError(f"--ids {ids} differ from the servo map of {source} ({map_ids}); leave --ids out")
    mounts = {"directions": [j.direction for j in servo_map.joints],
              "zero_ticks": [j.zero_ticks for j in servo_map.joints]}
    return map_ids, [j.model for j in servo_map.joints], mounts


def _coupled_arm(robot: str | None, ids: list[int], specs: list[ServoModel],
                 gravity: float) -> tuple[ArmSim, ArmSimPlant]:
    """The ``ArmSim`` of ``robot`` (default machaon_arm) that the servos ``specs`` drive, without
    the description's joint damping and friction, under ``gravity`` (m/s^2), and its plant (with
    the servos' rotor inertia unless the description has an armature). Warns when the servos
    cannot hold the arm; ``ValueError`` when the arm's joint count is not ``len(ids)``."""
    from machaon.robot.description import load_description
    from machaon.sim import ArmSim
    from machaon.sim.plant import ArmSimPlant

    desc = load_description(robot or "machaon_arm")
    if desc.dof != len(ids):
        raise ValueError(f"--sim drives the {desc.dof}-joint {desc.name} arm; give {desc.dof} ids "
                         f"(got {len(ids)})")
    arm = ArmSim(desc, gravity=gravity, joint_damping=np.zeros(desc.dof), joint_friction=np.zeros(desc.dof))
    _warn_if_too_weak(arm, specs)
    rotor = 0.0 if (desc.armature > 0).any() else [m.rotor_inertia_out for m in specs]
    return arm, ArmSimPlant(arm, rotor)


@command
def _cmd_emulate(args: argparse.Namespace) -> int:
    from machaon.hardware.emulator import Faults

    with usage_errors():
        ids = parse_ids(args.ids) if args.ids is not None else None
        missing = set(parse_ids(args.missing_ids)) if args.missing_ids.strip() else set()
    for name in ("drop_prob", "corrupt_prob"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:  # also false for NaN
            raise UsageError(f"--{name.replace('_', '-')} must be a probability in [0, 1], got {v}")
    for name in ("delay_ms", "return_delay_us"):
        v = getattr(args, name)
        if not 0.0 <= v < math.inf:
            raise UsageError(f"--{name.replace('_', '-')} must be a finite value >= 0, got {v}")
    if not (0.0 <= args.gravity < math.inf):
        raise UsageError(f"--gravity must be a finite value >= 0, got {args.gravity}")
    if args.link:
        from machaon._io import check_writable

        check_writable(args.link, what="--link")
    faults = Faults(drop_prob=args.drop_prob, corrupt_prob=args.corrupt_prob, delay_s=args.delay_ms / 1000.0,
                    missing_ids=missing, seed=args.seed)
    with contextlib.ExitStack() as stack:
        with usage_errors():
            em, sim = robot_emulator(args.robot, sim=args.sim, ids=ids, model=args.model, kt_scale=args.kt_scale,
                                     friction_scale=args.friction_scale, hw_config=args.hw_config,
                                     gravity=args.gravity, baudrate=args.baud,
                                     return_delay_us=args.return_delay_us, realtime=args.realtime, link=args.link,
                                     faults=faults)
        if sim is not None:
            stack.callback(sim.close)
        return _serve_emulator(args, em, em.ids, coupled=sim is not None)


def _warn_if_too_weak(sim: ArmSim, models: ServoModel | list[ServoModel]) -> None:
    """Say so at start when the servos (one model for all joints, or one per joint) cannot hold the
    simulated arm against gravity at its home pose: position control then saturates and the arm
    hangs (homing ends far off, at the start)."""
    from machaon.kinematics import Chain

    d = sim.desc
    if not isinstance(models, list | tuple):
        models = [models] * d.dof
    chain = Chain.from_urdf(d.urdf_path, d.base_link, d.tip_link)
    chain.gravity = (0.0, 0.0, -float(sim.gravity))
    g = np.abs(chain.gravity_torque(np.asarray(d.q_home, dtype=float)))
    weak = [f"{n} {t:.1f} N m > {m.name} {m.stall_torque_nm} N m"
            for n, t, m in zip(d.joint_names, g, models, strict=True) if t > m.stall_torque_nm]
    if weak:
        warn(f"at home the arm's gravity load exceeds its servos' stall torque ({', '.join(weak)}): the servos "
             "cannot hold this arm and it will hang; use --gravity 0 (or servos that can)")


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
    if not bauds or any(b <= 0 for b in bauds):
        raise UsageError(f"--baud: expected positive baud rates, got {args.baud!r}")
    if not 0 <= args.max_id <= 252:
        raise UsageError(f"--max-id must be in 0..252, got {args.max_id}")
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
