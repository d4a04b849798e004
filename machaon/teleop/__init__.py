"""Layer 5: teleoperation over a real or an emulated (5G, LTE, Wi-Fi, satellite) network.

- ``profiles``: link models with cited figures (``LinkProfile``, ``LinkModel``, ``load_profiles``).
- ``channel``: the same models in simulated time (``SimChannel``, ``SimLink``).
- ``relay``: ``UdpRelay``, the latency-injection relay (``machaon teleop netem``).
- ``messages`` / ``session`` / ``endpoint``: the versioned binary protocol, authenticated
  encryption with per-session keys, replay window, drop counters, link-health statistics.
- ``keys``: pre-shared key files (0600, refused when readable by others).
- ``mapping`` / ``controller`` / ``server``: operator commands -> robot motion (clutch, scaling,
  tremor filter, workspace fixture, speed limits, command-gap HOLD, latched E-stop) and the
  ``RobotServer`` that runs it on any ``Backend``.
- ``client`` / ``console`` / ``script`` / ``replay``: the operator side (terminal UI, scripted runs).
- ``sweep``: one scripted task through every profile in simulation.

This package imports from layers 0-3 only (``machaon.control``, ``machaon.kinematics``,
``machaon.robot``); the backend (simulated or hardware) is always handed in, chosen by the CLI.
"""

import importlib

# Imported on first use (PEP 562): the server's network process (``netproc``) imports this package
# and must start fast, without SciPy (``profiles``) or the relay's compiled scheduler.
_LAZY = {
    "SimChannel": "channel", "SimLink": "channel", "LinkModel": "profiles", "LinkProfile": "profiles",
    "ProfileError": "profiles", "get_profile": "profiles", "load_profiles": "profiles", "UdpRelay": "relay",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"machaon.teleop.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'machaon.teleop' has no attribute {name!r}")


__all__ = [
    "LinkModel",
    "LinkProfile",
    "ProfileError",
    "SimChannel",
    "SimLink",
    "UdpRelay",
    "get_profile",
    "load_profiles",
]
