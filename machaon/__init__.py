"""Machaon: control and simulation for surgical and rehabilitation robots.

Layers (imports point down only): kinematics -> control -> robot -> sim / hardware ->
ortho / exo / teleop -> cli. See DESIGN.md.
"""

__version__ = "0.1.0"
