"""The sensor data the exo controller consumes: a batch of EMG and IMU samples.

Any sensor source (the serial board, a replayed recording, the leg simulation) hands out
``SensorBatch`` objects from ``poll()``. The type lives with the shared data types in
``machaon.types`` (so the leg simulation in layer 4 can produce it) and is re-exported here.
"""

from __future__ import annotations

from typing import Protocol

from machaon.types import SensorBatch

__all__ = ["SensorBatch", "SensorSource"]


class SensorSource(Protocol):
    """Anything with ``poll()`` returning a ``SensorBatch``."""

    def poll(self) -> SensorBatch: ...
