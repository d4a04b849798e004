"""Screw / guide-pin trajectories: plan data, plan checks, automatic proposals, JSON files.

A ``ScrewPlan`` is a straight cylinder from ``entry`` (on the bone surface) to ``target`` (the
tip), with a diameter, in the image frame, metres. ``check_plan`` measures the minimum clearance
between the whole screw and the bone surface (which includes the canal wall, the canal being
outside the bone), reports breaches and where they are, and the screw's angles in the vertebra
frame against limits. ``auto_plan`` proposes one screw per pedicle that maximises that minimum
clearance (SciPy Nelder-Mead over entry offset and direction, started on the anatomical axis),
with a length set to a fraction of the bone chord along the trajectory.

Files (``Plan.save``/``Plan.load``) are JSON in millimetres; everything inside is SI.
Bad input (NaN, wrong shapes, unknown level/side, malformed files) raises ``PlanError`` (a
``ValueError``) naming the field.

The package, one concept per module: ``plan`` (the data and its files), ``check`` (clearance,
breach, angles), ``auto`` (the optimiser and ``auto_plan``), ``atlas`` (planning on meshes).
Everything public is importable from ``machaon.ortho.planning`` itself.
"""

from machaon.ortho.planning.atlas import fit_phantom_to_mesh, plan_mesh
from machaon.ortho.planning.auto import auto_plan, optimize_screw
from machaon.ortho.planning.check import (
    PlanCheck,
    PlanLimits,
    check_all,
    check_plan,
    screw_angles,
    screw_clearance,
    segment_distance,
    trajectory_regions,
)
from machaon.ortho.planning.plan import PLAN_FORMAT, STANDARD_DIAMETERS, Plan, PlanError, ScrewPlan

__all__ = [
    "PLAN_FORMAT",
    "STANDARD_DIAMETERS",
    "PlanError",
    "ScrewPlan",
    "Plan",
    "PlanLimits",
    "PlanCheck",
    "check_plan",
    "check_all",
    "screw_clearance",
    "screw_angles",
    "segment_distance",
    "trajectory_regions",
    "optimize_screw",
    "auto_plan",
    "fit_phantom_to_mesh",
    "plan_mesh",
]
