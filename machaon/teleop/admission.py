"""Admission control for the teleop server's handshakes: rate meters and per-source token buckets.

All times ``t`` are the caller's clock in seconds (monotonic, or simulated). Every table here is
bounded, so a flood from many (spoofed) sources costs memory only up to ``max_sources`` entries.
"""

from __future__ import annotations

import collections
import math


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``allow(t)`` takes one if there is one."""

    def __init__(self, rate: float, burst: float, t: float = -math.inf) -> None:
        if not (rate > 0 and burst >= 1 and math.isfinite(rate) and math.isfinite(burst)):
            raise ValueError(f"TokenBucket: need rate > 0 and burst >= 1, got {rate!r}, {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._t = t

    def allow(self, t: float) -> bool:
        if t > self._t:
            self._tokens = min(self.burst, self._tokens + (t - self._t) * self.rate) if math.isfinite(self._t) \
                else self.burst
            self._t = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class SourceLimiter:
    """One ``TokenBucket(rate, burst)`` per source, for at most ``max_sources`` sources (the least
    recently seen is forgotten first; a forgotten source starts again with a full bucket)."""

    def __init__(self, rate: float, burst: float, max_sources: int = 4096) -> None:
        TokenBucket(rate, burst)  # validates
        self.rate, self.burst, self.max_sources = float(rate), float(burst), int(max_sources)
        self._buckets: collections.OrderedDict[object, TokenBucket] = collections.OrderedDict()

    def allow(self, source: object, t: float) -> bool:
        b = self._buckets.get(source)
        if b is None:
            b = self._buckets[source] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
        return b.allow(t)

    def __len__(self) -> int:
        return len(self._buckets)


class RateMeter:
    """Events per second over the last ``window_s`` (two fixed windows, linearly blended)."""

    def __init__(self, window_s: float = 1.0) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s: must be positive, got {window_s!r}")
        self.window_s = float(window_s)
        self._start = -math.inf
        self._cur = 0
        self._prev = 0

    def _roll(self, t: float) -> None:
        if t - self._start >= 2 * self.window_s:
            self._start, self._cur, self._prev = t, 0, 0
        elif t - self._start >= self.window_s:
            self._start, self._prev, self._cur = self._start + self.window_s, self._cur, 0

    def hit(self, t: float) -> float:
        """Count one event at ``t``; returns the rate including it."""
        self._roll(t)
        self._cur += 1
        return self.rate(t)

    def rate(self, t: float) -> float:
        self._roll(t)
        frac = min(1.0, max(0.0, (t - self._start) / self.window_s))
        return (self._prev * (1.0 - frac) + self._cur) / self.window_s
