"""Layer 4: the PyBullet simulation backend (``ArmSim``), its scenes, cameras and collision checks.

``ArmSim`` implements ``machaon.robot.backend.Backend``; its ``SimClock`` steps the physics, so the
same ``ControlLoop`` that drives hardware drives the simulation.
"""

from machaon.sim.arm import ArmSim, Contact, SimClock, SimError, SimSnapshot
from machaon.sim.collision import ClosestPoint, CollisionChecker
from machaon.sim.meshes import mesh_arrays, primitive_bone_mesh
from machaon.sim.scene import Camera, Scene, ScenePlate

__all__ = [
    "ArmSim",
    "Camera",
    "ClosestPoint",
    "CollisionChecker",
    "Contact",
    "ScenePlate",
    "Scene",
    "SimClock",
    "SimError",
    "SimSnapshot",
    "mesh_arrays",
    "primitive_bone_mesh",
]
