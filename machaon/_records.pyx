# cython: language_level=3
"""Fast builders of the per-cycle records of ``machaon.types`` (``JointState``, ``JointCommand``).

Both are frozen dataclasses whose generated ``__init__`` only stores each field in the instance
dict (``object.__setattr__``); filling that dict directly gives an equal object, same type and
fields, for a fraction of the cost: this is what a 1 kHz backend or controller builds every
cycle. The layout is checked once at import: if a class gains slots, a ``__post_init__`` or other
fields, the builders call its constructor instead. The arguments are not checked (the callers'
own checks come first).
"""

from machaon.types import CommandMode, JointCommand, JointState

cdef object _new = object.__new__
cdef object _TORQUE = CommandMode.TORQUE
cdef object _JointState = JointState
cdef object _JointCommand = JointCommand


cdef bint _plain(cls, tuple fields):
    return (tuple(getattr(cls, "__dataclass_fields__", {})) == fields
            and not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__"))


cdef bint _plain_state = _plain(JointState, ("t", "q", "dq", "tau", "wrench_tool", "faults", "ok"))
cdef bint _plain_command = _plain(JointCommand, ("mode", "tau", "q", "dq", "info"))


cdef object joint_state_c(object t, object q, object dq, object tau, object wrench_tool, object faults, object ok):
    if not _plain_state:
        return _JointState(t, q, dq, tau, wrench_tool, faults, ok)
    st = _new(_JointState)
    d = st.__dict__
    d["t"] = t
    d["q"] = q
    d["dq"] = dq
    d["tau"] = tau
    d["wrench_tool"] = wrench_tool
    d["faults"] = faults
    d["ok"] = ok
    return st


cdef object torque_command_c(object tau, object info):
    if not _plain_command:
        return _JointCommand(_TORQUE, tau=tau, info=info)
    cmd = _new(_JointCommand)
    d = cmd.__dict__
    d["mode"] = _TORQUE
    d["tau"] = tau
    d["q"] = None
    d["dq"] = None
    d["info"] = info
    return cmd


def joint_state(t, q, dq, tau, wrench_tool=None, faults=(), ok=True):
    """``JointState(t, q, dq, tau, wrench_tool, faults, ok)``, built without the dataclass ``__init__``."""
    return joint_state_c(t, q, dq, tau, wrench_tool, faults, ok)


def torque_command(tau, dict info):
    """``JointCommand(CommandMode.TORQUE, tau=tau, info=info)``, built without the dataclass ``__init__``."""
    return torque_command_c(tau, info)
