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

from machaon.teleop.channel import SimChannel, SimLink
from machaon.teleop.profiles import LinkModel, LinkProfile, ProfileError, get_profile, load_profiles
from machaon.teleop.relay import UdpRelay

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
