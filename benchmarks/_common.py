"""Timing helpers shared by the benchmarks: median and p99 of repeated calls, table printing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def time_calls(fn: Callable[[], object], repeat: int = 2000, warmup: int = 200) -> np.ndarray:
    """Seconds per call of ``fn`` over ``repeat`` calls (after ``warmup``)."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    clock = time.perf_counter
    for i in range(repeat):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def time_per_call(fn: Callable[[], object], calls: int = 200, blocks: int = 50,
                  clock: Callable[[], float] = time.perf_counter) -> np.ndarray:
    """Seconds per call, from ``blocks`` timings of ``calls`` back-to-back calls each.

    Timing blocks rather than single calls keeps the timer's own cost (~0.1 us) out of
    sub-microsecond measurements.
    """
    for _ in range(calls):
        fn()
    out = np.empty(blocks)
    rng = range(calls)
    for b in range(blocks):
        t0 = clock()
        for _ in rng:
            fn()
        out[b] = (clock() - t0) / calls
    return out


def cpu_per_call(fn: Callable[[], object], calls: int = 200, blocks: int = 50) -> np.ndarray:
    """As ``time_per_call``, in this thread's CPU time (``time.thread_time``).

    On a shared machine the wall time includes the time other processes held the core; the
    thread's CPU time does not (it still includes cache and frequency effects of the sharing).
    """
    return time_per_call(fn, calls, blocks, clock=time.thread_time)


def pin_model(chain: object) -> tuple[object, object, int]:
    """pinocchio's (model, data, tip frame id) of ``chain``'s URDF, for the peers' Python API calls.

    The benchmark arms have only plain revolute joints, so the chain's q is pinocchio's q.
    """
    import pinocchio as pin

    model = pin.buildModelFromUrdf(str(chain.urdf_path))
    assert model.nq == model.nv == chain.dof, "the benchmark arms have only plain revolute joints"
    return model, model.createData(), model.getFrameId(chain.tip_link)


def per_call(fn: Callable[[], object], calls: int = 200, blocks: int = 50) -> tuple[float, float]:
    """(median wall s, median CPU s) per call of ``fn``."""
    return float(np.median(time_per_call(fn, calls, blocks))), float(np.median(cpu_per_call(fn, calls, blocks)))


def interleaved(fns: list, n: int, block: int = 50, warmup: int = 0) -> list[tuple[np.ndarray, int]]:
    """Time ``n`` successful calls of each function (each returns True on success), alternating
    blocks of ``block`` calls so that every contender sees the same machine load, after ``warmup``
    untimed calls each. Returns (durations s, failed calls) per function."""
    times: list[list[float]] = [[] for _ in fns]
    fails = [0] * len(fns)
    for fn in fns:
        for _ in range(warmup):
            fn()
    while min(len(t) for t in times) < n:
        for k, fn in enumerate(fns):
            for _ in range(block):
                t0 = time.perf_counter()
                ok = fn()
                dt = time.perf_counter() - t0
                if ok:
                    times[k].append(dt)
                else:
                    fails[k] += 1
    return [(np.array(t[:n]), f) for t, f in zip(times, fails, strict=True)]


def erd_urdf(relpath: str) -> Path:
    """A robot file of the installed example-robot-data distribution (``ur_description/urdf/ur10_robot.urdf``)."""
    from importlib import metadata

    for f in metadata.files("example-robot-data") or []:
        if str(f).endswith("example-robot-data/robots/" + relpath):
            return Path(f.locate())
    raise FileNotFoundError(f"example-robot-data's {relpath} is not installed (pip install example-robot-data)")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (pasted as is into the README)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f}"
