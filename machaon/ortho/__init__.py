"""machaon.ortho: orthopedic path planning and robot-guided execution (layer 5).

Anatomy (``machaon.ortho.anatomy``), planning (``machaon.ortho.planning``) and registration
(``machaon.ortho.registration``) are re-exported here; tracking, approach, drilling and the
procedure runner live in their own modules and are imported from there.
Everything inside is SI (m, rad) in the image frame unless a name says otherwise.
"""

from machaon.ortho.anatomy import (
    SIDES,
    Anatomy,
    AnatomyError,
    BoneModel,
    PedicleAxis,
    Region,
    SpineSegment,
    Vertebra,
    VertebraParams,
    surface_samples,
)
from machaon.ortho.planning import (
    Plan,
    PlanCheck,
    PlanError,
    PlanLimits,
    ScrewPlan,
    auto_plan,
    check_all,
    check_plan,
    optimize_screw,
    plan_mesh,
    trajectory_regions,
)
from machaon.ortho.registration import (
    ICPResult,
    PairedRegistration,
    RegistrationError,
    icp_point_to_plane,
    predicted_tre,
    register_paired,
)
from machaon.ortho.report import ScrewResult, evaluate_screw, make_report, render_pictures, write_report

__all__ = [
    "SIDES",
    "Anatomy",
    "AnatomyError",
    "BoneModel",
    "PedicleAxis",
    "Region",
    "SpineSegment",
    "Vertebra",
    "VertebraParams",
    "surface_samples",
    "Plan",
    "PlanCheck",
    "PlanError",
    "PlanLimits",
    "ScrewPlan",
    "auto_plan",
    "check_all",
    "check_plan",
    "optimize_screw",
    "plan_mesh",
    "ScrewResult",
    "evaluate_screw",
    "make_report",
    "render_pictures",
    "write_report",
    "trajectory_regions",
    "ICPResult",
    "PairedRegistration",
    "RegistrationError",
    "icp_point_to_plane",
    "predicted_tre",
    "register_paired",
]
