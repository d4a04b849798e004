"""Process a surface-EMG recording: filter, envelope, normalise, find the muscle bursts.

    python examples/process_emg.py walk.csv       # a CSV or C3D recording (machaon.exo.recording)
    python examples/process_emg.py                # no file: record a synthetic one first

The chain is the one the exoskeleton runs live: band-pass 20-450 Hz, mains notch, rectify,
5 Hz envelope (SciPy's Butterworth designs), normalised to each muscle's maximal contraction, then
a double-threshold onset detector. Without a file, the project's motor-unit model of the eight
leg muscles fires three bursts of rising effort (with 50 Hz hum) and writes them as CSV.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from machaon.exo.emg import EMGConfig, MVCNormaliser, detect_onsets, envelope_offline
from machaon.exo.frames import EMG_CHANNELS, IMU_SENSORS
from machaon.exo.recording import Recording, read_recording, write_csv


def synthetic_recording(path: Path, fs_hz: float = 2000.0, seconds: float = 4.0, seed: int = 0) -> None:
    """Three bursts (25 %, 50 %, 100 % effort) on every channel, 0.3 s rest before each, mains hum."""
    from machaon.sim.legs import MotorUnitEMG

    rng = np.random.default_rng(seed)
    n_ch = len(EMG_CHANNELS)
    model = MotorUnitEMG(n_ch, fs_hz, n_mu=60, mvc_rms_v=1e-3, pool_scale=np.ones(n_ch), rng=rng)
    block = int(fs_hz * 0.01)
    drive = lambda t: next((u for t0, u in ((0.5, 0.25), (1.7, 0.5), (2.9, 1.0)) if t0 <= t < t0 + 0.8), 0.0)  # noqa: E731
    emg = np.concatenate([model.generate(np.full(n_ch, drive(k * 0.01)), block) for k in range(int(seconds * 100))])
    t = np.arange(emg.shape[0]) / fs_hz
    emg += 20e-6 * np.sin(2 * np.pi * 50.0 * t)[:, None] + rng.normal(0.0, 5e-6, emg.shape)
    write_csv(path, Recording(emg, fs_hz, EMG_CHANNELS, np.zeros((0, len(IMU_SENSORS), 6)), 200.0, IMU_SENSORS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", nargs="?", help="CSV or C3D file (default: a synthetic recording)")
    ap.add_argument("--mains", type=float, default=50.0, help="mains frequency to notch out (Hz)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.recording) if args.recording else Path(tmp) / "synthetic_emg.csv"
        if not args.recording:
            synthetic_recording(path)
            print(f"no recording given: wrote a synthetic one ({path.name})")
        rec = read_recording(path)
    print(f"{rec.emg_v.shape[1]} EMG channels, {rec.duration_s:.1f} s at {rec.emg_rate_hz:g} Hz")

    cfg = EMGConfig(fs_hz=rec.emg_rate_hz, mains_hz=args.mains)
    envelope = envelope_offline(rec.emg_v, cfg)  # V, causal filtering as on the exoskeleton
    activation = MVCNormaliser.from_trial(envelope, cfg.fs_hz)(envelope)  # 1.0 = the strongest half second
    bursts = detect_onsets(envelope, cfg.fs_hz)
    for c, label in enumerate(rec.emg_labels):
        on = [f"{b.onset / cfg.fs_hz:.2f}-{b.offset / cfg.fs_hz:.2f} s" for b in bursts if b.channel == c]
        print(f"{label:>6}: peak activation {activation[:, c].max():.2f}, bursts {', '.join(on) or 'none'}")


if __name__ == "__main__":
    main()
