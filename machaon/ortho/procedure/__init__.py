"""The whole robot-guided pedicle-screw procedure in simulation.

``run_procedure(ProcedureConfig(...))`` builds an operating room in simulation
(``machaon.sim.operating_room``: table, patient with a multi-level spine phantom from
``machaon.ortho.anatomy``, a ChArUco reference plate on the patient, a tool plate on the drill
guide, a tracking camera) and then, as a navigated robot does:

1. **plan** the screws (``machaon.ortho.planning.auto_plan``, or a plan file);
2. **calibrate** camera to robot: the robot shows its tool plate to the camera in several poses;
   rendered camera images are detected (``machaon.ortho.tracking``) and
   ``calibrate_camera_to_base`` gives ``T_base_cam`` and ``T_flange_plate``;
3. **register** image to patient: anatomical landmarks and posterior surface points are
   digitised with a tracked pointer relative to the reference plate (tracker noise model), then
   paired-point registration and point-to-plane ICP (``machaon.ortho.registration``);
4. per screw: **approach** from the current pose to a stand-off above the entry along a
   collision-free joint path (``machaon.ortho.approach`` over ``machaon.sim.CollisionChecker``),
   the goal from ``Chain.ik_axis``; **align and hold** on the axis under Cartesian impedance with
   motion compensation at camera rate; **drill** against the bone's thrust with the depth stop
   and breach detection; a patient bump pauses drilling; **retract**;
5. **report**: per-screw errors against the plan measured on the hole actually drilled in the
   true bone frame (``machaon.ortho.report``), registration FRE/TRE, times, and pictures.

World frame = the robot's base frame (the arm stands at the world origin). The image frame of
the phantom is LPS (x left, y posterior, z cranial); the patient lies prone, so image y points
up in the world and image z along the table.

The package, one step per module: ``config`` (settings and results), ``world`` (the room's
layout and the robot's software), ``calibration`` (hand-eye), ``patient_registration``
(landmarks, surface points, ICP), ``screw`` (approach, align, drill, retract), ``runner``
(``run_procedure``, the report). The public names are importable from here.
"""

from machaon.ortho.procedure.config import ProcedureConfig, ProcedureError, ProcedureResult, ScrewRun, ScrewTrace
from machaon.ortho.procedure.patient_registration import landmarks
from machaon.ortho.procedure.runner import print_report, run_procedure
from machaon.ortho.procedure.world import R_WORLD_IMAGE, ProcedureWorld

__all__ = [
    "R_WORLD_IMAGE",
    "ProcedureConfig",
    "ProcedureError",
    "ProcedureResult",
    "ProcedureWorld",
    "ScrewRun",
    "ScrewTrace",
    "landmarks",
    "print_report",
    "run_procedure",
]
