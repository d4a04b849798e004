"""Robot-guided execution of a planned screw: navigation, axis hold, drilling, motion compensation.

One concept a module (all SI; poses ``T_a_b``; the robot's base frame is ``base``, the CT/plan
frame ``image``, the patient reference plate ``ref``, the tracker camera ``cam``):

- ``patient_motion``: :class:`PatientMotion`, the true motion of the patient in the world
  (breathing, a few mm at ~0.25 Hz, plus sudden :class:`Bump` s), used by the simulation to move
  the bone and the reference plate.
- ``navigator``: :class:`Navigator`, the camera-rate estimate of where the plan is in the robot's
  base frame, corrected by the tracked tool plate.
- ``axis_hold``: :class:`AxisHoldController` (``update(state, t)``, a ``machaon.control.Controller``)
  that holds the drill tip on the planned axis and drills, with :class:`AxisGains` and the
  :class:`Phase` s of a screw (align, drill, paused, stopped, retract).
- ``drill_physics``: :class:`DrillPhysics`, the simulated drill (a physics step hook).
- ``hole``: :class:`HoleSample` and :func:`drilled_path`, the entry and tip actually drilled
  (:class:`DrilledPath`, for ``machaon.ortho.report``).

Bad input (NaN poses, unknown phases) raises ``ValueError``; tracking dropouts are data (the
navigator keeps its prediction and reports ``valid=False`` after ``max_missed`` frames, and the
controller then holds the depth).
"""

from machaon.ortho.execution.axis_hold import AxisGains, AxisHoldController, Phase
from machaon.ortho.execution.drill_physics import DrillPhysics
from machaon.ortho.execution.hole import DrilledPath, HoleSample, drilled_path
from machaon.ortho.execution.navigator import Navigator
from machaon.ortho.execution.patient_motion import Bump, PatientMotion

__all__ = [
    "AxisGains",
    "AxisHoldController",
    "Bump",
    "DrillPhysics",
    "DrilledPath",
    "HoleSample",
    "Navigator",
    "PatientMotion",
    "Phase",
    "drilled_path",
]
