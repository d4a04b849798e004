"""Dynamics identification of a servo arm on its bus: per joint, the torque-current relation and the
gear friction from slow sweeps; then the gravity model checked against measured currents.

Procedure (every servo in position mode; the arm moves one joint at a time, within its limits,
at the speeds and acceleration of :class:`IdentifyOptions`, through the servos' own profile
generator):

1. **Sweeps.** Joint j goes ``+-sweep_rad`` around where it stands (clipped to the description's
   limits), once out and back at each speed, while the other joints hold. Current, velocity and
   position of servo j are read as fast as the bus allows.
2. **Regression.** With the robot's rigid-body model (``Dynamics``: links from the URDF plus the
   description's armature) the torque joint j must deliver is
   ``tau_model = M_jj(q) ddq_j + n_j(q, dq)`` (gravity, Coriolis, inertia; ``ddq`` from a
   Savitzky-Golay derivative of the measured velocity). The measured current is
   ``i = (tau_model + tc tanh(dq / v) + b dq) / kt``: linear in ``(1/kt, tc/kt, b/kt)``, solved by
   least squares over the samples faster than ``min_speed_rad_s``. Joints whose sweep changes
   their gravity load get kt from gravity; others (a vertical base axis, a wrist roll) from the
   acceleration phases, which rests on the modelled inertia (URDF + armature) being right.
   Model error: RMS of ``kt i - tau_model - friction`` (N m) and its ratio to the RMS torque (%).
3. **Gravity check.** The arm holds a 3 x 3 (or 2 x 2) grid of poses of the two joints with the largest
   gravity load; at each, the currents averaged over ``hold_s`` become torques through the
   identified kt and are compared with the model's gravity ``g(q)`` (N m, and % of the RMS
   gravity torque of joints that carry one). Static friction shows up here as error: the
   servo's position loop stops anywhere inside its stiction band.

:func:`identified_config` turns the result into an :class:`ActuatorConfig` with the identified
values (kt, Coulomb and viscous friction per joint), and :func:`write_identified_toml` writes it as
``identified.toml``, which ``--hw-config`` loads; an ``[identification]`` table beside the config
keeps the model errors. Raises ``BusProtocolError`` from the bus (the caller puts the servos in a
safe state); ``ValueError`` for options or a servo map that do not fit the robot.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from machaon.hardware.actuator_config import JointConfig
from machaon.hardware.backend import ActuatorConfig
from machaon.hardware.control_table import MODE_POSITION, RAD_PER_TICK, VELOCITY_UNIT_RAD_S, model_by_name
from machaon.hardware.dynamixel import Bus

log = logging.getLogger(__name__)

__all__ = ["GravityPose", "IdentificationResult", "IdentifyOptions", "JointIdentification", "identified_config",
           "identify", "write_identified_toml"]

PROFILE_ACCEL_RAD_S2 = 214.577 * 2.0 * math.pi / 3600.0  # Profile Acceleration unit, rev/min^2 in rad/s^2
LIMIT_MARGIN_RAD = 0.05
STILL_RAD_S = 3 * VELOCITY_UNIT_RAD_S  # "standing still": a loaded position loop dithers by a unit or two


@dataclass(frozen=True)
class IdentifyOptions:
    """How far and fast the sweeps go. Out-of-range values raise ValueError."""

    sweep_rad: float = 0.25
    speeds_rad_s: tuple[float, ...] = (0.8, 2.0)
    accel_rad_s2: float = 12.0
    min_speed_rad_s: float = 0.1
    v_smooth_rad_s: float = 0.02
    gravity_offset_rad: float = 0.3
    gravity_levels: int = 3
    settle_s: float = 0.3
    hold_s: float = 0.15
    move_timeout_s: float = 6.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.sweep_rad <= 0.8:
            raise ValueError("sweep_rad: must be in [0.05, 0.8] rad")
        if len(self.speeds_rad_s) < 2 or not all(0.05 <= v <= 3.0 for v in self.speeds_rad_s):
            raise ValueError("speeds_rad_s: at least two speeds in [0.05, 3] rad/s (they separate the "
                             "Coulomb and viscous friction)")
        if not 0.5 <= self.accel_rad_s2 <= 40.0:
            raise ValueError("accel_rad_s2: must be in [0.5, 40] rad/s^2")
        if not 0.0 <= self.gravity_offset_rad <= 0.6:
            raise ValueError("gravity_offset_rad: must be in [0, 0.6] rad")
        if self.gravity_levels not in (2, 3):
            raise ValueError("gravity_levels: 2 or 3 poses per joint of the gravity grid")


@dataclass(frozen=True)
class JointIdentification:
    """One joint's identified torque model and how well it fits (SI; ``kt_datasheet`` for reference)."""

    name: str
    id: int
    kt_nm_per_a: float
    coulomb_nm: float
    viscous_nms_rad: float
    kt_datasheet: float
    rms_error_nm: float
    rms_error_pct: float
    gravity_range_nm: float
    inertia_range_nm: float
    samples: int

    @property
    def excitation(self) -> str:
        """What set kt: ``"gravity"`` when the sweep's gravity load varied more than its inertial load."""
        return "gravity" if self.gravity_range_nm >= self.inertia_range_nm else "inertia"


@dataclass(frozen=True)
class GravityPose:
    """One pose of the gravity check: joint angles (rad), measured and model torque (N m) per joint."""

    q_rad: tuple[float, ...]
    measured_nm: tuple[float, ...]
    model_nm: tuple[float, ...]


@dataclass
class IdentificationResult:
    joints: list[JointIdentification] = field(default_factory=list)
    gravity: list[GravityPose] = field(default_factory=list)

    def gravity_error(self) -> tuple[np.ndarray, np.ndarray]:
        """Per joint: RMS (measured - model) gravity torque (N m), and that as % of the RMS model
        gravity torque (NaN for joints whose gravity load stays under 0.02 N m RMS)."""
        if not self.gravity:
            n = len(self.joints)
            return np.full(n, np.nan), np.full(n, np.nan)
        meas = np.array([g.measured_nm for g in self.gravity])
        model = np.array([g.model_nm for g in self.gravity])
        rms = np.sqrt(np.mean((meas - model) ** 2, axis=0))
        scale = np.sqrt(np.mean(model**2, axis=0))
        pct = np.where(scale > 0.02, 100.0 * rms / np.maximum(scale, 1e-12), np.nan)
        return rms, pct


class _Sweeper:
    """Bus-level moves and fast sampling for the identification (servo frame inside, joints outside)."""

    def __init__(self, bus: Bus, cfg: ActuatorConfig, options: IdentifyOptions) -> None:
        self.bus, self.cfg, self.o = bus, cfg, options
        self.ids = [j.id for j in cfg.joints]
        self.dir = np.array([j.direction for j in cfg.joints], dtype=np.float64)
        self.zero = np.array([j.zero_ticks for j in cfg.joints], dtype=np.float64)
        self.unit = np.array([model_by_name(j.model).current_unit_a or 0.0 for j in cfg.joints])
        self._speed, self._accel = min(options.speeds_rad_s), options.accel_rad_s2

    def ticks(self, k: int, q: float) -> int:
        return int(np.clip(round(self.dir[k] * q / RAD_PER_TICK + self.zero[k]), 0, 4095))

    def q_of(self, k: int, ticks: float | np.ndarray) -> np.ndarray | float:
        return self.dir[k] * (np.asarray(ticks, dtype=np.float64) - self.zero[k]) * RAD_PER_TICK

    def hold_all(self) -> np.ndarray:
        """Every servo in position mode holding where it stands; returns the joint angles (rad)."""
        q = np.empty(len(self.ids))
        for k, i in enumerate(self.ids):
            self.bus.write(i, 64, b"\x00")
            self.bus.write(i, 11, bytes((MODE_POSITION,)))
            pos = self.bus.read_int(i, 132, 4, signed=True)
            self.bus.write_int(i, 116, 4, pos)
            self.bus.write(i, 64, b"\x01")
            q[k] = self.q_of(k, pos)
        return q

    def profile(self, k: int, speed: float, accel: float) -> None:
        self._speed, self._accel = speed, accel
        i = self.ids[k]
        self.bus.write_int(i, 108, 4, max(1, round(accel / PROFILE_ACCEL_RAD_S2)))
        self.bus.write_int(i, 112, 4, max(1, round(speed / VELOCITY_UNIT_RAD_S)))

    def sweep_leg(self, k: int, q_goal: float) -> tuple[np.ndarray, ...]:
        """Move joint k to ``q_goal`` under its profile, sampling every joint on the way (the holding
        joints yield a little to the moving one's reaction); returns (t s, q rad (N, n), dq rad/s
        (N, n), i A (N,) of joint k). It ends when joint k stands still after the profile's
        duration (a loaded joint stops a few ticks short of its goal: the position loop's error
        carries the load)."""
        i = self.ids[k]
        goal = self.ticks(k, q_goal)
        start = self.bus.read_int(i, 132, 4, signed=True)
        t_min = self._duration(abs(goal - start) * RAD_PER_TICK)
        self.bus.write_int(i, 116, 4, goal)
        ticks, qs, dqs, cur = [], [], [], []
        t0 = time.perf_counter()
        still = 0
        while time.perf_counter() - t0 < self.o.move_timeout_s:
            res = self.bus.sync_read(self.ids, 120, 16, retry=False)
            if not res.complete:
                continue  # a lost answer is a lost sample, not a failed sweep
            # the servo's own Realtime Tick (ms) times the sample: the host's clock would add the
            # adapter's and the scheduler's jitter to every derivative
            ticks.append(int.from_bytes(res.data[i][0:2], "little"))
            c, v, p = self._decode({j: d[6:] for j, d in res.data.items()})
            qs.append(p)
            dqs.append(v)
            cur.append(c[k])
            still = still + 1 if abs(v[k]) <= STILL_RAD_S and time.perf_counter() - t0 >= t_min else 0
            if still >= 10:
                break
        t = np.unwrap(np.array(ticks, dtype=np.float64), period=32768.0) * 1e-3
        return t, np.array(qs).reshape(-1, len(self.ids)), np.array(dqs).reshape(-1, len(self.ids)), np.array(cur)

    def _decode(self, data: dict[int, bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joint-frame current (A), velocity (rad/s) and angle (rad) of every servo from 126..135."""
        raw = np.array([[int.from_bytes(data[i][a:b], "little", signed=True) for a, b in ((0, 2), (2, 6), (6, 10))]
                        for i in self.ids], dtype=np.float64)
        cur = self.dir * raw[:, 0] * self.unit
        vel = self.dir * raw[:, 1] * VELOCITY_UNIT_RAD_S
        q = self.dir * (raw[:, 2] - self.zero) * RAD_PER_TICK
        return cur, vel, q

    def _duration(self, distance_rad: float) -> float:
        """Time (s) the trapezoidal profile takes over ``distance_rad`` at the last profile set."""
        v, a = self._speed, self._accel
        return distance_rad / v + v / a if distance_rad > v * v / a else 2.0 * math.sqrt(distance_rad / a)

    def move_all(self, q: np.ndarray, speed: float) -> None:
        """All joints to ``q`` (rad) at most ``speed`` rad/s; returns when they stand still there."""
        for k in range(len(self.ids)):
            self.profile(k, speed, self.o.accel_rad_s2)
        goals = {i: self.ticks(k, q[k]) for k, i in enumerate(self.ids)}
        now = self.mean_state(0.0)[0]
        t0 = time.monotonic()
        t_min = t0 + self._duration(float(np.max(np.abs(q - now))))
        self.bus.sync_write(116, 4, {i: int(g).to_bytes(4, "little", signed=True) for i, g in goals.items()})
        t_end = t0 + self.o.move_timeout_s
        still = 0
        while time.monotonic() < t_end:
            res = self.bus.sync_read(self.ids, 128, 4)
            moving = not res.complete or any(abs(int.from_bytes(res.data[i], "little", signed=True))
                                             * VELOCITY_UNIT_RAD_S > STILL_RAD_S for i in self.ids)
            still = 0 if moving or time.monotonic() < t_min else still + 1
            if still >= 10:
                return
            time.sleep(0.005)
        log.warning("identification: joints did not settle at %s rad within %.1f s", np.round(q, 3),
                    self.o.move_timeout_s)

    def mean_state(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean joint angles (rad) and joint-frame currents (A) over ``seconds`` of sync reads."""
        qs, cs = [], []
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end or not qs:
            res = self.bus.sync_read(self.ids, 126, 10)
            if not res.complete:
                continue
            c, _, q = self._decode(res.data)
            qs.append(q)
            cs.append(c)
        return np.mean(qs, axis=0), np.mean(cs, axis=0)


@dataclass(frozen=True)
class _JointFit:
    """One joint's least-squares fit: ``x`` = (1/kt (A/N m), Coulomb (A), viscous (A s/rad)) and the
    samples it was fitted on: model torque and its gravity part (N m), velocity (rad/s), current (A)."""

    x: np.ndarray
    tau_nm: np.ndarray
    g_nm: np.ndarray
    dq_rad_s: np.ndarray
    i_a: np.ndarray


def _fit_joint(k: int, legs: list[tuple[np.ndarray, ...]], dynamics: object, o: IdentifyOptions) -> _JointFit:
    """Least squares of joint k's current against (model torque, friction regressors) over the legs.

    Samples with the same servo tick (1 ms) are averaged; each leg is resampled on a 1 ms grid;
    velocities are smoothed and differentiated with a Savitzky-Golay filter (30 ms window); the
    model torque uses every joint's measured state."""
    rows_tau, rows_g, rows_dq, rows_i = [], [], [], []
    for t_raw, q_raw, dq_raw, cur_raw in legs:
        if len(t_raw) < 20:
            continue
        t, inv = np.unique(t_raw, return_inverse=True)
        cnt = np.bincount(inv).astype(np.float64)
        q = np.column_stack([np.bincount(inv, q_raw[:, m]) / cnt for m in range(q_raw.shape[1])])
        dq = np.column_stack([np.bincount(inv, dq_raw[:, m]) / cnt for m in range(q_raw.shape[1])])
        cur = np.bincount(inv, cur_raw) / cnt
        dt = 1e-3
        tg = np.arange(t[0], t[-1], dt)
        win = max(5, int(round(0.03 / dt)) | 1)
        if len(tg) <= win:
            continue
        qg = np.column_stack([np.interp(tg, t, q[:, m]) for m in range(q.shape[1])])
        dqg = np.column_stack([savgol_filter(np.interp(tg, t, dq[:, m]), win, 2) for m in range(q.shape[1])])
        ddqg = np.column_stack([savgol_filter(np.interp(tg, t, dq[:, m]), win, 2, deriv=1, delta=dt)
                                for m in range(q.shape[1])])
        ig = np.interp(tg, t, cur)
        keep = np.nonzero(np.abs(dqg[:, k]) > o.min_speed_rad_s)[0][::2]
        for r in keep:
            qr, vr = np.ascontiguousarray(qg[r]), np.ascontiguousarray(dqg[r])
            rows_tau.append(dynamics.mass_matrix(qr)[k] @ ddqg[r] + dynamics.nonlinear(qr, vr)[k])
            rows_g.append(dynamics.gravity(qr)[k])
            rows_dq.append(vr[k])
            rows_i.append(ig[r])
    if len(rows_i) < 30:
        raise ValueError(f"joint {k}: too few moving samples ({len(rows_i)}) to identify; widen the sweep")
    tau, g, dq, cur = (np.array(x) for x in (rows_tau, rows_g, rows_dq, rows_i))
    A = np.column_stack([tau, np.tanh(dq / o.v_smooth_rad_s), dq])
    x, *_ = np.linalg.lstsq(A, cur, rcond=None)
    return _JointFit(x, tau, g, dq, cur)


def _sweep_joint(sw: _Sweeper, k: int, jc: JointConfig, q0: float, lo: float, hi: float,
                 o: IdentifyOptions) -> list[tuple[np.ndarray, ...]]:
    """Sweep joint ``k`` between ``q0 -/+ o.sweep_rad`` (rad, clipped to ``lo..hi``), both directions
    at every speed, ending back at ``q0``; one recorded leg per move. Raises ``ValueError`` when the
    limits leave less than 0.1 rad to sweep."""
    a = float(np.clip(q0 - o.sweep_rad, lo, hi))
    b = float(np.clip(q0 + o.sweep_rad, lo, hi))
    if b - a < 0.1:
        raise ValueError(f"joint {jc.name}: no room to sweep inside its limits at {q0:.2f} rad")
    # every move is a recorded leg, both directions at every speed: to the lower end, across to
    # the upper, and so on; the last speed comes back to where the joint started
    legs = []
    goals = [g for v in o.speeds_rad_s for g in ((v, a), (v, b))]
    goals[-1] = (goals[-1][0], float(q0))
    for v, goal in goals:
        sw.profile(k, v, o.accel_rad_s2)
        legs.append(sw.sweep_leg(k, goal))
    return legs


def _joint_identification(jc: JointConfig, fit: _JointFit, o: IdentifyOptions) -> JointIdentification:
    """Torque constant (N m/A), Coulomb and viscous friction (N m, N m s/rad) from the fit in
    current units, with the model's RMS error. Raises ``ValueError`` on a non-positive torque
    constant (a servo map with the wrong direction)."""
    x = fit.x
    kt_ds = jc.torque_curve().kt_nm_per_a
    if not (x[0] > 0 and np.isfinite(x).all()):
        raise ValueError(f"joint {jc.name}: the fit gives no positive torque constant (1/kt = {x[0]:.3g}); "
                         "is the servo map's direction right?")
    kt = 1.0 / x[0]
    tc, b_v = max(0.0, x[1] * kt), max(0.0, x[2] * kt)
    resid = kt * fit.i_a - fit.tau_nm - tc * np.tanh(fit.dq_rad_s / o.v_smooth_rad_s) - b_v * fit.dq_rad_s
    rms = float(np.sqrt(np.mean(resid**2)))
    rms_tau = float(np.sqrt(np.mean((kt * fit.i_a) ** 2)))
    log.info("identified %s: kt %.3f N m/A (datasheet %.3f), Coulomb %.3f N m, viscous %.3f N m s/rad, "
             "model error %.3f N m", jc.name, kt, kt_ds, tc, b_v, rms)
    return JointIdentification(
        name=jc.name, id=jc.id, kt_nm_per_a=float(kt), coulomb_nm=float(tc), viscous_nms_rad=float(b_v),
        kt_datasheet=float(kt_ds), rms_error_nm=rms, rms_error_pct=100.0 * rms / max(rms_tau, 1e-12),
        gravity_range_nm=float(np.ptp(fit.g_nm)), inertia_range_nm=float(np.ptp(fit.tau_nm - fit.g_nm)),
        samples=int(len(fit.i_a)))


def _gravity_check(sw: _Sweeper, dynamics: object, q_ref: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   kts: np.ndarray, o: IdentifyOptions, say: Callable[[str], None]) -> list[GravityPose]:
    """Hold a grid of poses around ``q_ref`` (rad), offsetting the two joints with the largest
    gravity load, and compare the measured holding torque (identified kt x current) with the
    model's gravity (N m); returns to ``q_ref``."""
    levels = (-1.0, 0.0, 1.0) if o.gravity_levels == 3 else (-1.0, 1.0)
    say(f"gravity check: {len(levels)} x {len(levels)} poses")
    g_ref = np.abs(dynamics.gravity(q_ref))
    pair = np.argsort(g_ref)[-2:]
    poses = []
    for d0 in levels:
        for d1 in levels:
            q = q_ref.copy()
            q[pair[0]] += d0 * o.gravity_offset_rad
            q[pair[1]] += d1 * o.gravity_offset_rad
            q = np.clip(q, lo, hi)
            sw.move_all(q, min(o.speeds_rad_s))
            time.sleep(o.settle_s)
            q_meas, cur = sw.mean_state(o.hold_s)
            poses.append(GravityPose(tuple(q_meas), tuple(kts * cur), tuple(dynamics.gravity(q_meas))))
    sw.move_all(q_ref, min(o.speeds_rad_s))
    return poses


def identify(bus: Bus, cfg: ActuatorConfig, dynamics: object, options: IdentifyOptions | None = None, *,
             q_start: np.ndarray | None = None, progress: Callable[[str], None] | None = None
             ) -> IdentificationResult:
    """Run the identification (module docstring) on the open ``bus``; ``cfg`` is the arm's servo map
    (joint order = ``dynamics.chain`` order). ``q_start`` (rad): where the sweeps start, reached
    first at the slowest sweep speed (e.g. the description's home pose: an arm that was resting
    on its stops sweeps from a pose it can move around); default: where the arm stands. Leaves
    every servo in position mode holding."""
    o = options or IdentifyOptions()
    say = progress or (lambda s: None)
    chain = dynamics.chain
    if tuple(j.name for j in cfg.joints) != tuple(chain.joint_names):
        raise ValueError(f"servo map joints {[j.name for j in cfg.joints]} are not the model's "
                         f"{list(chain.joint_names)}")
    sw = _Sweeper(bus, cfg, o)
    lo = np.asarray(chain.lower, dtype=np.float64) + LIMIT_MARGIN_RAD
    hi = np.asarray(chain.upper, dtype=np.float64) - LIMIT_MARGIN_RAD
    q_ref = sw.hold_all()
    if q_start is not None:
        say("identify: moving to the start pose")
        sw.move_all(np.clip(np.asarray(q_start, dtype=np.float64), lo, hi), min(o.speeds_rad_s))
        q_ref = sw.mean_state(0.05)[0]
    result = IdentificationResult()
    for k, jc in enumerate(cfg.joints):
        say(f"identify {jc.name} (id {jc.id}): sweeps at {list(o.speeds_rad_s)} rad/s")
        legs = _sweep_joint(sw, k, jc, q_ref[k], lo[k], hi[k], o)
        result.joints.append(_joint_identification(jc, _fit_joint(k, legs, dynamics, o), o))
    if o.gravity_offset_rad > 0:
        kts = np.array([j.kt_nm_per_a for j in result.joints])
        result.gravity.extend(_gravity_check(sw, dynamics, q_ref, lo, hi, kts, o, say))
    return result


def identified_config(cfg: ActuatorConfig, result: IdentificationResult) -> ActuatorConfig:
    """``cfg`` with every identified joint's kt, Coulomb and viscous friction replaced."""
    by_id = {r.id: r for r in result.joints}
    joints = tuple(dataclasses.replace(j, kt_nm_per_a=by_id[j.id].kt_nm_per_a, curve_current_a=None,
                                       curve_torque_nm=None, coulomb_nm=by_id[j.id].coulomb_nm,
                                       viscous_nms_rad=by_id[j.id].viscous_nms_rad) if j.id in by_id else j
                   for j in cfg.joints)
    return dataclasses.replace(cfg, joints=joints)


def _config_dict(cfg: ActuatorConfig) -> dict:
    bus = {"port": cfg.port, "baudrate": cfg.baudrate, "latency_ms": cfg.latency_s * 1e3, "retries": cfg.retries,
           "fast_sync_read": cfg.fast_sync_read, "return_delay_us": cfg.return_delay_us}
    ctl: dict = {"mode": cfg.mode, "safe_state": cfg.safe_state, "lost_cycles": cfg.lost_cycles,
                 "bus_watchdog_ms": cfg.bus_watchdog_ms, "friction_compensation": cfg.friction_compensation,
                 "start_hold": cfg.start_hold}
    for key in ("current_limit_a", "max_temperature_c", "min_voltage_v", "max_voltage_v"):
        if getattr(cfg, key) is not None:
            ctl[key] = getattr(cfg, key)
    joints = []
    for j in cfg.joints:
        d = {}
        for f in dataclasses.fields(j):
            v = getattr(j, f.name)
            if v is None or (isinstance(v, float) and math.isinf(v)):
                continue
            d[f.name] = list(v) if isinstance(v, tuple) else v
        joints.append(d)
    return {"bus": bus, "control": ctl, "joints": joints}


def write_identified_toml(path: str | Path, cfg: ActuatorConfig, result: IdentificationResult) -> Path:
    """Write :func:`identified_toml` to ``path``."""
    path = Path(path)
    path.write_text(identified_toml(cfg, result))
    return path


def identified_toml(cfg: ActuatorConfig, result: IdentificationResult) -> str:
    """The identified config as TOML (``ActuatorConfig.from_toml`` reads it back) and, in an
    ``[identification]`` table, the fit quality per joint and the gravity check."""
    import tomli_w

    data = _config_dict(identified_config(cfg, result))
    g_rms, g_pct = result.gravity_error()
    ident: dict = {"note": "identified by machaon bench --identify; kt in N m/A, friction in N m and N m s/rad, "
                           "model errors in N m and % of the RMS torque"}
    for k, r in enumerate(result.joints):
        ident[r.name] = {
            "kt_datasheet_nm_per_a": r.kt_datasheet, "kt_nm_per_a": r.kt_nm_per_a, "coulomb_nm": r.coulomb_nm,
            "viscous_nms_rad": r.viscous_nms_rad, "model_error_nm": r.rms_error_nm,
            "model_error_pct": r.rms_error_pct, "kt_from": r.excitation, "samples": r.samples,
        }
        if result.gravity:
            ident[r.name]["gravity_error_nm"] = float(g_rms[k])
            if np.isfinite(g_pct[k]):
                ident[r.name]["gravity_error_pct"] = float(g_pct[k])
    data["identification"] = ident
    return ("# Servo chain config with identified torque constants and friction (machaon bench --identify).\n"
            "# Load it with --hw-config.\n\n" + tomli_w.dumps(data))
