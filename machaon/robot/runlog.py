"""Run logs: a control loop's states, commands, targets and supervisor events in an MCAP file.

Channels are JSON-encoded with a JSON schema each, so Foxglove opens the files directly. The
topics and schemas are those of the live view (``machaon.robot.topics``: ``/joint_states``,
``/tf``, ``/wrench``, ``/machaon/command``, ``/machaon/target``, ``/machaon/supervisor``,
``/machaon/loop_stats``, ``/scene``, ``/log``), so a live session and its log look the same in
Foxglove. ``/tf`` is written when the recorder has ``link_frames`` (at most ``tf_rate_hz``), plus
whatever frames, scene entities and log lines the application records
(``record_transforms``, ``record_scene``, ``record_log``). Files written before these topics
existed (``/machaon/joint_state``, fields ``q``/``dq``/``tau``) are still read.

Log times are the backend clock in nanoseconds. ``RunLogRecorder`` is what ``ControlLoop`` takes
as ``recorder``; ``read_run_log`` loads a file back into arrays (``RunLog``), which
``format_summary`` and ``plot_run`` (matplotlib, Agg) turn into the ``machaon log`` outputs.
A file that is not a readable MCAP run log raises ``RunLogError``.

Crash safety: the recorder closes the chunk in progress and hands it to the operating system
every ``flush_every_s`` of log time (and whenever a chunk fills), so a run killed without warning
(SIGKILL, power loss of the process) leaves an MCAP file whose complete chunks are all readable:
``read_run_log`` reads such a file record by record up to the first damaged one, and
``recover_run_log`` (``machaon log recover``) rewrites that part as a complete, indexed MCAP file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mcap.reader import make_reader
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from machaon.control.supervisor import SupervisorEvent
from machaon.errors import RobotError
from machaon.robot import topics as tp
from machaon.robot.loop import LoopStats
from machaon.robot.topics import (
    TARGET_KEYS,  # noqa: F401 - re-exported (public name of this module)
    TOPIC_COMMAND,
    TOPIC_LOG,
    TOPIC_SCENE,
    TOPIC_STATS,
    TOPIC_SUPERVISOR,
    TOPIC_TARGET,
    TOPIC_TF,
    TOPIC_WRENCH,
)
from machaon.types import JointCommand, JointState

TOPIC_STATE = tp.TOPIC_JOINT_STATES
_OLD_TOPIC_STATE = "/machaon/joint_state"  # files written before the live-view topics
PROFILE = "machaon-runlog-1"

_SCHEMAS = tp.SCHEMAS


class RunLogError(RobotError):
    """The file is not a readable Machaon run log (not MCAP, truncated, or no joint states)."""


def _ns(t: float) -> int:
    return max(0, int(round(t * 1e9)))


class RunLogRecorder:
    """Writes a run log to ``path`` (MCAP, zstd-compressed chunks). Use as a context manager.

    ``decimation`` records every k-th cycle's state, command and target (events and stats are
    always recorded). ``metadata`` (str -> str) is stored as the MCAP metadata record "machaon".
    Chunks are small (``chunk_size`` bytes before compression, ~0.1 s at 1 kHz) and written as they
    fill, and at least every ``flush_every_s`` of log time the chunk in progress is closed and
    flushed to the operating system, so a run that is killed before ``close`` loses at most that
    much; ``read_run_log`` reads such a truncated file up to its last complete chunk.

    ``link_frames`` (``machaon.robot.link_frames.LinkFrames``) adds ``/tf`` with every link at
    most ``tf_rate_hz`` times per second of backend time; ``wrench_frame`` names the frame of
    ``/wrench`` (the base link by default). Applications add scene frames, 3D entities and log
    lines with ``record_transforms``, ``record_scene`` and ``record_log``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        joint_names: Sequence[str] | None = None,
        decimation: int = 1,
        metadata: dict[str, str] | None = None,
        chunk_size: int = 64 * 1024,
        link_frames: object | None = None,
        tf_rate_hz: float = 50.0,
        wrench_frame: str | None = None,
        flush_every_s: float = 1.0,
    ) -> None:
        if not (isinstance(decimation, int) and decimation >= 1):
            raise ValueError(f"decimation: must be an int >= 1, got {decimation!r}")
        if not (math.isfinite(tf_rate_hz) and tf_rate_hz > 0):
            raise ValueError(f"tf_rate_hz: must be > 0, got {tf_rate_hz!r}")
        if not (math.isfinite(flush_every_s) and flush_every_s > 0):
            raise ValueError(f"flush_every_s: must be positive, got {flush_every_s!r}")
        self.flush_every_s = float(flush_every_s)
        self._t_flush: float | None = None
        self.path = Path(path)
        self.decimation = decimation
        self.joint_names = tuple(joint_names) if joint_names is not None else ()
        self.link_frames = link_frames
        self._tf_period = 1.0 / tf_rate_hz
        self._t_next_tf = -math.inf
        self.wrench_frame = wrench_frame or (link_frames.base_link if link_frames is not None else "base_link")
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library="machaon")
        self._channels: dict[str, int] = {}
        for topic, schema in _SCHEMAS.items():
            sid = self._writer.register_schema(
                name=schema["title"], encoding="jsonschema", data=json.dumps(schema).encode()
            )
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=sid
            )
        meta = {"joint_names": json.dumps(list(joint_names) if joint_names is not None else [])}
        meta["decimation"] = str(decimation)
        meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
        self._metadata = meta
        self._writer.add_metadata("machaon", meta)
        self._writer.flush()  # header, schemas, channels and metadata reach the disk at once
        self._count = 0
        self._seq = 0
        self._t_last = 0.0
        self._closed = False

    def describe_robot(self, joint_names: Sequence[str], link_frames: object | None,
                       wrench_frame: str | None = None) -> None:
        """Set the joint names and the ``LinkFrames`` (``/tf`` of every link) of the robot being recorded,
        for applications that build the robot after the recording was opened (as ``FoxgloveLiveView``'s);
        the names are stored again in the "machaon" metadata (readers take the last such record)."""
        if self._closed:
            return
        self.joint_names = tuple(joint_names)
        self.link_frames = link_frames
        if wrench_frame is not None or link_frames is not None:
            self.wrench_frame = wrench_frame or link_frames.base_link
        self._metadata = {**self._metadata, "joint_names": json.dumps(list(self.joint_names))}
        self._writer.add_metadata("machaon", self._metadata)

    def _add(self, topic: str, t: float, msg: dict) -> None:
        self._seq += 1
        self._t_last = max(self._t_last, t)
        ns = _ns(t)
        self._writer.add_message(
            channel_id=self._channels[topic],
            log_time=ns,
            publish_time=ns,
            data=json.dumps(msg, separators=(",", ":")).encode(),
            sequence=self._seq,
        )
        if self._t_flush is None:
            self._t_flush = t
        elif t - self._t_flush >= self.flush_every_s:
            self._writer.flush()  # a complete chunk on disk: a killed run keeps everything up to here
            self._t_flush = t

    def record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """Record one cycle (every ``decimation``-th call)."""
        if self._closed:
            return
        self._count += 1
        if (self._count - 1) % self.decimation:
            return
        names = self.joint_names
        if len(names) != len(state.q):
            names = tuple(f"joint{i + 1}" for i in range(len(state.q)))
            self.joint_names = names
        self._add(TOPIC_STATE, t, tp.joint_state_msg(t, names, state))
        self._add(TOPIC_COMMAND, t, tp.command_msg(t, cmd))
        target = tp.target_msg(t, cmd.info)
        if target is not None:
            self._add(TOPIC_TARGET, t, target)
        if state.wrench_tool is not None:
            self._add(TOPIC_WRENCH, t, tp.wrench_msg(t, state.wrench_tool, self.wrench_frame))
        if self.link_frames is not None and t >= self._t_next_tf and np.isfinite(state.q).all():
            self._t_next_tf = max(self._t_next_tf + self._tf_period, t)
            self._add(TOPIC_TF, t, tp.frame_transforms_msg(t, self.link_frames.frames(state.q)))

    def record_events(self, events: Iterable[SupervisorEvent]) -> None:
        """Record supervisor events (``SupervisorEvent``)."""
        if self._closed:
            return
        for ev in events:
            self._add(TOPIC_SUPERVISOR, ev.t, tp.supervisor_msg(ev))

    def record_stats(self, stats: LoopStats, t: float | None = None) -> None:
        """Record the loop statistics (``LoopStats``) at time ``t`` (default: the last cycle's)."""
        if self._closed:
            return
        # JSON has no NaN (the wall-clock fields of a run that was not real time): null instead
        d = {k: (v if math.isfinite(v) else None) for k, v in tp.stats_msg(stats).items()}
        self._add(TOPIC_STATS, t if t is not None else self._t_last, d)

    def record_transforms(self, t: float, frames: Iterable[tp.FramePose]) -> None:
        """Record scene frames (``FramePose``: camera, plates, vertebrae...) on ``/tf`` at time ``t``."""
        if self._closed:
            return
        self._add(TOPIC_TF, t, tp.frame_transforms_msg(t, frames))

    def record_scene(self, t: float, entities: Iterable[tp.SceneEntity], deleted_ids: Iterable[str] = ()) -> None:
        """Record 3D entities (``SceneEntity``) added, replaced or deleted on ``/scene`` at time ``t``."""
        if self._closed:
            return
        self._add(TOPIC_SCENE, t, tp.scene_update_msg(t, entities, deleted_ids))

    def record_log(self, t: float, message: str, level: int = tp.LOG_INFO) -> None:
        """Record one line the application says (``/log``, foxglove.Log) at time ``t``."""
        if self._closed:
            return
        self._add(TOPIC_LOG, t, tp.log_msg(t, message, level))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> RunLogRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RunLog:
    """A run log read back into arrays (times in s, SI values; NaN where a value was absent)."""

    joint_names: tuple[str, ...]
    t: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    ok: np.ndarray
    cmd_t: np.ndarray
    cmd_mode: tuple[str, ...]
    cmd_tau: np.ndarray
    cmd_q: np.ndarray
    cmd_dq: np.ndarray
    target_t: np.ndarray
    targets: dict[str, np.ndarray]
    events: tuple[dict, ...]
    faults: tuple[dict, ...]
    stats: dict[str, float] | None
    metadata: dict[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def dof(self) -> int:
        return self.q.shape[1]


def _rows(rows: list[list[float | None] | None], n: int) -> np.ndarray:
    out = np.full((len(rows), n), np.nan)
    for i, r in enumerate(rows):
        if r is not None and len(r) == n:
            out[i] = [np.nan if x is None else x for x in r]
    return out


def _state_fields(m: dict) -> dict:
    """A ``/joint_states`` message with the field names the reader uses (``t``, ``q``, ``dq``, ``tau``)."""
    t = m["t"] if "t" in m else tp.stamp_seconds(m.get("timestamp", {}))
    return {"t": t, "q": m.get("position"), "dq": m.get("velocity"), "tau": m.get("effort"), "ok": m.get("ok", True),
            "faults": m.get("faults", [])}


def _read_linear(path: Path) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Messages and metadata read record by record, stopping quietly at the first bad record."""
    msgs: dict[str, list[dict]] = {}
    metadata: dict[str, str] = {}
    channels: dict[int, str] = {}
    try:
        with open(path, "rb") as f:
            for record in StreamReader(f, skip_magic=False, validate_crcs=True).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Metadata) and record.name == "machaon":
                    metadata = dict(record.metadata)
                elif isinstance(record, Message) and record.channel_id in channels:
                    msgs.setdefault(channels[record.channel_id], []).append(json.loads(record.data))
    except Exception:  # truncated or corrupt from here on: keep what was read
        pass
    return msgs, metadata


def recover_run_log(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> tuple[int, str | None]:
    """Rewrite the readable part of a run log (e.g. of a killed run) as a complete MCAP file.

    Records are read in order up to the first damaged or missing one and written to ``dst``
    atomically (temporary file, then rename) with chunk indexes and a summary. Returns (number of
    messages recovered, why reading stopped or None if ``src`` was complete). Raises
    ``RunLogError`` if nothing usable was found, ``OSError`` if ``dst`` cannot be written."""
    from machaon._io import atomic_write

    src = Path(src)
    if not src.is_file():
        raise RunLogError(f"no such file: {src}")
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    items: list[object] = []
    stopped: str | None = None
    with open(src, "rb") as f:
        try:
            for record in StreamReader(f, skip_magic=False, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas.setdefault(record.id, record)
                elif isinstance(record, Channel):
                    channels.setdefault(record.id, record)
                elif isinstance(record, Message | Metadata):
                    items.append(record)
        except Exception as exc:  # the damaged tail: keep what came before it
            stopped = f"{type(exc).__name__}: {exc}"
    n_msgs = sum(isinstance(r, Message) and r.channel_id in channels for r in items)
    if not channels or n_msgs == 0:
        raise RunLogError(f"{src}: no readable messages (not a run log, or damaged from the start)")
    with atomic_write(dst, "wb") as out:
        w = Writer(out, compression=CompressionType.ZSTD)
        w.start(profile=PROFILE, library="machaon (recovered)")
        sid_map = {sid: w.register_schema(s.name, s.encoding, s.data) for sid, s in schemas.items()}
        cid_map = {
            cid: w.register_channel(c.topic, c.message_encoding, sid_map.get(c.schema_id, 0), dict(c.metadata))
            for cid, c in channels.items()
        }
        for r in items:
            if isinstance(r, Metadata):
                meta = dict(r.metadata)
                if r.name == "machaon" and stopped is not None:
                    meta["recovered"] = f"rewritten from {src.name}; the original stopped at: {stopped}"
                w.add_metadata(r.name, meta)
            elif r.channel_id in cid_map:
                w.add_message(cid_map[r.channel_id], log_time=r.log_time, data=r.data,
                              publish_time=r.publish_time, sequence=r.sequence)
        w.finish()
    return n_msgs, stopped


def read_run_log(path: str | os.PathLike[str]) -> RunLog:
    """Load a run log written by ``RunLogRecorder``. Raises ``RunLogError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise RunLogError(f"no such file: {path}")
    msgs: dict[str, list[dict]] = {}
    metadata: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            reader = make_reader(f)
            for meta in reader.iter_metadata():
                if meta.name == "machaon":
                    metadata = dict(meta.metadata)
            for _schema, channel, message in reader.iter_messages():
                msgs.setdefault(channel.topic, []).append(json.loads(message.data))
    except Exception as exc:  # the mcap reader raises assorted errors on corrupt input
        # No usable summary section (e.g. the run crashed before close): read the records in
        # order up to the first damaged one.
        msgs, metadata = _read_linear(path)
        if not msgs:
            raise RunLogError(f"{path}: not a readable MCAP run log ({type(exc).__name__}: {exc})") from None
        metadata["truncated"] = f"read up to a damaged or missing record ({type(exc).__name__})"
    state_msgs = [_state_fields(m) for m in msgs.get(TOPIC_STATE, [])] or msgs.get(_OLD_TOPIC_STATE, [])
    cmd_msgs = msgs.get(TOPIC_COMMAND, [])
    target_msgs = msgs.get(TOPIC_TARGET, [])
    events = msgs.get(TOPIC_SUPERVISOR, [])
    stats = msgs[TOPIC_STATS][-1] if msgs.get(TOPIC_STATS) else None
    if not state_msgs:
        raise RunLogError(f"{path}: no joint states on {TOPIC_STATE}")
    n = len(state_msgs[0]["q"])
    try:
        names = tuple(json.loads(metadata.get("joint_names", "[]")))
    except ValueError:
        names = ()
    if len(names) != n:
        names = tuple(f"joint{i + 1}" for i in range(n))
    targets: dict[str, np.ndarray] = {}
    keys = sorted({k for m in target_msgs for k in m if k not in ("t", "timestamp")})
    for k in keys:
        width = max((len(m[k]) for m in target_msgs if m.get(k) is not None), default=0)
        targets[k] = _rows([m.get(k) for m in target_msgs], width)
    faults = tuple({"t": m["t"], **f} for m in state_msgs for f in m.get("faults", ()))
    return RunLog(
        joint_names=names,
        t=np.array([m["t"] for m in state_msgs], dtype=np.float64),
        q=_rows([m["q"] for m in state_msgs], n),
        dq=_rows([m["dq"] for m in state_msgs], n),
        tau=_rows([m["tau"] for m in state_msgs], n),
        ok=np.array([bool(m.get("ok", True)) for m in state_msgs]),
        cmd_t=np.array([m["t"] for m in cmd_msgs], dtype=np.float64),
        cmd_mode=tuple(m["mode"] for m in cmd_msgs),
        cmd_tau=_rows([m.get("tau") for m in cmd_msgs], n),
        cmd_q=_rows([m.get("q") for m in cmd_msgs], n),
        cmd_dq=_rows([m.get("dq") for m in cmd_msgs], n),
        target_t=np.array([m["t"] for m in target_msgs], dtype=np.float64),
        targets=targets,
        events=tuple(sorted(events, key=lambda e: e["t"])),
        faults=faults,
        stats=stats,
        metadata=metadata,
        path=str(path),
    )


def tracking_error(run: RunLog) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(t, error rows, label) for the plot: joint target minus q, else the Cartesian error, else None."""
    if "q_d" in run.targets and run.targets["q_d"].shape[1] == run.dof and len(run.target_t):
        idx = np.searchsorted(run.t, run.target_t).clip(0, len(run.t) - 1)
        return run.target_t, run.targets["q_d"] - run.q[idx], "q_d - q (rad)"
    if "error" in run.targets and run.targets["error"].shape[1] == 6:
        e = run.targets["error"]
        both = np.column_stack([np.linalg.norm(e[:, :3], axis=1) * 1e3, np.degrees(np.linalg.norm(e[:, 3:], axis=1))])
        return run.target_t, both, "|position error| (mm), |rotation error| (deg)"
    if any(m == "position" for m in run.cmd_mode) and len(run.cmd_t) == len(run.t):
        return run.t, run.cmd_q - run.q, "commanded q - q (rad)"
    return None


def _stats_lines(stats: dict, dur: float) -> list[str]:
    """The loop's timing (and, for a run paced at real time, the wall clock's) from its last stats."""
    s = {k: (0.0 if v is None else v) for k, v in stats.items()}
    lines: list[str] = []
    if s.get("window_s", 0) > 0:
        lines.append(f"loop stats    running record over the last {s['window_s']:.1f} s (the run did not finish "
                     "cleanly)")
    lines.append(
        f"loop          {int(s.get('cycles', 0))} cycles, {int(s.get('overruns', 0))} overruns; period median "
        f"{s.get('period_median', 0) * 1e3:.4f} ms, p99 {s.get('period_p99', 0) * 1e3:.4f} ms, "
        f"max {s.get('period_max', 0) * 1e3:.4f} ms"
    )
    lines.append(
        f"jitter        |period error| median {s.get('error_median', 0) * 1e6:.1f} us, p99 "
        f"{s.get('error_p99', 0) * 1e6:.1f} us, std {s.get('jitter_std', 0) * 1e6:.1f} us; "
        f"compute median {s.get('compute_median', 0) * 1e6:.1f} us, p99 {s.get('compute_p99', 0) * 1e6:.1f} us"
    )
    if s.get("realtime"):
        lines.append(
            f"wall clock    {s.get('wall_elapsed_s', 0):.3f} s for {dur:.3f} s of loop time, real-time factor "
            f"{s.get('realtime_factor', 0):.3f}; {int(s.get('wall_overruns', 0))} overruns (cycles more than one "
            f"period late)"
        )
        lines.append(
            f"wall jitter   period median {s.get('wall_period_median', 0) * 1e3:.4f} ms, p99 "
            f"{s.get('wall_period_p99', 0) * 1e3:.4f} ms, max {s.get('wall_period_max', 0) * 1e3:.4f} ms; "
            f"|period error| median {s.get('wall_error_median', 0) * 1e6:.1f} us, p99 "
            f"{s.get('wall_error_p99', 0) * 1e6:.1f} us, std {s.get('wall_jitter_std', 0) * 1e6:.1f} us"
        )
    return lines


def format_summary(run: RunLog) -> str:
    """Human-readable summary: duration, rates, loop timing, tracking, faults and supervisor events."""
    lines = [f"run log       {run.path}"] if run.path else []
    if "truncated" in run.metadata:
        lines.append(f"WARNING       truncated file, {run.metadata['truncated']} (machaon log recover rewrites it)")
    if "recovered" in run.metadata:
        lines.append(f"recovered     {run.metadata['recovered']}")
    dur = float(run.t[-1] - run.t[0]) if len(run.t) > 1 else 0.0
    dec = int(run.metadata.get("decimation", "1") or 1)
    lines.append(f"joints        {run.dof} ({', '.join(run.joint_names)})")
    lines.append(f"duration      {dur:.3f} s, {len(run.t)} recorded cycles (every {dec})")
    if len(run.t) > 1:
        dt = np.diff(run.t) / dec
        lines.append(
            f"rate          {1.0 / np.median(dt):.1f} Hz (from state times; period median {np.median(dt) * 1e3:.4f} ms,"
            f" max {dt.max() * 1e3:.4f} ms)"
        )
    modes = sorted(set(run.cmd_mode))
    lines.append(f"command modes {', '.join(modes) if modes else '-'}")
    if run.stats:
        lines.extend(_stats_lines(run.stats, dur))
    tr = tracking_error(run)
    if tr is not None:
        _, e, label = tr
        with np.errstate(all="ignore"):
            lines.append(f"tracking      {label}: max {np.nanmax(np.abs(e)):.4g}, final {np.abs(e[-1]).max():.4g}")
    if np.isfinite(run.tau).any():
        peak = np.round(np.nanmax(np.abs(run.tau), axis=0), 3).tolist()
        lines.append(f"torque        max |tau| per joint (N m): {peak}")
    bad = int((~run.ok).sum())
    if bad or run.faults:
        lines.append(f"device        {bad} untrusted readings, {len(run.faults)} faults reported")
        for f in run.faults[:10]:
            lines.append(f"  t={f['t']:.4f}  {f.get('source')}/{f.get('code')}: {f.get('message')}")
    lines.append(f"events        {len(run.events)} supervisor transitions")
    for e in run.events:
        lines.append(f"  t={e['t']:.4f}  {e['from']} -> {e['to']}  [{e['code']}] {e['reason']}")
    return "\n".join(lines)


def plot_run(run: RunLog, out: str | os.PathLike[str] | object) -> Path:
    """Draw joints, tracking errors and torques (with supervisor events as lines) to a PNG (a path,
    or a binary file object)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    tr = tracking_error(run)
    nrows = 3 if tr is not None else 2
    fig = Figure(figsize=(10, 3.0 * nrows), dpi=100)
    axes = fig.subplots(nrows, 1, sharex=True)
    t0 = run.t[0]
    ax = axes[0]
    for j, name in enumerate(run.joint_names):
        line = ax.plot(run.t - t0, run.q[:, j], label=name, lw=1.0)[0]
        if "q_d" in run.targets and run.targets["q_d"].shape[1] == run.dof:
            ax.plot(run.target_t - t0, run.targets["q_d"][:, j], "--", color=line.get_color(), lw=0.8)
    ax.set_ylabel("q (rad or m)")
    name = run.metadata.get("title") or Path(run.path).name or "run log"
    ax.set_title(f"{name}: joint positions (dashed: target)")
    ax.legend(loc="upper right", fontsize="small", ncol=min(run.dof, 6))
    k = 1
    if tr is not None:
        ax = axes[k]
        te, e, label = tr
        for j in range(e.shape[1]):
            ax.plot(te - t0, e[:, j], lw=1.0)
        ax.set_ylabel("tracking error")
        ax.set_title(label)
        k += 1
    ax = axes[k]
    tau = run.cmd_tau if np.isfinite(run.cmd_tau).any() else run.tau
    tt = run.cmd_t if np.isfinite(run.cmd_tau).any() else run.t
    for j, name in enumerate(run.joint_names):
        ax.plot(tt - t0, tau[:, j], label=name, lw=1.0)
    ax.set_ylabel("tau (N m)")
    ax.set_title("commanded joint torques" if tt is run.cmd_t else "measured joint torques")
    ax.set_xlabel("t (s)")
    for e in run.events:
        for a in axes:
            a.axvline(e["t"] - t0, color="red", lw=0.8, alpha=0.7)
        axes[0].annotate(e["to"], (e["t"] - t0, 1.0), xycoords=("data", "axes fraction"), color="red",
                         fontsize="x-small", rotation=90, va="top")
    for a in axes:
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    if hasattr(out, "write"):
        fig.savefig(out, format="png")
        name = getattr(out, "name", "")
        return Path(name if isinstance(name, str) else "")
    out = Path(out)
    fig.savefig(out, format="png")
    return out
