"""Layer 5: EMG/IMU-driven exoskeleton assist.

- ``emg``: SciPy EMG chain, offline and streaming (band-pass, mains notches, envelope, MVC
  normalisation, onset detection, channel-quality checks).
- ``imu``: ``ahrs`` orientation, segment/joint angles, gait events, adaptive-oscillator gait phase,
  gait timing and symmetry index.
- ``frames`` / ``acquisition``: the acquisition board's COBS + CRC-16 frame format, the pyserial
  reader and the board emulator on a pty; ``recording``: CSV and C3D (ezc3d) files and replay.
- ``reference``: the normative reference gait; ``controller``: the assist-as-needed controller;
  ``walk``: closed-loop walks on a simulated wearer; ``metrics`` / ``report``: gait metrics,
  report.json and plots; ``replay``: what the controller would have commanded on a recording.
"""
