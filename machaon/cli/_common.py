"""What every ``machaon`` subcommand shares: the one error handler, exit codes, warnings.

Every subcommand handler is decorated with :func:`command`, the one place where a
:class:`~machaon.errors.MachaonError` becomes one line on stderr, ``machaon: error: <what to fix>``,
and an exit code (:data:`EXIT_STATUS`, listed in ``machaon --help``). A handler only raises: a
:class:`~machaon.errors.UsageError` for input the user must fix (:func:`usage_errors` turns a
library's ``ValueError``/``OSError`` into one), any other ``MachaonError`` for a failure.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator

from machaon.errors import MachaonError, UsageError

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
