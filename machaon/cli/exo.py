"""``machaon exo``: EMG/IMU-driven exoskeleton assist.

- ``machaon exo sim``: the wearer + exo PyBullet simulation (``machaon.sim.legs.LegSim``) with the
  assist controller. ``--headless --out DIR`` walks once without and once with assist and
  writes ``DIR/report.json`` (``symmetry_index_no_assist``, ``symmetry_index_assist``, ...) and
  the plots.
- ``machaon exo replay FILE``: run a CSV/C3D recording through the controller and write what it
  would have commanded (``--out DIR``: commands.csv, summary.json, plot).
- ``machaon exo run --port PORT --acq-port ACQ``: live, on the Dynamixel actuator chain
  (``machaon.hardware.ActuatorBackend``) with the acquisition board on ``ACQ``.
- ``machaon exo events FILE --out DIR``: gait events of a gait-lab C3D/CSV (force plates, else
  markers, else IMU gyroscopes) to ``DIR/events.csv`` (``side,event,time_s``) and ``DIR/events.json``.
- ``machaon exo analyze FILE --out DIR``: the gait report (timing, symmetry, joint angles, EMG
  envelopes per cycle) as ``DIR/summary.json`` and plots.

This module is the one place that chooses the backend (sim or hardware) by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from machaon.cli._bridges import (
    add_live_view_args,
    add_record_args,
    check_record_args,
    open_live_view,
    open_run_log,
    paced,
)
from machaon.cli._common import (
    add_hardware_arguments,
    add_option,
    command,
    hardware_config,
    open_backend,
    usage_errors,
    warn,
)
from machaon.errors import SimError, UsageError

if TYPE_CHECKING:  # the CLI imports its subsystems when a command runs, not at start-up
    from machaon.control.supervisor import Supervisor
    from machaon.exo.acquisition import SerialAcquisition
    from machaon.exo.controller import AssistConfig, AssistController, AssistStatus
    from machaon.exo.emg import EMGConfig, MVCNormaliser
    from machaon.exo.replay import ReplayResult
    from machaon.robot.loop import LoopStats

log = logging.getLogger(__name__)

WALK_RATE_HZ = 1000.0  # ``exo sim``'s control-loop rate (``run_walk``'s default)


def _floats(text: str, n: int | None = None) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if n is not None and len(vals) not in (1, n):
        raise argparse.ArgumentTypeError(f"expected 1 or {n} numbers, got {len(vals)}")
    if n is not None and len(vals) == 1:
        vals = vals * n
    return vals


def _add_gains(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("assist controller")
    g.add_argument("--k-max", type=float, help="maximum adaptive stiffness (N m/rad)")
    g.add_argument("--k-init", type=float, help="initial stiffness (N m/rad)")
    g.add_argument("--adapt-gain", type=float, help="stiffness growth per rad of excess error per s")
    g.add_argument("--error-tolerance", type=float, help="tracking error tolerated before assisting (rad)")
    g.add_argument("--k-myo", type=lambda s: _floats(s, 4), help="myoelectric gains N m (1 or 4 values)")
    g.add_argument("--profile-gain", type=lambda s: _floats(s, 4), help="assist-profile amplitudes N m (1 or 4)")
    g.add_argument("--damping", type=float, help="damping of the transparent fallback (N m s/rad)")
    g.add_argument("--phase-reference", choices=("leader", "mean"), help="inter-limb reference phase")


def _assist_config(args: argparse.Namespace, assist: bool, **extra: object) -> AssistConfig:
    from machaon.exo.controller import AssistConfig

    kw: dict = dict(extra)
    for arg, name in (("k_max", "k_max"), ("k_init", "k_init"), ("adapt_gain", "adapt_gain"),
                      ("error_tolerance", "error_tolerance_rad"), ("k_myo", "k_myo_nm"),
                      ("profile_gain", "profile_nm"), ("damping", "damping_nm_s"),
                      ("phase_reference", "phase_reference")):
        v = getattr(args, arg, None)
        if v is not None:
            kw[name] = v
    if args.k_init is None and args.k_max is not None:
        kw.setdefault("k_init", min(20.0, args.k_max))
    if not assist:
        kw["assist"] = False
        kw.setdefault("damping_nm_s", 0.0)
    return AssistConfig(**kw)


# -- sim -------------------------------------------------------------------------------------------

@command
def _cmd_sim(args: argparse.Namespace) -> int:
    from machaon.exo.reference import load_reference_gait
    from machaon.exo.report import write_sim_report
    from machaon.sim.legs import LegSim, LegSimConfig, WearerConfig

    if args.out and not args.headless:
        raise UsageError("--out runs two walks back to back; add --headless")
    if not (math.isfinite(args.duration) and math.isfinite(args.skip) and args.skip >= 0):
        raise UsageError(f"--duration and --skip must be finite seconds (>= 0), got {args.duration}, {args.skip}")
    if args.duration <= args.skip + 2.0:
        raise UsageError(f"--duration must exceed --skip ({args.skip} s) by at least 2 s")
    if args.out:
        from machaon._io import check_output_dir

        check_output_dir(args.out, what="--out")  # before two walks, not after
    check_record_args(args)
    with usage_errors(context="bad setting"):
        wearer = WearerConfig(weak_side=args.weak_side, weakness=args.weakness, spasticity_nm_s=args.spasticity)
        sim_cfg = LegSimConfig(seed=args.seed)
        runs = [False, True] if args.out else [not args.no_assist]
        cfgs = {a: _assist_config(args, a) for a in runs}
    ref = load_reference_gait()
    results = _walks(args, runs, cfgs, lambda: LegSim(wearer, sim_cfg, gui=not args.headless), ref)
    if args.out:
        settings = {
            "duration_s": args.duration, "skip_s": args.skip, "seed": args.seed, "weak_side": args.weak_side,
            "weakness_hip_knee_ankle": list(args.weakness), "spasticity_nm_s": args.spasticity,
            "assist_config": {k: v for k, v in cfgs[True].__dict__.items()},
        }
        data = write_sim_report(args.out, results[False], results[True], ref, settings, args.skip)
        print(json.dumps({k: data[k] for k in ("symmetry_index_no_assist", "symmetry_index_assist",
                                               "symmetry_improvement")}, indent=2))
        print(f"report written to {Path(args.out) / 'report.json'}")
        return 0
    res = next(iter(results.values()))
    print(json.dumps(res.report.to_dict(), indent=2))
    return 0


def _walks(args: argparse.Namespace, runs: list[bool], cfgs: dict, make_sim: object, ref: object) -> dict:
    """Walk once per entry of ``runs`` (assist off/on) in a new ``make_sim()``; the live view watches every
    walk, the run log (``--record``) the last one (with ``--out``: the walk with assist)."""
    from machaon.exo.walk import run_walk
    from machaon.robot.observers import Observers, RealTimePacer
    from machaon.sim.legs import EXO_JOINTS

    results = {}
    with contextlib.ExitStack() as stack:
        frames = _exo_frames()
        live = open_live_view(args, EXO_JOINTS, frames)
        observer = None
        if live is not None:
            stack.enter_context(live)
            observer = Observers(live, RealTimePacer()) if paced(args, live) else live
        # the run log takes what the live view takes
        runlog = open_run_log(args, stack, {"source": "machaon exo sim", "seed": str(args.seed),
                                            "assist": str(runs[-1]).lower()},
                              rate_hz=WALK_RATE_HZ, joint_names=EXO_JOINTS, link_frames=frames)
        for assist in runs:
            print(f"walking {args.duration:.1f} s {'with' if assist else 'without'} assist ...", file=sys.stderr)
            with usage_errors(SimError):  # no display for the GUI
                sim = make_sim()
            recorder = observer
            if runlog is not None and assist == runs[-1]:
                recorder = runlog if observer is None else Observers(runlog, observer)
            with sim:
                results[assist] = run_walk(sim, args.duration, cfgs[assist], reference=ref, skip_s=args.skip,
                                           recorder=recorder, rate_hz=WALK_RATE_HZ)
    return results


def _exo_frames() -> object:
    """Both legs' links (thigh, shank) relative to the pelvis, from the exo joints (hip_l, knee_l, hip_r, knee_r)."""
    from machaon.kinematics import Chain
    from machaon.robot.link_frames import LinkFrames, TreeFrames
    from machaon.sim.legs import DESCRIPTIONS

    urdf = DESCRIPTIONS / "exo_legs.urdf"
    return TreeFrames([(LinkFrames.from_chain(Chain.from_urdf(urdf, "pelvis", f"shank_{s}"), tool_frame=None), idx)
                       for s, idx in (("l", (0, 1)), ("r", (2, 3)))])


# -- replay ----------------------------------------------------------------------------------------

@command
def _cmd_replay(args: argparse.Namespace) -> int:
    import numpy as np

    from machaon.exo.emg import EMGConfig
    from machaon.exo.recording import RecordingError, read_recording
    from machaon.exo.replay import mvc_from_recording, replay_recording

    if args.out:
        from machaon._io import check_output_dir

        check_output_dir(args.out, what="--out")  # before the work, not after it
    with usage_errors(RecordingError, ValueError, OSError, context=f"cannot replay {args.file}"):
        rec = read_recording(args.file)
        emg_cfg = EMGConfig(fs_hz=rec.emg_rate_hz, mains_hz=args.mains)
        mvc = mvc_from_recording(read_recording(args.mvc), emg_cfg) if args.mvc else None
        cfg = _assist_config(args, True)
        res = replay_recording(rec, cfg, emg_cfg, mvc)
    summary = {
        "file": str(args.file),
        "duration_s": rec.duration_s,
        "emg_channels": list(rec.emg_labels),
        "imu_sensors": list(rec.imu_labels),
        "mvc_normalisation": res.mvc_source,
        "cycles": int(res.t.size),
        "assist_fraction": float(res.assisting.mean()) if res.t.size else 0.0,
        "transparent_reasons": res.reasons,
        "stride_time_s": res.stride_time_s,
        "heel_strikes_s": res.heel_strikes,
        "tau_rms_nm": dict(zip(("hip_l", "knee_l", "hip_r", "knee_r"),
                               np.sqrt(np.mean(res.tau**2, axis=0)).round(4).tolist(), strict=True)),
        "tau_peak_nm": dict(zip(("hip_l", "knee_l", "hip_r", "knee_r"),
                                np.abs(res.tau).max(axis=0).round(4).tolist(), strict=True)),
    }
    if args.out:
        out = Path(args.out)
        names = ("commands.csv", "commands.png", "summary.json")
        summary["written"] = [str(out / n) for n in names]
        # everything goes to a temporary folder beside the output first, then into place: a failure
        # half-way leaves no half-written folder
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            res.write_csv(tmp / "commands.csv")
            _plot_replay(res, tmp / "commands.png")
            with open(tmp / "summary.json", "w") as f:
                json.dump(summary, f, indent=2)
            if out.exists():
                for n in names:
                    os.replace(tmp / n, out / n)
                tmp.rmdir()
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(json.dumps(summary, indent=2))
    return 0


def _plot_replay(res: ReplayResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(10, 7))
    names = ("hip_l", "knee_l", "hip_r", "knee_r")
    for j in range(4):
        axes[0].plot(res.t, res.tau[:, j], label=names[j])
        axes[1].plot(res.t, np.degrees(res.q[:, j]), label=names[j])
    act = np.array([s.activation for s in res.statuses])
    axes[2].plot(res.t, act)
    axes[0].set_ylabel("commanded torque (N m)")
    axes[1].set_ylabel("IMU joint angle (deg)")
    axes[2].set_ylabel("EMG envelope / MVC")
    axes[0].legend(ncol=4, fontsize=8)
    axes[2].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- run (live) ------------------------------------------------------------------------------------

def _calibrate_live(acq: SerialAcquisition, seconds: float, emg_cfg: EMGConfig) -> MVCNormaliser:
    """MVC levels from ``seconds`` of board EMG while the wearer contracts each muscle maximally."""
    import time

    import numpy as np

    from machaon.exo.emg import MVCNormaliser, envelope_offline

    print(f"MVC calibration: contract each muscle maximally for {seconds:.1f} s ...", file=sys.stderr)
    chunks = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        b = acq.poll()
        if b.emg_v.shape[0]:
            chunks.append(b.emg_v)
        time.sleep(0.01)
    emg = np.vstack(chunks) if chunks else np.zeros((0, 8))
    if emg.shape[0] < 0.5 * emg_cfg.fs_hz or not np.isfinite(emg).all():
        raise ValueError(f"only {emg.shape[0]} valid EMG samples in {seconds:.1f} s: is the board streaming?")
    env = envelope_offline(emg, emg_cfg)
    return MVCNormaliser.from_trial(env, emg_cfg.fs_hz, window_s=min(0.5, 0.25 * emg.shape[0] / emg_cfg.fs_hz))


def _exo_config(args: argparse.Namespace) -> tuple[object, object, float, object]:
    """(actuator config, assist config, control rate Hz, EMG config) from ``--hw-config`` and the flags.

    The actuator TOML (default ``exo_actuators.toml``) also holds the ``[assist]`` limits and rate.
    """
    from machaon.exo.emg import EMGConfig
    from machaon.exo.reference import DESCRIPTIONS

    path = args.hw_config or DESCRIPTIONS / "exo_actuators.toml"
    act_cfg, raw = hardware_config(args, default=path)
    with usage_errors(ValueError, TypeError, KeyError, context=f"bad exo configuration {path}"):
        lim = raw.get("assist", {})
        extra = {k: tuple(lim[k]) for k in ("tau_max_nm", "power_max_w", "rate_max_nm_s") if k in lim}
        for k in ("sensor_timeout_s", "imu_timeout_s"):
            if k in lim:
                extra[k] = float(lim[k])
        if "k_max" in lim and args.k_max is None:
            extra["k_max"] = float(lim["k_max"])
            extra["k_init"] = min(20.0, float(lim["k_max"]))
        cfg = _assist_config(args, not args.no_assist, **extra)
        rate_hz = args.rate_hz or float(lim.get("rate_hz", 500.0))
        emg_cfg = EMGConfig(mains_hz=args.mains)
    if [j.name for j in act_cfg.joints] != list(cfg.joints):
        raise UsageError(f"{path}: joints must be {list(cfg.joints)} in that order")
    return act_cfg, cfg, rate_hz, emg_cfg


@command
def _cmd_run(args: argparse.Namespace) -> int:
    import time

    from machaon.control.supervisor import Supervisor
    from machaon.exo.acquisition import AcquisitionError, SerialAcquisition
    from machaon.exo.controller import AssistController
    from machaon.exo.recording import RecordingError, read_recording
    from machaon.exo.replay import mvc_from_recording
    from machaon.exo.walk import RecordingController, exo_safety_config
    from machaon.robot.loop import ControlLoop

    act_cfg, cfg, rate_hz, emg_cfg = _exo_config(args)
    with usage_errors(AcquisitionError):
        acq = SerialAcquisition(args.acq_port).open()
    with acq:
        with usage_errors(RecordingError, ValueError, context="MVC calibration failed"):
            mvc = (mvc_from_recording(read_recording(args.mvc), emg_cfg) if args.mvc
                   else _calibrate_live(acq, args.calibrate, emg_cfg))
        with open_backend(args, hw=act_cfg) as backend:
            ctrl = AssistController(acq, mvc, cfg, emg_cfg)
            rec = RecordingController(ctrl)
            sup = Supervisor(exo_safety_config(cfg.tau_max_nm))
            loop = ControlLoop(backend, rec, sup, rate_hz=rate_hz)
            try:
                if args.duration:
                    loop.run_for(args.duration)
                else:
                    print("running; Ctrl-C stops (the exo goes limp)", file=sys.stderr)
                    with loop:
                        while loop.running:
                            time.sleep(0.2)
            except KeyboardInterrupt:
                pass
            except RuntimeError as exc:
                warn(f"control loop stopped: {exc}")
            stats = loop.stats()
    print(json.dumps(_run_summary(rec.statuses, ctrl, acq, sup, stats, rate_hz), indent=2))
    return 0


def _run_summary(sts: list[AssistStatus], ctrl: AssistController, acq: SerialAcquisition, sup: Supervisor,
                 stats: LoopStats, rate_hz: float) -> dict:
    """What ``exo run`` prints: cycles, assist fraction, fallbacks, torques, acquisition, supervisor, loop."""
    import collections

    import numpy as np

    reasons = collections.Counter(s.reason for s in sts if s.mode != "assist")
    taus = np.array([s.tau for s in sts]) if sts else np.zeros((0, 4))
    return {
        "cycles": len(sts),
        "rate_hz": rate_hz,
        "assist_fraction": float(np.mean([s.mode == "assist" for s in sts])) if sts else 0.0,
        "fallbacks": ctrl.fallback_count,
        "fallback_cycles": ctrl.fallback_cycles,
        "transparent_reasons": dict(reasons),
        "tau_rms_nm": np.sqrt(np.mean(taus**2, axis=0)).round(4).tolist() if sts else None,
        "acquisition": acq.stats.__dict__,
        "supervisor_state": sup.state.value,
        "supervisor_last_fault": list(sup.last_fault) if sup.last_fault else None,
        "loop": {k: float(v) for k, v in stats.as_dict().items()},
    }


# -- events / analyze (gait-lab files) -------------------------------------------------------------

@command
def _cmd_events(args: argparse.Namespace) -> int:
    from machaon.exo.emg_signals import EMGSignalError
    from machaon.exo.events import agreement, detect_events, write_events_csv
    from machaon.exo.gait_analysis import staged_dir
    from machaon.exo.gaitfile import GaitFileError, read_gait_file

    with usage_errors(GaitFileError, EMGSignalError):  # the file cannot be used as it is: bad input
        trial = read_gait_file(args.file)
        det = detect_events(trial, args.source)
    info = {"file": str(args.file), "source": det.source, "counts": det.counts(),
            "notes": list(trial.notes) + list(det.notes),
            "events": [{"side": e.side, "event": e.event, "time_s": round(e.time_s, 4), "source": e.source}
                       for e in det.events]}
    if trial.file_events:  # the file's own annotated events: say how well ours agree with them
        info["file_events_agreement"] = agreement(det, trial.file_events)
    with usage_errors(OSError, context=f"cannot write {args.out}"), staged_dir(args.out) as tmp:
        write_events_csv(tmp / "events.csv", det.events)
        (tmp / "events.json").write_text(json.dumps(info, indent=2))
    print(f"{len(det.events)} events from {det.source}: {json.dumps(det.counts())}")
    print(f"wrote {Path(args.out) / 'events.csv'}")
    return 0


@command
def _cmd_analyze(args: argparse.Namespace) -> int:
    from machaon.exo.emg_signals import EMGSignalError
    from machaon.exo.events import detect_events
    from machaon.exo.gait_analysis import analyze_trial, write_gait_report
    from machaon.exo.gaitfile import GaitFileError, read_gait_file

    with usage_errors(GaitFileError, EMGSignalError):  # the file cannot be used as it is: bad input
        trial = read_gait_file(args.file)
        det = detect_events(trial, args.source)
        report = analyze_trial(trial, det, mains_hz=args.mains)
    with usage_errors(OSError, ValueError, context=f"cannot write {args.out}"):
        written = write_gait_report(args.out, report)
    s = report.summary
    brief = {k: s[k] for k in ("event_source", "cadence_steps_min", "symmetry_index", "cycles")}
    print(json.dumps(brief, indent=2))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


# -- registration ----------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``exo`` subcommand and its sub-subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("exo", help="exoskeleton assist: sim (wearer + exo), replay (EMG/IMU processing), "
                                                "run (live), events and analyze (gait-lab recordings)")
    parser.set_defaults(func=command(lambda args: (parser.print_help(), 2)[1]))
    exo = parser.add_subparsers(dest="exo_command", metavar="EXO_COMMAND")

    p = exo.add_parser("sim", help="simulated wearer + exo (PyBullet); --headless --out DIR compares assist on/off")
    p.add_argument("--headless", action="store_true", help="PyBullet DIRECT mode (no window)")
    add_option(p, "--out", old=("--report",), metavar="DIR",
               help="walk without and with assist, write DIR/report.json + plots")
    p.add_argument("--duration", type=float, default=16.0, help="walk duration per run (s)")
    p.add_argument("--skip", type=float, default=4.0, help="start-up time left out of the metrics (s)")
    p.add_argument("--no-assist", action="store_true", help="single run with the exo transparent")
    p.add_argument("--weak-side", choices=("l", "r", "none"), default="r")
    p.add_argument("--weakness", type=lambda s: _floats(s, 3), default=(0.25, 0.25, 1.0),
                   help="strength left on the weak side, hip,knee,ankle (fractions)")
    p.add_argument("--spasticity", type=float, default=8.0, help="weak knee-extensor reflex gain (N m s/rad)")
    p.add_argument("--seed", type=int, default=0)
    add_record_args(p, "write a run log (MCAP) of the walk (with --out: of the walk with assist): joint states "
                       "and commands, supervisor events, the legs' /tf, as the Foxglove live view shows them")
    add_live_view_args(p)
    _add_gains(p)
    p.set_defaults(func=_cmd_sim)

    p = exo.add_parser("replay", help="process a CSV/C3D recording; show what the controller would command")
    p.add_argument("file", help="recording (.csv or .c3d)")
    p.add_argument("--mvc", help="MVC trial recording for EMG normalisation (default: peak dynamic)")
    p.add_argument("--mains", type=float, default=50.0, choices=(50.0, 60.0), help="mains frequency (Hz)")
    p.add_argument("--out", metavar="DIR", help="write commands.csv, commands.png, summary.json")
    _add_gains(p)
    p.set_defaults(func=_cmd_replay)

    p = exo.add_parser("run", help="live assist on the Dynamixel exo actuators with the EMG/IMU board")
    add_hardware_arguments(p, port_required=True, config_help="actuator TOML (default: exo_actuators.toml)")
    p.add_argument("--acq-port", required=True, help="serial port of the EMG/IMU acquisition board")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    add_option(p, "--rate-hz", old=("--rate",), type=float, help="control rate (Hz; default from the TOML)")
    p.add_argument("--mvc", help="MVC trial recording; without it, a live MVC calibration runs first")
    p.add_argument("--calibrate", type=float, default=5.0, help="live MVC calibration time (s)")
    p.add_argument("--mains", type=float, default=50.0, choices=(50.0, 60.0), help="mains frequency (Hz)")
    p.add_argument("--no-assist", action="store_true", help="transparent mode only (zero assist + damping)")
    _add_gains(p)
    p.set_defaults(func=_cmd_run)

    sources = ("auto", "force_plates", "markers", "imu")
    p = exo.add_parser("events", help="gait events of a gait-lab C3D/CSV -> DIR/events.csv (side,event,time_s)")
    p.add_argument("file", help="gait trial (.c3d or .csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for events.csv and events.json")
    p.add_argument("--source", choices=sources, default="auto",
                   help="event source (default: force plates, else markers, else IMU)")
    p.set_defaults(func=_cmd_events)

    p = exo.add_parser("analyze", help="gait report of a C3D/CSV: timing, symmetry, joint angles, EMG per cycle")
    p.add_argument("file", help="gait trial (.c3d or .csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for summary.json, events.csv and plots")
    p.add_argument("--source", choices=sources, default="auto", help="event source (default: auto)")
    p.add_argument("--mains", type=float, choices=(50.0, 60.0), default=None,
                   help="mains frequency (Hz; default: found from the EMG spectrum)")
    p.set_defaults(func=_cmd_analyze)
