"""Helpers shared by the simulation tests."""

from __future__ import annotations

from machaon.kinematics import Chain, Dynamics


def chain_and_dynamics(desc, tool: str | None):
    """Chain to the TCP and Dynamics with the tool as payload, from the description."""
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    if tool is None:
        return chain, Dynamics(chain)
    t = desc.tool(tool)
    chain = chain.with_tool(t.T_flange_tcp)
    return chain, Dynamics(chain, payload_mass=t.mass, payload_com=t.com_tcp)
