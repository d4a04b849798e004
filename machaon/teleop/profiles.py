"""Network link profiles: one-way delay distribution, Gilbert-Elliott loss, reordering,
duplication, a bandwidth bottleneck and outages, with the sources of their figures.

A ``LinkProfile`` is data (frozen). A ``LinkModel`` is the seeded, stateful sampler that turns a
stream of packets (send time, size) into release times; the UDP relay and the in-process
channel both use it, so simulated and real experiments see the same link.

The built-in profiles live in ``profiles.toml`` beside this module, each with its sources
in comments (3GPP TR 38.913 / TS 22.261 for URLLC, published 5G telesurgery measurements, LTE,
Wi-Fi and satellite studies). Users add their own in a TOML file of the same shape
(``load_profiles(path)``); milliseconds in the file, seconds inside (``_from_toml`` is the one
place that converts).

Loss model (Gilbert 1960, Elliott 1963): a two-state Markov chain per packet. In the Bad state
every packet is lost, in the Good state none. With stationary loss ``L`` and mean burst length
``B`` packets: P(Bad->Good) = r = 1/B and P(Good->Bad) = p = L r / (1 - L). ``B <= 1`` means
independent (Bernoulli) losses.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import stats

from machaon.errors import TeleopError

_DISTRIBUTIONS = ("gamma", "lognormal", "normal")


class ProfileError(TeleopError, ValueError):
    """A link profile is malformed (unknown field, out-of-range value, unknown name)."""


@dataclass(frozen=True)
class LinkProfile:
    """One direction of a network link. SI units: seconds, bit/s; probabilities as fractions.

    ``delay_s`` is the mean one-way delay, ``jitter_s`` its standard deviation, ``min_delay_s``
    its floor. ``rate_bps`` 0 means no bottleneck. ``outage_every_s`` 0 means no outages.
    """

    name: str
    delay_s: float
    jitter_s: float = 0.0
    min_delay_s: float = 0.0
    distribution: str = "gamma"
    loss: float = 0.0
    loss_burst: float = 1.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_s: float = 0.0
    rate_bps: float = 0.0
    queue_s: float = 0.1
    outage_every_s: float = 0.0
    outage_s: float = 0.0
    outage_periodic: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ProfileError(f"profile {self.name!r}: {f.name} must be finite, got {v}")
            if isinstance(v, float) and v < 0:
                raise ProfileError(f"profile {self.name!r}: {f.name} must be >= 0, got {v}")
        for f in ("loss", "duplicate", "reorder"):
            if getattr(self, f) >= 1.0:
                raise ProfileError(f"profile {self.name!r}: {f} must be < 1, got {getattr(self, f)}")
        if self.distribution not in _DISTRIBUTIONS:
            raise ProfileError(
                f"profile {self.name!r}: distribution must be one of {_DISTRIBUTIONS}, "
                f"got {self.distribution!r}"
            )
        if self.min_delay_s > self.delay_s:
            raise ProfileError(f"profile {self.name!r}: min_delay_ms exceeds delay_ms")
        if self.jitter_s > 0 and self.distribution != "normal" and self.delay_s <= self.min_delay_s:
            raise ProfileError(
                f"profile {self.name!r}: a {self.distribution} delay with jitter "
                "needs delay_ms > min_delay_ms"
            )

    # --- derived models -------------------------------------------------------------------
    def delay_distribution(self) -> stats.rv_continuous | None:
        """The one-way delay distribution (seconds) as a frozen SciPy distribution, or None when
        the delay is constant (``jitter_s == 0``)."""
        if self.jitter_s == 0.0:
            return None
        if self.distribution == "normal":
            a = (self.min_delay_s - self.delay_s) / self.jitter_s
            return stats.truncnorm(a, np.inf, loc=self.delay_s, scale=self.jitter_s)
        m = self.delay_s - self.min_delay_s  # mean of the excess over the floor
        s = self.jitter_s
        if self.distribution == "gamma":
            return stats.gamma((m / s) ** 2, loc=self.min_delay_s, scale=s * s / m)
        sigma2 = math.log1p((s / m) ** 2)
        return stats.lognorm(math.sqrt(sigma2), loc=self.min_delay_s, scale=m * math.exp(-sigma2 / 2))

    def gilbert_elliott(self) -> tuple[float, float]:
        """(p, r): P(Good->Bad) and P(Bad->Good) per packet of the loss chain."""
        if self.loss == 0.0:
            return 0.0, 1.0
        if self.loss_burst <= 1.0:  # independent losses: the next state does not depend on this one
            return self.loss, 1.0 - self.loss
        r = 1.0 / self.loss_burst
        return self.loss * r / (1.0 - self.loss), r

    def loss_confidence_interval(self, n_packets: int, z: float = 3.0) -> tuple[float, float]:
        """Interval that the observed loss fraction of ``n_packets`` falls in with ~z-sigma
        confidence, accounting for the burst correlation of the Gilbert-Elliott chain
        (variance of a two-state Markov chain's mean: L(1-L)/n (1+l)/(1-l), l = 1-p-r)."""
        p, r = self.gilbert_elliott()
        lam = 1.0 - p - r
        var = self.loss * (1 - self.loss) / n_packets * (1 + lam) / max(1 - lam, 1e-12)
        half = z * math.sqrt(var)
        return max(0.0, self.loss - half), min(1.0, self.loss + half)

    def with_overrides(
        self, *, delay_ms: float | None = None, jitter_ms: float | None = None, loss: float | None = None
    ) -> LinkProfile:
        """A copy with the mean delay, jitter or loss rate replaced (command-line overrides).

        A new mean delay keeps the gap between mean and floor (so the shape is unchanged); a new
        loss keeps the burst length. Raises ``ProfileError`` for out-of-range values.
        """
        changes: dict = {}
        if delay_ms is not None:
            new = delay_ms * 1e-3
            gap = self.delay_s - self.min_delay_s
            changes.update(delay_s=new, min_delay_s=max(0.0, new - gap))
            if new - changes["min_delay_s"] <= 0 and (jitter_ms or self.jitter_s) > 0:
                changes["min_delay_s"] = 0.0
        if jitter_ms is not None:
            changes["jitter_s"] = jitter_ms * 1e-3
        if loss is not None:
            changes["loss"] = float(loss)
        try:
            return dataclasses.replace(self, **changes)
        except ProfileError:
            raise
        except (TypeError, ValueError) as exc:
            raise ProfileError(str(exc)) from None


# --- TOML (the one place where ms/Mbit/s become SI) -----------------------------------------
_TOML_FIELDS = {
    "description": ("description", 1.0),
    "delay_ms": ("delay_s", 1e-3),
    "jitter_ms": ("jitter_s", 1e-3),
    "min_delay_ms": ("min_delay_s", 1e-3),
    "distribution": ("distribution", 1.0),
    "loss": ("loss", 1.0),
    "loss_burst": ("loss_burst", 1.0),
    "duplicate": ("duplicate", 1.0),
    "reorder": ("reorder", 1.0),
    "reorder_ms": ("reorder_s", 1e-3),
    "rate_mbps": ("rate_bps", 1e6),
    "queue_ms": ("queue_s", 1e-3),
    "outage_every_s": ("outage_every_s", 1.0),
    "outage_ms": ("outage_s", 1e-3),
    "outage_periodic": ("outage_periodic", 1.0),
}


def _from_toml(name: str, table: dict) -> LinkProfile:
    if "delay_ms" not in table:
        raise ProfileError(f"profile {name!r}: delay_ms is required")
    kwargs: dict = {"name": name}
    for key, value in table.items():
        if key not in _TOML_FIELDS:
            raise ProfileError(f"profile {name!r}: unknown field {key!r}")
        field, scale = _TOML_FIELDS[key]
        if isinstance(value, bool) or isinstance(value, str):
            kwargs[field] = value
        elif isinstance(value, int | float):
            kwargs[field] = float(value) * scale
        else:
            raise ProfileError(f"profile {name!r}: {key} has unsupported type {type(value).__name__}")
    try:
        return LinkProfile(**kwargs)
    except TypeError as exc:
        raise ProfileError(f"profile {name!r}: {exc}") from None


def load_profiles(path: str | Path | None = None) -> dict[str, LinkProfile]:
    """Profiles by name: the built-in ones, plus (overriding by name) those in ``path``.

    Raises ``ProfileError`` for a malformed file or profile, ``FileNotFoundError`` if ``path``
    does not exist.
    """
    text = resources.files("machaon.teleop").joinpath("profiles.toml").read_text(encoding="utf-8")
    tables = dict(tomllib.loads(text))
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: {exc}") from None
        tables.update(user)
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ProfileError(f"top-level key {name!r} is not a [profile] table")
        out[name] = _from_toml(name, table)
    return out


def get_profile(name: str, path: str | Path | None = None) -> LinkProfile:
    """One profile by name (built-in or from ``path``); ``ProfileError`` lists the known names."""
    profiles = load_profiles(path)
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown link profile {name!r}; known: {', '.join(sorted(profiles))}") from None


# --- the sampler ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkCounters:
    """What a ``LinkModel`` did to the packets offered to it so far."""

    offered: int = 0
    delivered: int = 0
    lost_random: int = 0
    lost_outage: int = 0
    lost_queue: int = 0
    duplicated: int = 0
    reordered: int = 0

    @property
    def lost(self) -> int:
        return self.lost_random + self.lost_outage + self.lost_queue


class LinkModel:
    """Seeded sampler of one link direction: ``transmit(t_send, size)`` -> release times.

    Times are seconds on any clock (wall or simulated) as long as ``t_send`` never decreases.
    Order per packet: outage (lost if sent during one), Gilbert-Elliott loss, bottleneck queue
    (tail-drop beyond ``queue_s``), random delay, reordering hold-back, duplication. The same
    seed and the same sequence of calls give the same release times.
    """

    _BLOCK = 1024

    def __init__(self, profile: LinkProfile, seed: int = 0) -> None:
        self.profile = profile
        self._rng = np.random.default_rng(seed)
        self._dist = profile.delay_distribution()
        self._delays = np.empty(0)
        self._k = 0
        self._p, self._r = profile.gilbert_elliott()
        # Start the chain in its stationary distribution.
        self._bad = bool(self._rng.random() < (self._p / (self._p + self._r) if self._p > 0 else 0.0))
        self._link_free = -math.inf
        self._outage_start = math.inf
        self._outage_origin: float | None = None
        self._c = dict.fromkeys(
            ("offered", "delivered", "lost_random", "lost_outage", "lost_queue", "duplicated", "reordered"), 0
        )

    @property
    def counters(self) -> LinkCounters:
        return LinkCounters(**self._c)

    def sample_delay(self) -> float:
        """One one-way delay (s) from the profile's distribution."""
        if self._dist is None:
            return self.profile.delay_s
        if self._k >= self._delays.size:
            draw = self._dist.rvs(size=self._BLOCK, random_state=self._rng)
            self._delays = np.asarray(draw, dtype=np.float64)
            self._k = 0
        d = float(self._delays[self._k])
        self._k += 1
        return d

    def _in_outage(self, t: float) -> bool:
        pr = self.profile
        if pr.outage_every_s <= 0 or pr.outage_s <= 0:
            return False
        if self._outage_origin is None:
            self._outage_origin = t
            self._outage_start = t + self._next_interval()
        while t >= self._outage_start + pr.outage_s:
            self._outage_start += pr.outage_s + self._next_interval()
        return t >= self._outage_start

    def _next_interval(self) -> float:
        pr = self.profile
        if pr.outage_periodic:
            return max(pr.outage_every_s - pr.outage_s, 0.0)
        return float(self._rng.exponential(pr.outage_every_s))

    def transmit(self, t_send: float, size_bytes: int = 64) -> list[float]:
        """Release times (s, sorted; empty if lost, two if duplicated) of a packet sent at ``t_send``."""
        c = self._c
        pr = self.profile
        c["offered"] += 1
        if self._in_outage(t_send):
            c["lost_outage"] += 1
            return []
        # Gilbert-Elliott: the state decides this packet, then the chain steps.
        lost = self._bad
        u = self._rng.random()
        self._bad = (u >= self._r) if self._bad else (u < self._p)
        if lost:
            c["lost_random"] += 1
            return []
        t_depart = t_send
        if pr.rate_bps > 0:
            start = max(t_send, self._link_free)
            if start - t_send > pr.queue_s:
                c["lost_queue"] += 1
                return []
            self._link_free = start + size_bytes * 8.0 / pr.rate_bps
            t_depart = self._link_free
        release = t_depart + self.sample_delay()
        if pr.reorder > 0 and self._rng.random() < pr.reorder:
            release += pr.reorder_s
            c["reordered"] += 1
        out = [release]
        if pr.duplicate > 0 and self._rng.random() < pr.duplicate:
            out.append(t_depart + self.sample_delay())
            out.sort()
            c["duplicated"] += 1
        c["delivered"] += 1
        return out
