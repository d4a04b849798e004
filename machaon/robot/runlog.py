"""Run logs: a control loop's states, commands, targets and supervisor events in an MCAP file.

Channels are JSON-encoded with a JSON schema each, so Foxglove Studio opens the files directly:

====================================  ========================================================
topic                                 message
====================================  ========================================================
``/machaon/joint_state``              ``t`` (s), ``q``, ``dq``, ``tau`` (SI), ``ok``, ``faults``
``/machaon/command``                  ``t``, ``mode`` (torque/position/velocity), ``tau``, ``q``, ``dq``
``/machaon/target``                   ``t`` and the controller's target/error (``cmd.info``:
                                      ``q_d`` joint target, ``x_d`` target position, ``error``
                                      Cartesian error [m; rad], ...), when the controller gives one
``/machaon/supervisor``               ``t``, ``from``, ``to``, ``code``, ``reason``
``/machaon/loop_stats``               the loop's ``LoopStats`` at the end of a run
====================================  ========================================================

Log times are the backend clock in nanoseconds. ``RunLogRecorder`` is what ``ControlLoop`` takes
as ``recorder``; ``read_run_log`` loads a file back into arrays (``RunLog``), which
``format_summary`` and ``plot_run`` (matplotlib, Agg) turn into the ``machaon log`` outputs.
A file that is not a readable MCAP run log raises ``RunLogError``.
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
from mcap.records import Channel, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from machaon.errors import RobotError
from machaon.types import JointCommand, JointState

TOPIC_STATE = "/machaon/joint_state"
TOPIC_COMMAND = "/machaon/command"
TOPIC_TARGET = "/machaon/target"
TOPIC_SUPERVISOR = "/machaon/supervisor"
TOPIC_STATS = "/machaon/loop_stats"
PROFILE = "machaon-runlog-1"

_NUM_ARRAY = {"type": "array", "items": {"type": "number"}}
_SCHEMAS = {
    TOPIC_STATE: {
        "title": "machaon.JointState",
        "type": "object",
        "properties": {
            "t": {"type": "number", "description": "backend clock, s"},
            "q": _NUM_ARRAY,
            "dq": _NUM_ARRAY,
            "tau": _NUM_ARRAY,
            "ok": {"type": "boolean"},
            "faults": {"type": "array", "items": {"type": "object"}},
        },
    },
    TOPIC_COMMAND: {
        "title": "machaon.JointCommand",
        "type": "object",
        "properties": {
            "t": {"type": "number"},
            "mode": {"type": "string", "enum": ["torque", "position", "velocity"]},
            "tau": {"type": ["array", "null"], "items": {"type": "number"}},
            "q": {"type": ["array", "null"], "items": {"type": "number"}},
            "dq": {"type": ["array", "null"], "items": {"type": "number"}},
        },
    },
    TOPIC_TARGET: {
        "title": "machaon.Target",
        "type": "object",
        "properties": {"t": {"type": "number"}},
        "additionalProperties": _NUM_ARRAY,
    },
    TOPIC_SUPERVISOR: {
        "title": "machaon.SupervisorEvent",
        "type": "object",
        "properties": {
            "t": {"type": "number"},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "code": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    TOPIC_STATS: {"title": "machaon.LoopStats", "type": "object", "additionalProperties": {"type": "number"}},
}

# cmd.info keys recorded on the target channel (arrays of floats).
TARGET_KEYS = ("q_d", "dq_d", "x_d", "quat_d", "error", "wrench", "x", "tau_ff")


class RunLogError(RobotError):
    """The file is not a readable Machaon run log (not MCAP, truncated, or no joint states)."""


def _ns(t: float) -> int:
    return max(0, int(round(t * 1e9)))


def _list(a: np.ndarray | None) -> list[float] | None:
    if a is None:
        return None
    # JSON has no NaN/Inf: record them as null so a bad cycle is still visible in the log.
    arr = np.asarray(a, dtype=np.float64).ravel()
    if np.isfinite(arr).all():
        return arr.tolist()
    return [float(x) if math.isfinite(x) else None for x in arr]


class RunLogRecorder:
    """Writes a run log to ``path`` (MCAP, zstd-compressed chunks). Use as a context manager.

    ``decimation`` records every k-th cycle's state, command and target (events and stats are
    always recorded). ``metadata`` (str -> str) is stored as the MCAP metadata record "machaon".
    Chunks are small (``chunk_size`` bytes before compression, ~0.1 s at 1 kHz) and written as they
    fill, so a run that crashes before ``close`` loses at most the last chunk; ``read_run_log``
    reads such a truncated file up to its last complete chunk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        joint_names: Sequence[str] | None = None,
        decimation: int = 1,
        metadata: dict[str, str] | None = None,
        chunk_size: int = 64 * 1024,
    ) -> None:
        if not (isinstance(decimation, int) and decimation >= 1):
            raise ValueError(f"decimation: must be an int >= 1, got {decimation!r}")
        self.path = Path(path)
        self.decimation = decimation
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
        self._writer.add_metadata("machaon", meta)
        self._count = 0
        self._seq = 0
        self._t_last = 0.0
        self._closed = False

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

    def record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """Record one cycle (every ``decimation``-th call)."""
        if self._closed:
            return
        self._count += 1
        if (self._count - 1) % self.decimation:
            return
        faults = [
            {"source": f.source, "code": f.code, "message": f.message, "joint": f.joint, "persistent": f.persistent}
            for f in state.faults
        ]
        self._add(
            TOPIC_STATE,
            t,
            {"t": t, "q": _list(state.q), "dq": _list(state.dq), "tau": _list(state.tau), "ok": bool(state.ok),
             "faults": faults},
        )
        self._add(
            TOPIC_COMMAND,
            t,
            {"t": t, "mode": cmd.mode.value, "tau": _list(cmd.tau), "q": _list(cmd.q), "dq": _list(cmd.dq)},
        )
        info = cmd.info
        if info:
            target = {k: _list(info[k]) for k in TARGET_KEYS if k in info and info[k] is not None}
            if target:
                target["t"] = t
                self._add(TOPIC_TARGET, t, target)

    def record_events(self, events: Iterable[object]) -> None:
        """Record supervisor events (``SupervisorEvent``)."""
        if self._closed:
            return
        for ev in events:
            self._add(
                TOPIC_SUPERVISOR,
                ev.t,
                {"t": ev.t, "from": ev.from_state.value, "to": ev.to_state.value, "code": ev.code,
                 "reason": ev.reason},
            )

    def record_stats(self, stats: object, t: float | None = None) -> None:
        """Record the loop statistics (``LoopStats``) at time ``t`` (default: the last cycle's)."""
        if self._closed:
            return
        d = {k: float(v) for k, v in stats.as_dict().items()}
        self._add(TOPIC_STATS, t if t is not None else self._t_last, d)

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


def _read_linear(path: Path) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Messages and metadata read record by record, stopping quietly at the first bad record."""
    msgs: dict[str, list[dict]] = {}
    metadata: dict[str, str] = {}
    channels: dict[int, str] = {}
    try:
        with open(path, "rb") as f:
            for record in StreamReader(f, skip_magic=False).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Metadata) and record.name == "machaon":
                    metadata = dict(record.metadata)
                elif isinstance(record, Message) and record.channel_id in channels:
                    msgs.setdefault(channels[record.channel_id], []).append(json.loads(record.data))
    except Exception:  # truncated or corrupt from here on: keep what was read
        pass
    return msgs, metadata


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
    state_msgs = msgs.get(TOPIC_STATE, [])
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
    keys = sorted({k for m in target_msgs for k in m if k != "t"})
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


def format_summary(run: RunLog) -> str:
    """Human-readable summary: duration, rates, loop timing, tracking, faults and supervisor events."""
    lines = [f"run log       {run.path}"] if run.path else []
    if "truncated" in run.metadata:
        lines.append(f"WARNING       truncated file, {run.metadata['truncated']}")
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
        s = run.stats
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


def plot_run(run: RunLog, out: str | os.PathLike[str]) -> Path:
    """Draw joints, tracking errors and torques (with supervisor events as lines) to a PNG."""
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
    out = Path(out)
    fig.savefig(out, format="png")
    return out
