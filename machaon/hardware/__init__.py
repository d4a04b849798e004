"""Layer 4: serial actuators. Dynamixel Protocol 2.0 codec, bus driver over pyserial, X-series
control tables, the ``ActuatorBackend``, the servo-chain emulator on a pseudo-terminal, and the
bench suite.

- ``machaon.hardware.protocol``: packets, CRC-16, byte stuffing, stream parser, error types.
- ``machaon.hardware.control_table``: models (XM430-W350, XM540-W270, XH430-W350, XL430-W250) and
  ``Units``, the one place SI values become ticks, 0.229 rpm and 2.69 mA units.
- ``machaon.hardware.dynamixel.Bus``: the host driver.
- ``machaon.hardware.backend.ActuatorBackend``: the ``Backend`` on a servo chain, set up by
  ``machaon.hardware.actuator_config.ActuatorConfig`` (a TOML file or a robot's servo map);
  ``machaon.hardware.motor``: the joints' torque-current curves and friction.
- ``machaon.hardware.identify``: dynamics identification for the bench; ``machaon.hardware.latency``:
  the USB adapter's latency timer.
- ``machaon.hardware.emulator.ChainEmulator``: servos behind a pty; ``machaon.hardware.plant`` what they drive.
- ``machaon.hardware.bench``: the bench test suite.

Imports are lazy so that ``import machaon.hardware`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Bus": "machaon.hardware.dynamixel",
    "ActuatorBackend": "machaon.hardware.backend",
    "ActuatorConfig": "machaon.hardware.actuator_config",
    "JointConfig": "machaon.hardware.actuator_config",
    "ChainEmulator": "machaon.hardware.emulator",
    "Faults": "machaon.hardware.emulator",
    "Plant": "machaon.hardware.plant",
    "RigidLoadPlant": "machaon.hardware.plant",
    "BusProtocolError": "machaon.hardware.protocol",
    "ProtocolError": "machaon.hardware.protocol",  # old name of BusProtocolError, for one release
    "CommunicationTimeout": "machaon.hardware.protocol",
    "CRCError": "machaon.hardware.protocol",
    "BusFrameError": "machaon.hardware.protocol",
    "FrameError": "machaon.hardware.protocol",  # old name of BusFrameError, for one release
    "HardwareErrorStatus": "machaon.hardware.protocol",
    "PortError": "machaon.hardware.protocol",
    "StatusError": "machaon.hardware.protocol",
    "MODELS": "machaon.hardware.control_table",
    "Units": "machaon.hardware.control_table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'machaon.hardware' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
