"""Replay a recording through the assist controller: what would the exo have commanded?

The recording's EMG and IMU samples are released in time order (``RecordingSource``) to an
``AssistController`` running at ``rate_hz``. Joint angles come from the IMUs (hip = thigh
inclination, pelvis assumed upright; knee = thigh - shank), their rates by finite difference,
so a recording without joint encoders can be replayed. A recording without IMU channels replays
in the transparent fallback (the controller has no gait phase) and says so.

MVC normalisation: from an MVC trial recording if given, else from the recording itself (the
highest 0.5 s mean envelope per channel, "peak dynamic" normalisation), which the summary notes.
"""

from __future__ import annotations

import collections
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.exo.controller import AssistConfig, AssistController, AssistStatus
from machaon.exo.emg import EMGConfig, MVCNormaliser, envelope_offline
from machaon.exo.imu import SegmentOrientation, sagittal_angle_from_quat
from machaon.exo.recording import Recording, RecordingSource
from machaon.exo.sensors import SensorBatch
from machaon.types import JointState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    """Per control cycle: ``t`` (n,), ``tau`` (n, 4) N m, ``q`` (n, 4) rad from the IMUs,
    ``assisting`` (n,) bool; ``reasons`` counts cycles per transparent-mode reason;
    ``statuses`` the controller status of every cycle; ``mvc_source`` where the MVC came from."""

    t: np.ndarray
    tau: np.ndarray
    q: np.ndarray
    assisting: np.ndarray
    reasons: dict
    statuses: list
    heel_strikes: dict
    stride_time_s: dict
    mvc_source: str

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "tau_hip_l_nm", "tau_knee_l_nm", "tau_hip_r_nm", "tau_knee_r_nm",
                        "q_hip_l_rad", "q_knee_l_rad", "q_hip_r_rad", "q_knee_r_rad", "mode", "reason",
                        "phase_l", "phase_r"])
            for i in range(self.t.size):
                s: AssistStatus = self.statuses[i]
                w.writerow([f"{self.t[i]:.4f}", *(f"{x:.5f}" for x in self.tau[i]), *(f"{x:.5f}" for x in self.q[i]),
                            s.mode, s.reason, f"{s.phase[0]:.4f}", f"{s.phase[1]:.4f}"])


def mvc_from_recording(rec: Recording, emg_cfg: EMGConfig) -> MVCNormaliser:
    """Peak-dynamic normaliser: the highest 0.5 s mean envelope of each channel of ``rec``."""
    env = envelope_offline(rec.emg_v, emg_cfg)
    return MVCNormaliser.from_trial(env, emg_cfg.fs_hz, window_s=min(0.5, 0.5 * rec.duration_s))


class _ImuJointAngles:
    """Joint angles (hip_l, knee_l, hip_r, knee_r) from the 4 IMUs, updated on each IMU sample."""

    def __init__(self, fs_hz: float, index: tuple[int, int, int, int]) -> None:
        self.est = [SegmentOrientation(fs_hz) for _ in range(4)]
        self.index = index
        self.q = np.zeros(4)
        self.dq = np.zeros(4)
        self._t: float | None = None

    def update(self, t_imu: np.ndarray, imu: np.ndarray) -> None:
        for k in range(imu.shape[0]):
            alpha = np.array([float(sagittal_angle_from_quat(self.est[j].update(imu[k, i, :3], imu[k, i, 3:])))
                              for j, i in enumerate(self.index)])
            q = np.array([alpha[0], alpha[0] - alpha[1], alpha[2], alpha[2] - alpha[3]])
            t = float(t_imu[k])
            if self._t is not None and t > self._t:
                # First-order filtered finite difference (IMU-rate differentiation is noisy).
                self.dq += 0.3 * ((q - self.q) / (t - self._t) - self.dq)
            self.q, self._t = q, t


class _Tee:
    """Hands the same batches to the controller and to the joint-angle estimator."""

    def __init__(self, src: RecordingSource, angles: _ImuJointAngles | None) -> None:
        self.src, self.angles = src, angles

    def poll(self) -> SensorBatch:
        b = self.src.poll()
        if self.angles is not None and b.imu.shape[0]:
            self.angles.update(b.t_imu, b.imu)
        return b


def replay_recording(
    rec: Recording,
    cfg: AssistConfig | None = None,
    emg_cfg: EMGConfig | None = None,
    mvc: MVCNormaliser | None = None,
    rate_hz: float = 1000.0,
) -> ReplayResult:
    """Run the controller over the whole recording; see the module docstring."""
    cfg = cfg or AssistConfig()
    emg_cfg = emg_cfg or EMGConfig(fs_hz=rec.emg_rate_hz)
    if rec.emg_v.shape[1] != 8:
        raise ValueError(f"the exo controller needs 8 EMG channels, the recording has {rec.emg_v.shape[1]}")
    mvc_source = "mvc trial"
    if mvc is None:
        mvc = mvc_from_recording(rec, emg_cfg)
        mvc_source = "peak dynamic (from the recording itself)"
    has_imu = rec.imu.shape[0] > 0 and rec.imu.shape[1] >= 4
    if not has_imu:
        log.warning("recording has no IMU channels: the controller stays transparent (no gait phase)")
    imu_rate = rec.imu_rate_hz if has_imu else cfg.imu_rate_hz
    cfg = AssistConfig(**{**cfg.__dict__, "imu_rate_hz": imu_rate})
    src = RecordingSource(rec)
    angles = _ImuJointAngles(imu_rate, cfg.imu_index) if has_imu else None
    ctrl = AssistController(_Tee(src, angles), mvc, cfg, emg_cfg)
    n = int(rec.duration_s * rate_hz)
    t_out = np.empty(n)
    tau = np.empty((n, 4))
    q_out = np.empty((n, 4))
    statuses: list[AssistStatus] = []
    for i in range(n):
        t = (i + 1) / rate_hz
        src.advance(t)
        q = angles.q.copy() if angles is not None else np.zeros(4)
        dq = angles.dq.copy() if angles is not None else np.zeros(4)
        # The joint state of cycle i is the one before this cycle's samples are folded in.
        cmd = ctrl.update(JointState(t, q, dq, np.zeros(4)), t)
        t_out[i], tau[i], q_out[i] = t, cmd.tau, q
        statuses.append(ctrl.status)
    reasons = collections.Counter(s.reason for s in statuses if s.mode != "assist")
    hs = {s: list(ctrl.gait[s].heel_strikes) for s in ("l", "r")}
    stride = {s: float(np.median(np.diff(v))) if len(v) > 1 else None for s, v in hs.items()}
    return ReplayResult(t_out, tau, q_out, np.array([s.mode == "assist" for s in statuses]), dict(reasons),
                        statuses, hs, stride, mvc_source)
