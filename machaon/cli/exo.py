"""``machaon exo``: EMG/IMU-driven exoskeleton assist.

- ``machaon exo sim``: the wearer + exo PyBullet simulation (``machaon.sim.legs.LegSim``) with the
  assist controller. ``--headless --report DIR`` walks once without and once with assist and
  writes ``DIR/report.json`` (``symmetry_index_no_assist``, ``symmetry_index_assist``, ...) and
  the plots.
- ``machaon exo replay FILE``: run a CSV/C3D recording through the controller and write what it
  would have commanded (``--out DIR``: commands.csv, summary.json, plot).
- ``machaon exo run --port PORT --acq-port ACQ``: live, on the Dynamixel actuator chain
  (``machaon.hardware.ActuatorBackend``) with the acquisition board on ``ACQ``.

This module is the one place that chooses the backend (sim or hardware) by name.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


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


def _assist_config(args: argparse.Namespace, assist: bool, **extra: object) -> object:
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

def _cmd_sim(args: argparse.Namespace) -> int:
    from machaon.exo.reference import load_reference_gait
    from machaon.exo.report import write_sim_report
    from machaon.exo.session import run_walk
    from machaon.sim.legs import LegSim, LegSimConfig, WearerConfig

    if args.report and not args.headless:
        print("--report runs two walks back to back; add --headless", file=sys.stderr)
        return 2
    if args.duration <= args.skip + 2.0:
        print(f"--duration must exceed --skip ({args.skip} s) by at least 2 s", file=sys.stderr)
        return 2
    try:
        wearer = WearerConfig(weak_side=args.weak_side, weakness=args.weakness, spasticity_nm_s=args.spasticity)
        sim_cfg = LegSimConfig(seed=args.seed)
        runs = [False, True] if args.report else [not args.no_assist]
        cfgs = {a: _assist_config(args, a) for a in runs}
    except ValueError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 2
    ref = load_reference_gait()
    results = {}
    for assist in runs:
        print(f"walking {args.duration:.1f} s {'with' if assist else 'without'} assist ...", file=sys.stderr)
        with LegSim(wearer, sim_cfg, gui=not args.headless) as sim:
            results[assist] = run_walk(sim, args.duration, cfgs[assist], reference=ref, skip_s=args.skip)
    if args.report:
        settings = {
            "duration_s": args.duration, "skip_s": args.skip, "seed": args.seed, "weak_side": args.weak_side,
            "weakness_hip_knee_ankle": list(args.weakness), "spasticity_nm_s": args.spasticity,
            "assist_config": {k: v for k, v in cfgs[True].__dict__.items()},
        }
        data = write_sim_report(args.report, results[False], results[True], ref, settings, args.skip)
        print(json.dumps({k: data[k] for k in ("symmetry_index_no_assist", "symmetry_index_assist",
                                               "symmetry_improvement")}, indent=2))
        print(f"report written to {Path(args.report) / 'report.json'}")
        return 0
    res = next(iter(results.values()))
    print(json.dumps(res.report.to_dict(), indent=2))
    return 0


# -- replay ----------------------------------------------------------------------------------------

def _cmd_replay(args: argparse.Namespace) -> int:
    import numpy as np

    from machaon.exo.emg import EMGConfig
    from machaon.exo.recording import RecordingError, read_recording
    from machaon.exo.replay import mvc_from_recording, replay_recording

    try:
        rec = read_recording(args.file)
        emg_cfg = EMGConfig(fs_hz=rec.emg_rate_hz, mains_hz=args.mains)
        mvc = mvc_from_recording(read_recording(args.mvc), emg_cfg) if args.mvc else None
        cfg = _assist_config(args, True)
        res = replay_recording(rec, cfg, emg_cfg, mvc)
    except (RecordingError, ValueError, OSError) as exc:
        print(f"cannot replay {args.file}: {exc}", file=sys.stderr)
        return 2
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
        out.mkdir(parents=True, exist_ok=True)
        res.write_csv(out / "commands.csv")
        _plot_replay(res, out / "commands.png")
        with open(out / "summary.json", "w") as f:
            json.dump(summary, f, indent=2)
        summary["written"] = [str(out / n) for n in ("commands.csv", "commands.png", "summary.json")]
    print(json.dumps(summary, indent=2))
    return 0


def _plot_replay(res: object, path: Path) -> None:
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


# -- registration ----------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``exo`` subcommand and its sub-subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("exo", help="exoskeleton assist: EMG/IMU processing, leg simulation, replay, live run")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    exo = parser.add_subparsers(dest="exo_command", metavar="EXO_COMMAND")

    p = exo.add_parser("sim", help="simulated wearer + exo (PyBullet); --headless --report DIR compares assist on/off")
    p.add_argument("--headless", action="store_true", help="PyBullet DIRECT mode (no window)")
    p.add_argument("--report", metavar="DIR", help="walk without and with assist, write DIR/report.json + plots")
    p.add_argument("--duration", type=float, default=16.0, help="walk duration per run (s)")
    p.add_argument("--skip", type=float, default=4.0, help="start-up time left out of the metrics (s)")
    p.add_argument("--no-assist", action="store_true", help="single run with the exo transparent")
    p.add_argument("--weak-side", choices=("l", "r", "none"), default="r")
    p.add_argument("--weakness", type=lambda s: _floats(s, 3), default=(0.25, 0.25, 1.0),
                   help="strength left on the weak side, hip,knee,ankle (fractions)")
    p.add_argument("--spasticity", type=float, default=8.0, help="weak knee-extensor reflex gain (N m s/rad)")
    p.add_argument("--seed", type=int, default=0)
    _add_gains(p)
    p.set_defaults(func=_cmd_sim)

    p = exo.add_parser("replay", help="process a CSV/C3D recording; show what the controller would command")
    p.add_argument("file", help="recording (.csv or .c3d)")
    p.add_argument("--mvc", help="MVC trial recording for EMG normalisation (default: peak dynamic)")
    p.add_argument("--mains", type=float, default=50.0, choices=(50.0, 60.0), help="mains frequency (Hz)")
    p.add_argument("--out", metavar="DIR", help="write commands.csv, commands.png, summary.json")
    _add_gains(p)
    p.set_defaults(func=_cmd_replay)
