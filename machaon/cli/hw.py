"""``machaon hw ...``: serial actuator tools.

- ``machaon hw emulate --ids 1-6 [--baud N] [--model XM430-W350] [--sim]``: a Dynamixel chain on a
  pseudo-terminal; the first line of output is the pty path, then it serves until Ctrl-C. SIGUSR1
  unplugs the emulated adapter, SIGUSR2 plugs a new one in and prints its path (``--link`` keeps
  one stable path across both).
  ``--sim`` couples the servos to the PyBullet arm (hardware in the loop): this module, the only
  layer that may import both ``machaon.hardware`` and ``machaon.sim``, adapts ``ArmSim`` to the
  emulator's ``Plant`` interface.
- ``machaon hw scan --port PORT``: ping every id at one or more baud rates.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import numpy as np


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
    em.add_argument("--drop-prob", type=float, default=0.0, help="probability a status packet is lost")
    em.add_argument("--corrupt-prob", type=float, default=0.0, help="probability a status packet has a bit flip")
    em.add_argument("--delay-ms", type=float, default=0.0, help="extra delay before every status packet")
    em.add_argument("--missing-ids", default="", help="ids that never answer, e.g. 3 or 2,5")
    em.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    em.set_defaults(func=_cmd_emulate)

    scan = hw_sub.add_parser("scan", help="ping every id on a bus at one or more baud rates")
    scan.add_argument("--port", required=True)
    scan.add_argument("--baud", default="57600,1000000,2000000,3000000,4000000",
                      help="comma-separated baud rates to try")
    scan.add_argument("--max-id", type=int, default=252)
    scan.set_defaults(func=_cmd_scan)


class ArmSimPlant:
    """``machaon.sim.ArmSim`` as the emulator's ``Plant``: servo torques drive the PyBullet arm.

    Every ``step(tau, dt)`` applies ``tau`` (N m, joint order = servo order) in torque mode and
    advances the physics by whole simulator steps (the remainder carries over). PyBullet has no
    armature term, so the servos' reflected rotor inertia ``rotor_inertia`` (kg m^2, scalar or per
    joint) is added to each joint's child link (``ArmSim.add_armature``; pass 0 when the
    description's armature already carries it). Without it a light wrist link
    behind a stiff servo loop is not even stable at a 1 ms step. The servo model applies the gear
    friction.
    """

    def __init__(self, sim: object, rotor_inertia: float | list[float] = 0.0) -> None:
        self.sim = sim
        self._carry = 0.0
        sim.add_armature(rotor_inertia)

    @property
    def dof(self) -> int:
        return int(self.sim.dof)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.sim.read()
        return s.q.copy(), s.dq.copy()

    def step(self, tau_nm: np.ndarray, dt: float) -> None:
        from machaon.types import JointCommand

        self.sim.write(JointCommand.torque(tau_nm))
        self._carry += dt
        n = int(self._carry / self.sim.dt + 1e-9)
        if n:
            self.sim.step(n)
            self._carry -= n * self.sim.dt


def _cmd_emulate(args: argparse.Namespace) -> int:
    from machaon.hardware.emulator import ChainEmulator, Faults

    try:
        ids = parse_ids(args.ids)
        missing = set(parse_ids(args.missing_ids)) if args.missing_ids.strip() else set()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    faults = Faults(drop_prob=args.drop_prob, corrupt_prob=args.corrupt_prob, delay_s=args.delay_ms / 1000.0,
                    missing_ids=missing, seed=args.seed)
    sim = None
    plant = None
    physics_dt = 1e-3
    if args.sim:
        from machaon.sim import ArmSim

        sim = ArmSim("machaon_arm")
        if sim.dof != len(ids):
            print(f"error: --sim drives the {sim.dof}-joint arm; give {sim.dof} ids (got {len(ids)})",
                  file=sys.stderr)
            sim.close()
            return 2
        from machaon.hardware.control_table import model_by_name

        try:
            rotor = model_by_name(args.model).rotor_inertia_out
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sim.close()
            return 2
        plant = ArmSimPlant(sim, rotor)
        physics_dt = sim.dt
    try:
        em = ChainEmulator(ids, model=args.model, baudrate=args.baud, return_delay_us=args.return_delay_us,
                           plant=plant, realtime=args.realtime, link=args.link, faults=faults,
                           physics_dt=physics_dt)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if sim is not None:
            sim.close()
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # SIGUSR1 pulls the adapter out (the pty vanishes), SIGUSR2 plugs a new one in (its path is printed)
    signal.signal(signal.SIGUSR1, lambda *_: em.unplug())
    signal.signal(signal.SIGUSR2, lambda *_: print(em.replug(), flush=True))
    print(em.port, flush=True)
    print(f"emulating {em.model.name} ids {ids} at {args.baud} baud"
          f"{' coupled to the PyBullet arm' if sim else ''}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        em.close()
        if sim is not None:
            sim.close()
        print(f"stopped: {em.stats}", file=sys.stderr)
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from machaon.hardware.control_table import MODELS_BY_NUMBER
    from machaon.hardware.dynamixel import Bus
    from machaon.hardware.protocol import PortError

    try:
        bauds = [int(b) for b in args.baud.split(",") if b.strip()]
    except ValueError:
        print(f"error: --baud: expected comma-separated integers, got {args.baud!r}", file=sys.stderr)
        return 2
    found_any = False
    try:
        with Bus(args.port, bauds[0]) as bus:
            for b in bauds:
                bus.set_baudrate(b)
                found = bus.broadcast_ping(max_id=args.max_id)
                for i, info in found.items():
                    m = MODELS_BY_NUMBER.get(info.model_number)
                    name = m.name if m else f"model {info.model_number}"
                    print(f"{b:>8} baud  id {i:3d}  {name}  firmware {info.firmware_version}")
                found_any |= bool(found)
    except PortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not found_any:
        print("no servo answered", file=sys.stderr)
    return 0 if found_any else 1
