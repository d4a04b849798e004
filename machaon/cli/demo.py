"""``machaon demo``: the main job of ``make demo``: the orthopedic procedure in simulation.

With a display (``$DISPLAY`` set) it opens the PyBullet GUI; without one it runs headless and
says where the pictures and the report are.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from machaon.cli._common import command


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main demo: a robot-guided pedicle-screw procedure in simulation",
                       description="Plans screws on a lumbar phantom, registers it through the simulated "
                       "optical tracker, aligns the drill guide with the arm and drills, then writes a report. "
                       "Example: machaon demo --out out/demo")
    p.add_argument("--out", default="out/demo", help="report directory (default out/demo)")
    p.add_argument("--headless", action="store_true", help="never open a window, even with a display")
    p.add_argument("--levels", default="L3,L4", help="vertebrae to instrument (default L3,L4)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)


@command
def _demo(args: argparse.Namespace) -> int:
    from machaon._io import check_output_dir
    from machaon.cli.main import main

    headless = args.headless or not os.environ.get("DISPLAY")
    out = Path(args.out).resolve()
    check_output_dir(out, what="--out")
    argv = ["ortho", "run", "--levels", args.levels, "--out", str(out), "--seed", str(args.seed)]
    if headless:
        argv.append("--headless")
        print("machaon demo: no display, running headless (set DISPLAY or use xvfb-run for the GUI)")
    rc = main(argv)
    print(f"machaon demo: report and pictures in {out}")
    return rc
