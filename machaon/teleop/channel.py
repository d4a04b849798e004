"""In-process link in simulated time: the same ``LinkModel`` as the UDP relay, no sockets.

Used by ``machaon teleop sweep`` and by tests that need exact reproducibility: the caller owns
the clock (simulation time in seconds) and asks which packets have arrived by time ``t``.
"""

from __future__ import annotations

import heapq
import itertools

from machaon.teleop.profiles import LinkCounters, LinkModel, LinkProfile


class SimChannel:
    """One direction of a link in simulated time.

    ``send(t, payload)`` offers a packet at time ``t`` (s, non-decreasing);
    ``receive(t)`` returns the payloads whose release time is ``<= t``, in release order.
    """

    def __init__(self, profile: LinkProfile, seed: int = 0) -> None:
        self.model = LinkModel(profile, seed)
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()

    def send(self, t: float, payload: bytes) -> None:
        for t_rel in self.model.transmit(t, len(payload)):
            heapq.heappush(self._heap, (t_rel, next(self._seq), payload))

    def receive(self, t: float) -> list[bytes]:
        out = []
        while self._heap and self._heap[0][0] <= t:
            out.append(heapq.heappop(self._heap)[2])
        return out

    @property
    def in_flight(self) -> int:
        return len(self._heap)

    @property
    def counters(self) -> LinkCounters:
        return self.model.counters


class SimLink:
    """Both directions of a link: ``up`` (operator -> robot) and ``down`` (robot -> operator),
    independently seeded from one seed."""

    def __init__(self, profile: LinkProfile, seed: int = 0, down_profile: LinkProfile | None = None) -> None:
        self.up = SimChannel(profile, seed)
        self.down = SimChannel(down_profile or profile, seed + 1)
