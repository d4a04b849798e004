"""Bench test suite for a chain of Dynamixel X-series servos: scan, identify, latency and loop
rate, position and current step responses, limit and error handling; a report directory with
JSON, Markdown and PNG plots, and a pass/fail verdict.

With ``identify_dynamics`` (``machaon bench --identify``) the servos are an assembled arm (every
servo holds from the first motion on, so the arm does not fall) of a robot
description with a servo map (``robot``, e.g. ``desk``): after the other stages
``machaon.hardware.identify`` sweeps every joint, fits its torque constant and friction, checks the
gravity model against measured currents, reports the model errors, and ``identified.toml`` (a
complete servo chain config with the identified values, for ``--hw-config``) goes into the report
directory.

Safety: every motion is bounded (position steps at most ``MAX_STEP_RAD`` from where the servo
stands and inside its position limits; current steps at most ``MAX_CURRENT_A`` and cut off after
``max_travel_rad`` of travel or the step duration), one servo moves at a time, and any exception
or Ctrl-C (KeyboardInterrupt) puts every servo in the safe state (``hold``: position mode holding
the present position; or ``torque_off``) before it propagates. At the end each servo gets its
original operating mode back, torque as it was. ``dry_run`` only reads (scan, identify, latency
with writes of unchanged values) and lists the planned motions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from machaon.hardware.bench_report import BenchReport, write_bench_report
from machaon.hardware.control_table import (
    MODE_CURRENT,
    MODE_CURRENT_POSITION,
    MODE_POSITION,
    MODELS_BY_NUMBER,
    RAD_PER_TICK,
    Model,
)
from machaon.hardware.dynamixel import Bus
from machaon.hardware.protocol import (
    BusProtocolError,
    CommunicationTimeout,
    StatusError,
    StatusErrorCode,
    hardware_error_names,
)

log = logging.getLogger(__name__)

MAX_STEP_RAD = 0.5
MAX_CURRENT_A = 0.5


@dataclass(frozen=True)
class BenchOptions:
    """What to test and how hard. Amplitudes above the MAX_* bounds raise ValueError."""

    port: str
    ids: tuple[int, ...]
    baudrate: int = 1_000_000
    scan_bauds: tuple[int, ...] = ()
    out_dir: str = "bench-report"
    dry_run: bool = False
    step_rad: float = 0.2
    current_a: float = 0.15
    step_duration_s: float = 0.5
    max_travel_rad: float = 0.3
    latency_samples: int = 300
    min_loop_rate_hz: float = 200.0
    max_ss_error_rad: float = 0.03
    max_overshoot_pct: float = 25.0
    max_current_error_a: float = 0.03
    safe_state: str = "hold"
    latency_s: float = 0.010
    sysfs_root: str = "/sys"
    identify_dynamics: bool = False
    robot: str | None = None
    sweep_rad: float = 0.25
    gravity_levels: int = 3

    def __post_init__(self) -> None:
        if not self.ids:
            raise ValueError("ids: empty")
        if not 0 < self.step_rad <= MAX_STEP_RAD:
            raise ValueError(f"step_rad: must be in (0, {MAX_STEP_RAD}] rad")
        if not 0 < self.current_a <= MAX_CURRENT_A:
            raise ValueError(f"current_a: must be in (0, {MAX_CURRENT_A}] A")
        if not 0 < self.max_travel_rad <= MAX_STEP_RAD:
            raise ValueError(f"max_travel_rad: must be in (0, {MAX_STEP_RAD}] rad")
        if not 0.05 <= self.step_duration_s <= 5.0:
            raise ValueError("step_duration_s: must be in [0.05, 5] s")
        if self.safe_state not in ("hold", "torque_off"):
            raise ValueError("safe_state: 'hold' or 'torque_off'")
        if self.latency_samples < 10:
            raise ValueError("latency_samples: at least 10")
        if self.identify_dynamics:
            from machaon.hardware.identify import IdentifyOptions

            if not self.robot:
                raise ValueError("identify_dynamics: needs the robot whose servo map and model the servos are")
            IdentifyOptions(sweep_rad=self.sweep_rad, gravity_levels=self.gravity_levels)  # raises for bad values


def step_metrics(t: np.ndarray, y: np.ndarray, y0: float, y1: float) -> dict[str, float]:
    """Rise time (10-90 %, s), overshoot (% of the step), steady-state error (mean of the last 20 %
    minus the target, in y's units) and settling time (2 % band, s) of a step from y0 to y1 at t=0."""
    amp = y1 - y0
    if amp == 0 or len(t) < 5:
        raise ValueError("step_metrics: need a non-zero step and at least 5 samples")
    frac = (np.asarray(y) - y0) / amp
    t = np.asarray(t)
    i10 = np.argmax(frac >= 0.1) if (frac >= 0.1).any() else None
    i90 = np.argmax(frac >= 0.9) if (frac >= 0.9).any() else None
    rise = float(t[i90] - t[i10]) if i10 is not None and i90 is not None else math.inf
    overshoot = float(max(0.0, frac.max() - 1.0) * 100.0)
    tail = y[int(0.8 * len(y)):]
    ss = float(np.mean(tail) - y1)
    outside = np.nonzero(np.abs(frac - 1.0) > 0.02)[0]
    settle = float(t[outside[-1] + 1]) if len(outside) and outside[-1] + 1 < len(t) else (
        0.0 if not len(outside) else math.inf)
    return {"rise_time_s": rise, "overshoot_pct": overshoot, "steady_state_error": ss, "settling_time_s": settle}


class Bench:
    """Runs the suite on an open :class:`Bus` (see module docstring)."""

    def __init__(self, bus: Bus, options: BenchOptions, *, progress: Callable[[str], None] | None = None) -> None:
        self.bus = bus
        self.o = options
        self.r = BenchReport(options=asdict(options))
        self._progress = progress or (lambda s: None)
        self._models: dict[int, Model] = {}
        self._original: dict[int, dict[str, int]] = {}

    # ------------------------------------------------------------------ driver

    def run(self) -> BenchReport:
        from machaon.hardware.latency import latency_warning

        o = self.o
        self.r.plan = self._plan()
        warning = latency_warning(o.port, o.sysfs_root)
        if warning:
            self.r.warnings.append(warning)
            log.warning("%s", warning)
        try:
            self._scan()
            self._identify()
            if not self._models:
                return self.r
            self._latency()
            if o.dry_run:
                return self.r
            if o.identify_dynamics:
                # an assembled arm: every servo holds while one moves, or the arm falls on the first step
                for i in self._models:
                    self._hold(i)
            for i in o.ids:
                if i in self._models:
                    self._position_step(i)
            for i in o.ids:
                if i in self._models and self._models[i].has_current:
                    self._current_step(i)
            self._limits_and_errors()
            if o.identify_dynamics:
                self._identify_dynamics()
        except KeyboardInterrupt:
            self.r.interrupted = True
            self.r.check("interrupted", False, "stopped by Ctrl-C; servos put in the safe state")
            self._safe_all()
        except BusProtocolError as exc:
            self.r.check("bus", False, f"bench aborted: {exc}")
            self._safe_all()
        else:
            if not o.dry_run:
                self._restore()
        return self.r

    def _plan(self) -> list[str]:
        o = self.o
        plan = [f"scan bauds {list(o.scan_bauds or (o.baudrate,))} for ids {list(o.ids)}",
                "identify: model, firmware, operating mode, limits, hardware error status",
                f"latency: {o.latency_samples} single reads and {o.latency_samples} sync read + sync write cycles"]
        for i in o.ids:
            plan.append(f"id {i}: position step +{o.step_rad:.3f} rad and back ({o.step_duration_s} s each), "
                        "position mode, inside the position limits")
            plan.append(f"id {i}: current step {o.current_a:.3f} A for <= {o.step_duration_s} s, cut at "
                        f"{o.max_travel_rad:.2f} rad travel, then hold")
        plan.append("limits: goal beyond position/current limit and EEPROM write with torque on must be refused; "
                    "an absent id must time out")
        if o.identify_dynamics:
            plan.append(f"identify ({o.robot}): every servo holds from the first motion on; the arm goes to its home "
                        f"pose, then each joint sweeps +-{o.sweep_rad:.2f} rad around it (inside its limits) at two "
                        f"speeds, the others holding; then a {o.gravity_levels} x "
                        f"{o.gravity_levels} grid of held poses for the gravity check; writes identified.toml")
        return plan

    # ------------------------------------------------------------------ stages

    def _scan(self) -> None:
        o = self.o
        bauds = o.scan_bauds or (o.baudrate,)
        found_at: dict[int, list[int]] = {}
        for b in bauds:
            self._progress(f"scanning at {b} baud")
            self.bus.set_baudrate(b)
            found = self.bus.broadcast_ping(max_id=max(o.ids))
            found_at[b] = sorted(found)
        self.bus.set_baudrate(o.baudrate)
        self.r.scan = {str(b): ids for b, ids in found_at.items()}
        got = set(found_at.get(o.baudrate, []))
        if o.baudrate not in bauds:
            got = set(self.bus.broadcast_ping(max_id=max(o.ids)))
            self.r.scan[str(o.baudrate)] = sorted(got)
        missing = sorted(set(o.ids) - got)
        self.r.check("scan", not missing, f"found {sorted(got)} at {o.baudrate} baud"
                     + (f"; missing {missing}" if missing else ""))

    def _identify(self) -> None:
        rdt_max = 0
        for i in self.o.ids:
            try:
                info = self.bus.ping(i)
            except BusProtocolError as exc:
                self.r.check("identify", False, f"no answer: {exc}", i)
                continue
            m = MODELS_BY_NUMBER.get(info.model_number)
            if m is None:
                self.r.check("identify", False, f"unknown model number {info.model_number}", i)
                continue
            self._models[i] = m
            rd = lambda name, _i=i, _m=m: self.bus.read_int(_i, _m.field(name).address, _m.field(name).size,  # noqa: E731
                                                           _m.field(name).signed)
            rec = {"model": m.name, "model_number": info.model_number, "firmware": info.firmware_version}
            for name in ("operating_mode", "torque_enable", "return_delay_time", "min_position_limit",
                         "max_position_limit", "velocity_limit", "temperature_limit", "present_temperature",
                         "present_input_voltage", "hardware_error_status", "profile_acceleration",
                         "homing_offset", "shutdown"):
                rec[name] = rd(name)
            if m.has_current:
                rec["current_limit"] = rd("current_limit")
            self.r.servos[str(i)] = rec
            self._original[i] = {"operating_mode": rec["operating_mode"], "torque_enable": rec["torque_enable"]}
            rdt_max = max(rdt_max, rec["return_delay_time"])
            hw = rec["hardware_error_status"]
            self.r.check("identify", True, f"{m.name} firmware {info.firmware_version}", i)
            self.r.check("hardware_error", hw == 0, "none" if hw == 0 else ", ".join(hardware_error_names(hw)), i)
        self.bus.return_delay_s = rdt_max * 2e-6

    def _latency(self) -> None:
        o = self.o
        ids = [i for i in o.ids if i in self._models]
        self._progress("measuring latency")
        single, cycle = [], []
        fails = 0
        ref = ids[0]
        for _ in range(o.latency_samples):
            t0 = time.perf_counter()
            try:
                self.bus.read(ref, 132, 4)
            except BusProtocolError:
                fails += 1
                continue
            single.append(time.perf_counter() - t0)
        acc = {i: int(self.r.servos[str(i)]["profile_acceleration"]).to_bytes(4, "little") for i in ids}
        for _ in range(o.latency_samples):
            t0 = time.perf_counter()
            res = self.bus.sync_read(ids, 126, 10)
            self.bus.sync_write(108, 4, acc)  # unchanged values: a control cycle's write, no effect
            if not res.complete:
                fails += 1
                continue
            cycle.append(time.perf_counter() - t0)
        wire_single = self.bus.wire_time(14 + 15) + self.bus.return_delay_s
        wire_cycle = (self.bus.wire_time(14 + len(ids) + len(ids) * 21 + 14 + 5 * len(ids))
                      + len(ids) * self.bus.return_delay_s)
        s, c = np.array(single), np.array(cycle)
        rate = 1.0 / float(np.median(c)) if len(c) else 0.0
        self.r.latency = {
            "single_read_s": _summary(s), "cycle_s": _summary(c), "failures": fails,
            "wire_single_s": wire_single, "wire_cycle_s": wire_cycle, "achievable_rate_hz": rate,
            "achievable_rate_p99_hz": 1.0 / float(np.percentile(c, 99)) if len(c) else 0.0,
            "samples_single": s.tolist(), "samples_cycle": c.tolist(),
        }
        self.r.check("latency", fails == 0, f"{len(s)} reads, {len(c)} cycles, {fails} failed; "
                     f"read p50 {_ms(s, 50)} ms p99 {_ms(s, 99)} ms")
        self.r.check("loop_rate", rate >= o.min_loop_rate_hz,
                     f"sync read + sync write of {len(ids)} servos: {rate:.0f} Hz median "
                     f"(need {o.min_loop_rate_hz:.0f} Hz; wire bound {1 / wire_cycle:.0f} Hz)")

    def _sample(self, i: int, duration: float, stop: Callable[[int, int], bool] | None = None) -> tuple:
        """Read position and current of servo ``i`` as fast as the bus allows for ``duration`` s."""
        t, pos, cur = [], [], []
        t0 = time.perf_counter()
        while True:
            now = time.perf_counter() - t0
            if now > duration:
                break
            try:
                d = self.bus.read(i, 126, 10)
            except (CommunicationTimeout, BusProtocolError):
                continue
            c = int.from_bytes(d[0:2], "little", signed=True)
            p = int.from_bytes(d[6:10], "little", signed=True)
            t.append(now)
            pos.append(p)
            cur.append(c)
            if stop is not None and stop(p, c):
                break
        return np.array(t), np.array(pos, dtype=float), np.array(cur, dtype=float)

    def _set_mode(self, i: int, mode: int) -> None:
        self.bus.write(i, 64, b"\x00")
        self.bus.write(i, 11, bytes((mode,)))

    def _position_step(self, i: int) -> None:
        o = self.o
        rec = self.r.servos[str(i)]
        self._progress(f"id {i}: position step")
        self._set_mode(i, MODE_POSITION)
        p0 = self.bus.read_int(i, 132, 4, signed=True)
        step = int(round(o.step_rad / RAD_PER_TICK))
        lo, hi = rec["min_position_limit"], rec["max_position_limit"]
        target = p0 + step if p0 + step <= hi else p0 - step
        if not lo <= target <= hi:
            self.r.check("position_step", False, f"no room for a {o.step_rad} rad step inside the limits", i)
            return
        self.bus.write_int(i, 116, 4, p0)
        self.bus.write(i, 64, b"\x01")
        results = {}
        for label, a, b in (("out", p0, target), ("back", target, p0)):
            self.bus.write_int(i, 116, 4, b)
            t, pos, cur = self._sample(i, o.step_duration_s)
            m = step_metrics(t, pos * RAD_PER_TICK, a * RAD_PER_TICK, b * RAD_PER_TICK) if len(t) >= 5 else {
                "rise_time_s": math.inf, "overshoot_pct": 0.0, "steady_state_error": math.inf,
                "settling_time_s": math.inf}  # too few answers in the step's time: a failed check, not a crash
            results[label] = {"metrics": m, "t": t.tolist(), "pos_rad": (pos * RAD_PER_TICK).tolist(),
                              "from_rad": a * RAD_PER_TICK, "to_rad": b * RAD_PER_TICK}
        self.r.steps.setdefault(str(i), {})["position"] = results
        m = results["out"]["metrics"]
        ok = abs(m["steady_state_error"]) <= o.max_ss_error_rad and m["overshoot_pct"] <= o.max_overshoot_pct \
            and math.isfinite(m["rise_time_s"])
        self.r.check("position_step", ok, f"rise {m['rise_time_s'] * 1e3:.1f} ms, overshoot "
                     f"{m['overshoot_pct']:.1f} %, steady-state error {m['steady_state_error']:+.4f} rad", i)

    def _current_step(self, i: int) -> None:
        o = self.o
        model = self._models[i]
        self._progress(f"id {i}: current step")
        self._set_mode(i, MODE_CURRENT)
        self.bus.write_int(i, 102, 2, 0)
        self.bus.write(i, 64, b"\x01")
        p0 = self.bus.read_int(i, 132, 4, signed=True)
        units = int(round(o.current_a / model.current_unit_a))
        travel = o.max_travel_rad / RAD_PER_TICK
        try:
            self.bus.write_int(i, 102, 2, units)
            t, pos, cur = self._sample(i, o.step_duration_s, stop=lambda p, c: abs(p - p0) > travel)
        finally:
            self.bus.write_int(i, 102, 2, 0)
            self._hold(i)
        amps = cur * model.current_unit_a
        m = step_metrics(t, amps, 0.0, units * model.current_unit_a) if len(t) >= 5 else {
            "rise_time_s": math.inf, "overshoot_pct": 0.0, "steady_state_error": math.inf, "settling_time_s": math.inf}
        self.r.steps.setdefault(str(i), {})["current"] = {
            "metrics": m, "t": t.tolist(), "current_a": amps.tolist(), "target_a": units * model.current_unit_a,
            "travel_rad": float((pos[-1] - p0) * RAD_PER_TICK) if len(pos) else 0.0}
        ok = abs(m["steady_state_error"]) <= o.max_current_error_a and math.isfinite(m["rise_time_s"])
        self.r.check("current_step", ok, f"{len(t)} samples, rise {m['rise_time_s'] * 1e3:.1f} ms, steady-state "
                     f"error {m['steady_state_error'] * 1e3:+.1f} mA, travel "
                     f"{self.r.steps[str(i)]['current']['travel_rad']:+.3f} rad", i)

    def _expect_error(self, name: str, i: int, fn: Callable[[], None], code: int) -> None:
        try:
            fn()
        except StatusError as exc:
            got = exc.error & 0x7F
            self.r.check(name, got == code, f"refused with {StatusErrorCode(got).name.lower()}", i)
            return
        self.r.check(name, False, "accepted (expected a refusal)", i)

    def _limits_and_errors(self) -> None:
        self._progress("limits and error handling")
        for i, m in self._models.items():
            rec = self.r.servos[str(i)]
            self._set_mode(i, MODE_POSITION)
            self._hold(i)
            self._expect_error("limit_position", i, lambda i=i, r=rec: self.bus.write_int(
                i, 116, 4, r["max_position_limit"] + 100), StatusErrorCode.DATA_LIMIT_ERROR)
            self._expect_error("eeprom_locked", i, lambda i=i: self.bus.write(i, 11, bytes((MODE_POSITION,))),
                               StatusErrorCode.ACCESS_ERROR)
            if m.has_current:
                self._set_mode(i, MODE_CURRENT_POSITION)
                self._hold(i)
                self._expect_error("limit_current", i, lambda i=i, r=rec: self.bus.write_int(
                    i, 102, 2, r["current_limit"] + 1), StatusErrorCode.DATA_LIMIT_ERROR)
            self._expect_error("read_only", i, lambda i=i: self.bus.write(i, 0, b"\x00\x00"),
                               StatusErrorCode.ACCESS_ERROR)
        absent = next(k for k in range(253) if k not in self._models and k not in self.o.ids)
        t0 = time.perf_counter()
        try:
            self.bus.ping(absent)
            ok, detail = False, f"id {absent} answered"
        except CommunicationTimeout:
            dt = time.perf_counter() - t0
            # bounded: one deadline per attempt (wire time + latency margin), not a hang
            ok = dt < 0.2 + 2 * self.o.latency_s * (self.bus.retries + 1)
            detail = f"absent id {absent}: timeout after {dt * 1e3:.1f} ms ({self.bus.retries} retries)"
        self.r.check("absent_id_timeout", ok, detail)

    def _identify_dynamics(self) -> None:
        """Torque constants, friction and the gravity check (machaon.hardware.identify)."""
        import dataclasses

        from machaon.hardware.backend import ActuatorConfig
        from machaon.hardware.identify import IdentifyOptions, identified_toml, identify
        from machaon.kinematics import Dynamics
        from machaon.robot.description import load_description

        o = self.o
        cfg = ActuatorConfig.from_robot(o.robot, port=o.port)
        cfg = dataclasses.replace(cfg, baudrate=o.baudrate)
        map_ids = [j.id for j in cfg.joints]
        if sorted(map_ids) != sorted(self._models) or sorted(map_ids) != sorted(o.ids):
            self.r.check("identify_dynamics", False, f"the servo map of {o.robot} has ids {map_ids}; the bench "
                         f"found {sorted(self._models)} of --ids {list(o.ids)}: identification skipped")
            return
        for j in cfg.joints:
            if self._models[j.id].name != j.model:
                self.r.check("identify_dynamics", False, f"servo {j.id} ({j.name}) is a {self._models[j.id].name}, "
                             f"the servo map says {j.model}: identification skipped", j.id)
                return
        desc = load_description(o.robot)
        dyn = Dynamics.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link, armature=desc.armature)
        opts = IdentifyOptions(sweep_rad=o.sweep_rad, gravity_levels=o.gravity_levels)
        try:
            res = identify(self.bus, cfg, dyn, opts, q_start=np.asarray(desc.q_home), progress=self._progress)
        except ValueError as exc:  # no room to sweep, too few samples, a fit that makes no sense
            self.r.check("identify_dynamics", False, str(exc))
            self._safe_all()
            return
        g_rms, g_pct = res.gravity_error()
        joints = {}
        for k, r in enumerate(res.joints):
            ok = 0.5 <= r.kt_nm_per_a / r.kt_datasheet <= 2.0 and r.rms_error_pct <= 30.0
            self.r.check("dynamics_fit", ok, f"{r.name}: kt {r.kt_nm_per_a:.3f} N m/A (datasheet {r.kt_datasheet:.3f}, "
                         f"from {r.excitation}), Coulomb {r.coulomb_nm:.3f} N m, viscous {r.viscous_nms_rad:.3f} "
                         f"N m s/rad; model error {r.rms_error_nm:.3f} N m ({r.rms_error_pct:.1f} %)", r.id)
            rec = {**dataclasses.asdict(r), "kt_from": r.excitation}
            if res.gravity:
                rec["gravity_error_nm"] = float(g_rms[k])
                rec["gravity_error_pct"] = None if not np.isfinite(g_pct[k]) else float(g_pct[k])
                if np.isfinite(g_pct[k]):
                    g_scale = g_rms[k] / (g_pct[k] / 100.0)  # RMS model gravity torque of this joint
                    ok_g = g_rms[k] <= max(0.05, 0.2 * g_scale)
                    self.r.check("gravity_model", ok_g, f"{r.name}: measured vs model gravity torque "
                                 f"{g_rms[k]:.3f} N m RMS ({g_pct[k]:.1f} %) over {len(res.gravity)} poses", r.id)
            joints[r.name] = rec
        self.r.identification = {"robot": o.robot, "joints": joints,
                                 "gravity_poses": [dataclasses.asdict(g) for g in res.gravity]}
        self.r.identified_toml = identified_toml(cfg, res)

    # ------------------------------------------------------------------ safety

    def _hold(self, i: int) -> None:
        """Position mode holding the present position, torque on."""
        self._set_mode(i, MODE_POSITION)
        self.bus.write_int(i, 116, 4, self.bus.read_int(i, 132, 4, signed=True))
        self.bus.write(i, 64, b"\x01")

    def _safe_all(self) -> None:
        for i in self._models:
            try:
                if self.o.safe_state == "torque_off":
                    self.bus.write(i, 64, b"\x00")
                else:
                    self._hold(i)
            except BusProtocolError as exc:
                log.error("servo %d: safe state not confirmed: %s", i, exc)

    def _restore(self) -> None:
        for i, orig in self._original.items():
            try:
                mode = orig["operating_mode"]
                self._set_mode(i, mode)
                if orig["torque_enable"]:
                    if mode in (MODE_POSITION, MODE_CURRENT_POSITION):
                        self.bus.write_int(i, 116, 4, self.bus.read_int(i, 132, 4, signed=True))
                    self.bus.write(i, 64, b"\x01")
            except BusProtocolError as exc:
                self.r.check("restore", False, f"could not restore the original settings: {exc}", i)


def _summary(x: np.ndarray) -> dict[str, float]:
    if not len(x):
        return {}
    return {"n": int(len(x)), "mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
            "p90": float(np.percentile(x, 90)), "p99": float(np.percentile(x, 99)), "max": float(x.max()),
            "min": float(x.min())}


def _ms(x: np.ndarray, q: float) -> str:
    return f"{np.percentile(x, q) * 1e3:.3f}" if len(x) else "n/a"


def run_bench(options: BenchOptions, *, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Open the port, run the suite, write the report; returns it (``report.passed`` is the verdict)."""
    with Bus(options.port, options.baudrate, latency_s=options.latency_s) as bus:
        report = Bench(bus, options, progress=progress).run()
    write_bench_report(report, options.out_dir)
    return report


def parse_bauds(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(int(b) for b in text.split(",") if b.strip())


write_report = write_bench_report  # the old name, for one release (#16: ortho has a write_report too)

__all__: Sequence[str] = ["Bench", "BenchOptions", "BenchReport", "run_bench", "step_metrics", "write_bench_report"]
