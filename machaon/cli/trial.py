"""``machaon trial STUDY [--out DIR] [--workers N] [--address ADDR] [--seed S] [--resume]``: studies on Ray.

Studies (``machaon.trials``): ``teleop`` (operator tasks over link profiles x speeds x seeds),
``exo`` (simulated wearers x assist gains) and ``ortho`` (pedicle screws with Gertzbein-Robbins
grades). Without ``--address`` Ray starts locally with ``--workers`` CPUs (default: all); with it
the study runs on that cluster (``auto``, ``ray://host:10001``). Each run's seed derives from
``--seed`` and the run's index, so results do not depend on the workers or machines. ``--resume``
goes on with a killed study in the same ``--out``.

This module picks the simulated backends the studies run on (``sim_arm``, ``sim_legs``): the
CLI is the one place that chooses a backend.
"""

from __future__ import annotations

import argparse
import time

from machaon.cli._common import command
from machaon.errors import UsageError


def sim_arm(desc: object) -> object:
    """The PyBullet arm in DIRECT mode on a simulated clock (the studies' arm backend)."""
    from machaon.sim import ArmSim

    return ArmSim(desc, realtime=False)


def sim_legs(wearer: object, cfg: object) -> object:
    """The PyBullet exoskeleton + wearer in DIRECT mode (the exo study's backend)."""
    from machaon.sim.legs import LegSim

    return LegSim(wearer, cfg)


def _csv(kind: type = str) -> object:
    def parse(text: str) -> tuple:
        try:
            vals = tuple(kind(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None
        if not vals:
            raise argparse.ArgumentTypeError("expected at least one value")
        return vals

    return parse


def _int_at_least(lo: int) -> object:
    """An argparse type: a whole number >= ``lo``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--out", metavar="DIR",
                   help="study directory (runs.jsonl, summary.json, report.md); default: a new "
                        "out/trial-STUDY-YYYYmmdd-HHMMSS")
    g.add_argument("--workers", type=_positive_int, metavar="N",
                   help="CPUs of the local Ray (default: all); with --address, runs in flight")
    g.add_argument("--address", metavar="ADDR", help="an existing Ray cluster: auto, or ray://host:10001")
    g.add_argument("--seed", type=_seed, default=0, metavar="S", help="study seed (each run's seed derives from it)")
    g.add_argument("--resume", action="store_true", help="go on with the study already in --out (skips runs on disk)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trial", help="virtual trials on Ray: ortho screws, teleop links, exo wearers")
    tsub = p.add_subparsers(dest="study", metavar="STUDY", required=True)

    t = tsub.add_parser("teleop", help="operator tasks over link profiles x operator speeds x seeds")
    t.add_argument("--profiles", type=_csv(), help="comma-separated profile names (default: all)")
    t.add_argument("--profiles-file", metavar="TOML", help="extra user profiles")
    t.add_argument("--tasks", type=_csv(), default=("square",), help="square and/or hold (default: square)")
    t.add_argument("--speeds", type=_csv(float), default=(0.5, 1.0, 1.5),
                   help="operator speeds, x nominal (default: 0.5,1,1.5)")
    t.add_argument("--seeds", type=_positive_int, default=3, help="link seeds per profile and speed (default 3)")
    t.add_argument("--rate-hz", type=float, default=1000.0, help="control loop rate (default 1000)")
    _common(t)
    t.set_defaults(func=_teleop)

    e = tsub.add_parser("exo", help="simulated wearers (weakness, spasticity, own gait) x assist gains")
    e.add_argument("--wearers", type=_positive_int, default=8, help="simulated wearers (default 8)")
    e.add_argument("--gains", type=_csv(float), default=(0.5, 1.0, 1.5),
                   help="assist gain levels, x the default assist (default: 0.5,1,1.5); 0 = off is always run")
    e.add_argument("--duration", type=float, default=12.0, help="walk duration per run, s (default 12)")
    e.add_argument("--skip", type=float, default=3.0, help="start-up transient left out of the metrics, s (default 3)")
    _common(e)
    e.set_defaults(func=_exo)

    o = tsub.add_parser("ortho", help="pedicle screws under randomised conditions: deviations, GR grades")
    o.add_argument("--screws", type=_positive_int, default=100, help="simulated screws (default 100)")
    o.add_argument("--levels", nargs="+", type=_csv(), metavar="LEVEL",
                   help="levels to draw from, comma- or space-separated (default: L1,L2,L3,L4)")
    o.add_argument("--noise", default="clinical", metavar="PROFILE",
                   help="condition ranges: ideal, clinical (default), harsh")
    o.add_argument("--compare", type=int, default=None, metavar="K",
                   help="also run K of the screws in full mode (rendered camera calibration) with the same "
                        "conditions, to compare the modes (default: 5%% of the screws, rounded down)")
    _common(o)
    o.set_defaults(func=_ortho)


def _run(study: object, args: argparse.Namespace) -> int:
    """Run ``study`` on Ray into ``--out``; a ``StudyError`` exits 2, a ``ClusterError`` 1 (``@command``)."""
    from machaon._io import check_output_dir
    from machaon.trials import run_study

    if args.out is None:
        if args.resume:
            raise UsageError("--resume needs --out: the directory of the study to go on with")
        args.out = f"out/trial-{args.study}-{time.strftime('%Y%m%d-%H%M%S')}"
        print(f"study directory: {args.out}")
    check_output_dir(args.out, what="--out")
    t0 = time.perf_counter()
    res = run_study(study, args.out, seed=args.seed, workers=args.workers, address=args.address,
                    resume=args.resume, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    print(study.headline(res.summary))
    runs = res.summary["runs"]
    print(f"{runs['done']} runs ({runs['errors']} failed; {res.ran_now} ran now) in {wall:.0f} s; "
          f"wrote {res.out_dir}/summary.json and {', '.join(p.name for p in res.report_paths)}")
    return 0


@command
def _teleop(args: argparse.Namespace) -> int:
    from machaon.teleop.profiles import ProfileError, load_profiles
    from machaon.trials.teleop import TeleopStudy

    try:
        profiles = load_profiles(args.profiles_file)
    except (ProfileError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    names = list(args.profiles or profiles)
    missing = [n for n in names if n not in profiles]
    if missing:
        raise UsageError(f"unknown profiles {missing}; known: {', '.join(profiles)}")
    try:
        study = TeleopStudy(tuple(profiles[n] for n in names), sim_arm, tasks=args.tasks, speeds=args.speeds,
                            seeds=args.seeds, rate_hz=args.rate_hz)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return _run(study, args)


@command
def _exo(args: argparse.Namespace) -> int:
    from machaon.trials.exo import ExoStudy

    try:
        study = ExoStudy(sim_legs, wearers=args.wearers, gains=args.gains, duration_s=args.duration, skip_s=args.skip)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return _run(study, args)


@command
def _ortho(args: argparse.Namespace) -> int:
    from machaon.trials.ortho import OrthoStudy

    try:
        levels = None if args.levels is None else tuple(lv for group in args.levels for lv in group)
        study = OrthoStudy.create(screws=args.screws, levels=levels, noise=args.noise, compare=args.compare)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return _run(study, args)
