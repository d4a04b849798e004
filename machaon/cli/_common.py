"""What every ``machaon`` subcommand shares: the error handler, exit codes, shared flags, opening a backend.

Every subcommand handler is decorated with :func:`command`, the one place where a
:class:`~machaon.errors.MachaonError` becomes one line on stderr, ``machaon: error: <what to fix>``,
and an exit code (:data:`EXIT_STATUS`, listed in ``machaon --help``). A handler only raises: a
:class:`~machaon.errors.UsageError` for input the user must fix (:func:`usage_errors` turns a
library's ``ValueError``/``OSError`` into one), any other ``MachaonError`` for a failure.
Anything else is a bug and keeps its traceback.

Shared flags have one spelling across commands (``--rate-hz``, ``--hw-config``, ``--out``,
``--duration``, ...); :func:`add_option` keeps an old spelling working, hidden from ``--help``,
for one release. As python-can's ``add_bus_arguments``/``create_bus_from_namespace``,
:func:`add_backend_arguments` adds the flags that choose and set up a backend and
:func:`open_backend` opens the backend they name: the one place the CLI builds one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from machaon.errors import MachaonError, UsageError

if TYPE_CHECKING:
    from machaon.hardware.backend import ActuatorConfig
    from machaon.robot.backend import Backend
    from machaon.robot.description import RobotDescription

PROG = "machaon"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_STATUS = f"""exit status:
  {EXIT_OK}    success
  {EXIT_FAILURE}    failure: a check failed, or a device, plan or run failed
  {EXIT_USAGE}    bad input: the arguments, or a file or port they name (fix it and run again)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C, SIGINT); the robot was left holding or stopped
  {EXIT_BROKEN_PIPE}  the reader of the output went away (e.g. `machaon ... | head`)

Errors are one line on stderr: "{PROG}: error: <what to fix>"."""

Handler = Callable[[argparse.Namespace], "int | None"]


def exit_code(exc: MachaonError) -> int:
    """:data:`EXIT_USAGE` for bad input (an error that is also a ``ValueError``), else :data:`EXIT_FAILURE`."""
    return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_FAILURE


def command(func: Handler) -> Callable[[argparse.Namespace], int]:
    """Decorate a subcommand handler: its ``MachaonError`` becomes one stderr line and an exit code."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args) or EXIT_OK)
        except MachaonError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
            return exit_code(exc)

    run.machaon_command = True  # type: ignore[attr-defined]  # checked by tests/cli/test_main.py
    return run


def warn(message: str) -> None:
    """One line on stderr, ``machaon: warning: <message>``: the command goes on."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def usage_errors(*types: type[BaseException], context: str = "") -> Iterator[None]:
    """Re-raise ``types`` (default ``ValueError``) from the block as a :class:`UsageError` (exit 2).

    ``context`` (e.g. ``"cannot read plan.json"``) is put before the original message. Use it
    around parsing and opening what the user named: arguments, files, ports.
    """
    catch = types or (ValueError,)
    try:
        yield
    except UsageError:
        raise
    except catch as exc:
        raise UsageError(f"{context}: {exc}" if context else str(exc)) from exc


# -- shared flags ---------------------------------------------------------------------------------

def add_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *names: str, old: tuple[str, ...] = (),
               **kwargs: object) -> argparse.Action:
    """``parser.add_argument(*names, **kwargs)``, and each ``old`` spelling as a hidden alias of it.

    The aliases store into the same destination, take the same type and choices, and are left out
    of ``--help``: old command lines keep working for one release.
    """
    action = parser.add_argument(*names, **kwargs)
    same = {k: v for k, v in kwargs.items() if k not in ("help", "default", "required", "dest")}
    for spelling in old:
        parser.add_argument(spelling, dest=action.dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **same)
    return action


def add_robot_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                        tool_default: str | None = None, tool_help: str | None = None) -> None:
    """``--robot`` (a description name or a TOML/URDF path) and ``--tool`` (a tool of that description)."""
    parser.add_argument("--robot", default="machaon_arm", help="robot description name or TOML/URDF path")
    parser.add_argument("--tool", default=tool_default,
                        help=tool_help or "tool of the description to mount and drive (default: flange)")


def add_hardware_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, port_required: bool = False,
                           config_help: str = "actuator chain config (TOML)") -> None:
    """``--hw-config TOML`` (old spelling ``--config``) and ``--port`` (overrides the config's port)."""
    add_option(parser, "--hw-config", old=("--config",), metavar="TOML", help=config_help)
    parser.add_argument("--port", required=port_required,
                        help="serial port of the actuator bus, e.g. /dev/ttyUSB0 (overrides the config's)")


def add_backend_arguments(parser: argparse.ArgumentParser, *, default: str = "sim") -> None:
    """The flags :func:`open_backend` reads: ``--backend sim|hardware``, the robot, the hardware, ``--gui``."""
    g = parser.add_argument_group("backend")
    g.add_argument("--backend", choices=("sim", "hardware"), default=default)
    add_robot_arguments(g)
    add_hardware_arguments(g, config_help="hardware: actuator chain config")
    g.add_argument("--gui", action="store_true", help="sim: open the PyBullet window")


def hardware_config(args: argparse.Namespace, default: str | Path | None = None) -> tuple[ActuatorConfig, dict]:
    """The actuator chain config that ``--hw-config`` (or ``default``) names, ``--port`` applied; and its TOML.

    The TOML is returned too for applications that keep their own sections in the same file. A
    robot description's TOML works too: its ``[hardware]`` section is the servo map. A missing or
    malformed file is a :class:`UsageError`.
    """
    import tomllib

    from machaon.hardware.backend import ActuatorConfig

    path = args.hw_config or default
    if path is None:
        raise UsageError("--hw-config TOML is needed for the hardware backend")
    with usage_errors(OSError, ValueError, TypeError, KeyError, context=f"bad actuator configuration {path}"):
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        return ActuatorConfig.from_dict(raw, port=args.port), raw


def open_backend(
    args: argparse.Namespace,
    *,
    desc: RobotDescription | None = None,
    hw: ActuatorConfig | None = None,
    modes: tuple[str, ...] | None = None,
) -> Backend:
    """Open the backend ``args.backend`` names (``"hardware"`` when the command has no ``--backend``).

    ``sim``: an ``ArmSim`` of ``desc`` with ``args.tool`` mounted, in real time (a window with
    ``--gui``). ``hardware``: an ``ActuatorBackend`` on ``hw`` (default: :func:`hardware_config`),
    whose servo mode must be one of ``modes`` when given. The caller enters it (``with``). A port
    that cannot be opened or a servo that does not answer is a :class:`UsageError` naming it.
    """
    name = getattr(args, "backend", "hardware")
    if name == "sim":
        from machaon.sim import ArmSim

        return ArmSim(desc if desc is not None else args.robot, tool=args.tool, gui=args.gui, realtime=True)
    from machaon.hardware.backend import ActuatorBackend
    from machaon.hardware.protocol import BusProtocolError

    if hw is None:
        hw, _ = hardware_config(args, default=_servo_map_path(getattr(args, "robot", None)))
    if desc is not None and tuple(j.name for j in hw.joints) != tuple(desc.joint_names):
        raise UsageError(f"the actuator config's joints {[j.name for j in hw.joints]} are not {desc.name}'s "
                         f"{list(desc.joint_names)}")
    from machaon.hardware.latency import latency_warning

    if (msg := latency_warning(hw.port)) is not None:
        warn(msg)
    if modes is not None and hw.mode not in modes:
        raise UsageError(f"the servos run in {hw.mode} mode; this command drives them in {' or '.join(modes)} mode")
    with usage_errors(BusProtocolError, OSError, ValueError, context=f"cannot open the hardware backend on {hw.port}"):
        return ActuatorBackend(hw)


def _servo_map_path(robot: str | None) -> Path | None:
    """The TOML of robot description ``robot`` (a name or a path) when it has a ``[hardware]`` servo
    map (the desk arm's); None otherwise."""
    import tomllib

    from machaon.robot.description import DESCRIPTIONS_DIR

    if robot is None:
        return None
    path = Path(str(robot))
    if path.suffix.lower() != ".toml":
        path = DESCRIPTIONS_DIR / f"{robot}.toml"
    try:
        with open(path, "rb") as f:
            return path if "hardware" in tomllib.load(f) else None
    except (OSError, tomllib.TOMLDecodeError):
        return None
