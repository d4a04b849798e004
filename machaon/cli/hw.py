"""``machaon hw ...``: serial actuator tools.

- ``machaon hw emulate --ids 1-6 [--baud N] [--model XM430-W350] [--sim]``: a Dynamixel chain on a
  pseudo-terminal; the first line of output is the pty path, then it serves until Ctrl-C. SIGUSR1
  unplugs the emulated adapter, SIGUSR2 plugs a new one in and prints its path (``--link`` keeps
  one stable path across both).
  ``--sim`` couples the servos to the PyBullet arm (hardware in the loop): this module, the only
  layer that may import both ``machaon.hardware`` and ``machaon.sim``, hands the emulator
  ``machaon.sim.plant.ArmSimPlant`` (``ArmSim`` as the emulator's ``Plant``).
- ``machaon hw scan --port PORT``: ping every id at one or more baud rates. PORT may be a device or
  a stable ``/dev/serial/by-id/...`` link; without ``--port`` the candidate ports are listed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import queue
import signal
import sys
from typing import TYPE_CHECKING

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
    em.add_argument("--ids", default="1-6", help="servo ids, e.g. 1-6 or 1,2,5 (default 1-6)")
    em.add_argument("--baud", type=int, default=1_000_000, help="bus baud rate (default 1000000)")
    em.add_argument("--model", default="XM430-W350", help="X-series model (default XM430-W350)")
    em.add_argument("--return-delay-us", type=float, default=0.0,
                    help="servos' Return Delay Time in us (default 0; factory default is 500)")
    em.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="answer at once instead of pacing at the baud rate")
    em.add_argument("--link", default=None, help="also expose the pty under this path (symlink)")
    em.add_argument("--sim", action="store_true",
                    help="couple the servos to the PyBullet arm (hardware in the loop); ids = arm joints")
    em.add_argument("--hw-config", metavar="TOML",
                    help="--sim: mount the servos on the arm's joints as this chain config says (direction, "
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
    scan.set_defaults(func=_cmd_scan)


@command
def _cmd_emulate(args: argparse.Namespace) -> int:
    from machaon.hardware.emulator import ChainEmulator, Faults

    with usage_errors():
        ids = parse_ids(args.ids)
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
        sim = None
        plant = None
        physics_dt = 1e-3
        if args.sim:
            from machaon.sim import ArmSim

            sim = ArmSim("machaon_arm", gravity=args.gravity)
            stack.callback(sim.close)
            if sim.dof != len(ids):
                raise UsageError(f"--sim drives the {sim.dof}-joint arm; give {sim.dof} ids (got {len(ids)})")
            from machaon.hardware.control_table import model_by_name

            with usage_errors():
                rotor = model_by_name(args.model).rotor_inertia_out
            from machaon.sim.plant import ArmSimPlant

            directions = zero_ticks = None
            if args.hw_config:
                from machaon.hardware.backend import ActuatorConfig

                with usage_errors(ValueError, OSError, context=f"--hw-config {args.hw_config}"):
                    hw = ActuatorConfig.from_toml(args.hw_config)
                if [j.id for j in hw.joints] != ids:
                    raise UsageError(f"--hw-config {args.hw_config}: its servo ids {[j.id for j in hw.joints]} "
                                     f"differ from --ids {ids}")
                directions = [j.direction for j in hw.joints]
                zero_ticks = [j.zero_ticks for j in hw.joints]
            plant = ArmSimPlant(sim, rotor, directions=directions, zero_ticks=zero_ticks)
            _warn_if_too_weak(sim, model_by_name(args.model))
            physics_dt = sim.dt
        with usage_errors():
            em = ChainEmulator(ids, model=args.model, baudrate=args.baud, return_delay_us=args.return_delay_us,
                               plant=plant, realtime=args.realtime, link=args.link, faults=faults,
                               physics_dt=physics_dt)
        return _serve_emulator(args, em, ids, coupled=sim is not None)


def _warn_if_too_weak(sim: object, model: object) -> None:
    """Say so at start when the servos cannot hold the simulated arm against gravity at its home
    pose: position control then saturates and the arm hangs (homing ends far off, at the start)."""
    import numpy as np

    from machaon.kinematics import Dynamics

    d = sim.desc
    dyn = Dynamics.from_urdf(d.urdf_path, d.base_link, d.tip_link)
    g = np.abs(dyn.gravity(np.asarray(d.q_home, dtype=float))) * (sim.gravity / 9.81)  # the model's g is 9.81
    weak = [f"{n} {t:.1f} N m" for n, t in zip(d.joint_names, g, strict=True) if t > model.stall_torque_nm]
    if weak:
        warn(f"at home the arm's gravity load ({', '.join(weak)}) exceeds the {model.name}'s stall torque "
             f"({model.stall_torque_nm} N m): the servos cannot hold this arm and it will hang; use --gravity 0 "
             "(or servos that can)")


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
    print(f"emulating {em.model.name} ids {ids} at {args.baud} baud"
          f"{' coupled to the PyBullet arm' if coupled else ''}; Ctrl-C to stop", file=sys.stderr, flush=True)
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
