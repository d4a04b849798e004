"""The PyBullet leg + exo simulation (machaon.sim.legs): Backend contract, sensors, fault injection."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.exo.emg import EMGConfig, envelope_offline
from machaon.exo.imu import detect_gait_events, sagittal_rate
from machaon.exo.metrics import contact_events
from machaon.robot.backend import Backend
from machaon.sim.legs import EXO_JOINTS, LegSim, LegSimConfig, WearerConfig
from machaon.types import JointCommand


@pytest.fixture(scope="module")
def walked() -> dict:
    """4.5 s of zero-torque walking of a healthy wearer, with every sensor poll kept."""
    out: dict = {"emg": [], "t_emg": [], "imu": [], "t_imu": [], "q": [], "dq": []}
    with LegSim(WearerConfig(weak_side="none")) as sim:
        assert isinstance(sim, Backend)
        for _ in range(4500):
            st = sim.read()
            out["q"].append(st.q)
            out["dq"].append(st.dq)
            sim.write(JointCommand.torque(np.zeros(4)))
            sim.clock.wait_until(sim.clock.now() + 1e-3)
            b = sim.sensors.poll()
            for k in ("emg", "t_emg", "imu", "t_imu"):
                out[k].append(getattr(b, "emg_v" if k == "emg" else k))
        out["trace"] = sim.trace()
        out["mvc"] = sim.mvc_trial(1.0)
    return out


def test_backend_contract() -> None:
    with LegSim() as sim:
        assert sim.dof == 4 and sim.joint_names == EXO_JOINTS
        st = sim.read()
        assert st.q.shape == (4,) and st.ok and st.t == 0.0
        sim.clock.wait_until(0.0105)
        assert sim.clock.now() == pytest.approx(0.010)  # whole 1 ms steps up to t
        with pytest.raises(ValueError, match="torque mode"):
            sim.write(JointCommand.position(np.zeros(4)))
        with pytest.raises(ValueError):
            sim.write(JointCommand.torque(np.array([0.0, np.nan, 0.0, 0.0])))
        with pytest.raises(ValueError):
            sim.write(JointCommand.torque(np.zeros(3)))
        sim.write(JointCommand.torque(np.full(4, 1e6)))  # clipped to the actuator limit
        assert np.all(sim.read().tau <= 40.0)
    with pytest.raises(ValueError):
        WearerConfig(weakness=(0.0, 1.0, 1.0))


def test_sensor_rates_and_shapes(walked) -> None:
    t_emg = np.concatenate(walked["t_emg"])
    assert np.allclose(np.diff(t_emg), 1 / 2000.0)
    assert np.vstack(walked["emg"]).shape == (t_emg.size, 8)
    t_imu = np.concatenate(walked["t_imu"])
    assert np.allclose(np.diff(t_imu), 1 / 200.0)


def test_emg_follows_muscle_drive_and_mvc(walked) -> None:
    emg = np.vstack(walked["emg"])
    cfg = EMGConfig()
    env = envelope_offline(emg, cfg)
    mvc_env = envelope_offline(walked["mvc"], cfg)[1000:].mean(axis=0)
    rms_mvc = np.sqrt(np.mean(walked["mvc"][1000:] ** 2, axis=0))
    np.testing.assert_allclose(rms_mvc, LegSimConfig().emg_mvc_rms_v, rtol=0.25)
    assert np.all(env[4000:].mean(axis=0) < 0.6 * mvc_env)
    # Hip flexor (RF_L, channel 0) envelope correlates with the positive hip drive (delayed by the
    # envelope filter).
    tr = walked["trace"]
    drive = np.repeat(np.maximum(tr.drive[:, 0], 0.0), 2)[: env.shape[0]]
    lag = 120  # samples, ~60 ms of envelope group delay
    c = np.corrcoef(env[2000 + lag :, 0], drive[2000 : env.shape[0] - lag])[0, 1]
    assert c > 0.5


def test_thigh_gyro_matches_hip_velocity(walked) -> None:
    imu = np.concatenate(walked["imu"])
    t_imu = np.concatenate(walked["t_imu"])
    dq = np.array(walked["dq"])
    # An IMU output sample is the mean over its 5 ms period (steps k-4..k); read() of cycle k+1
    # sees the state after step k.
    end = np.round(t_imu * 1000).astype(int)
    mean_dq = np.array([dq[max(e - 4, 1) : e + 1, 0].mean() for e in end])
    # Pelvis does not pitch, so the thigh's sagittal rate is the hip joint velocity.
    err = sagittal_rate(imu[:, 0, :3]) - mean_dq
    assert np.sqrt(np.mean(err[50:] ** 2)) < 0.05


def test_imu_gait_events_match_foot_contacts(walked) -> None:
    imu = np.concatenate(walked["imu"])
    t_imu = np.concatenate(walked["t_imu"])
    tr = walked["trace"]
    for s in range(2):
        ev = detect_gait_events(sagittal_rate(imu[:, 2 * s + 1, :3]), 200.0)
        hs, _ = contact_events(tr.t, tr.contact[:, s])
        hs_imu = ev.heel_strike + t_imu[0]
        hs = hs[hs > 1.0]
        hs_imu = hs_imu[hs_imu > 1.0]
        assert hs.size >= 2 and hs_imu.size >= 2
        # Same stride time from the shank gyroscope as from the ground contacts (to 20 ms; the IMU
        # events have 5 ms resolution and the walk is only a few strides long).
        assert np.median(np.diff(hs_imu)) == pytest.approx(np.median(np.diff(hs)), abs=0.02)
        # The gyroscope event (end-of-swing deceleration) comes shortly before contact in this model.
        lead = np.array([hs[hs > h - 0.05][0] - h for h in hs_imu if np.any(hs > h - 0.05)])
        assert lead.size >= 2 and np.all(lead < 0.2)


def test_healthy_wearer_walks_symmetrically(walked) -> None:
    tr = walked["trace"]
    st = []
    for s in range(2):
        hs, to = contact_events(tr.t, tr.contact[:, s])
        st.append(np.median(np.diff(hs[hs > 1.0])))
    assert st[0] == pytest.approx(1.1, abs=0.02) and st[1] == pytest.approx(st[0], abs=0.02)
    assert tr.pelvis[-1, 0] > 2.0  # walked forward over 4.5 s


def test_sensor_fault_injection() -> None:
    with LegSim() as sim:
        sim.sensors.dropout = True
        sim.clock.wait_until(0.01)
        b = sim.sensors.poll()
        assert b.emg_v.shape[0] == 0 and b.imu.shape[0] == 0 and b.dropped == 10
        sim.sensors.dropout = False
        sim.sensors.electrode_off.add(2)
        sim.sensors.nan_channels.add(5)
        sim.clock.wait_until(0.05)
        b = sim.sensors.poll()
        assert np.isnan(b.emg_v[:, 5]).all() and np.isfinite(b.emg_v[:, 2]).all()
        assert np.abs(b.emg_v[:, 2]).max() > 1e-3  # mains hum of a lifted electrode


def test_imu_joint_angles_match_encoders(walked) -> None:
    """Madgwick on the simulated thigh/shank IMUs gives hip and knee angles close to the joints'."""
    from machaon.exo.imu import estimate_orientation, joint_angles, sagittal_angle_from_quat

    imu = np.concatenate(walked["imu"])
    t_imu = np.concatenate(walked["t_imu"])
    alpha = np.stack([sagittal_angle_from_quat(estimate_orientation(imu[:, k, :3], imu[:, k, 3:], 200.0))
                      for k in range(4)], axis=1)
    tr = walked["trace"]
    idx = np.clip(np.searchsorted(tr.t, t_imu - 1e-9), 0, tr.t.size - 1)
    for s in range(2):
        est = joint_angles(0.0, alpha[:, 2 * s], alpha[:, 2 * s + 1])
        true = tr.q[idx][:, 3 * s : 3 * s + 2]
        rms = np.degrees(np.sqrt(np.mean((est[500:] - true[500:]) ** 2, axis=0)))  # after 2.5 s
        # The shank swings with large linear accelerations that bias the accelerometer correction:
        # a few degrees, as reported for IMU shank angles in gait.
        assert rms[0] < 3.0 and rms[1] < 8.0, rms
