# cython: language_level=3
"""Fast builders of the per-cycle records of ``machaon.types`` (``JointState``, ``JointCommand``).

Both are frozen dataclasses whose generated ``__init__`` only stores each field with
``object.__setattr__``; doing the same from compiled code (``object.__new__`` then the generic
attribute store, field by field) gives the same object, same type, fields and layout, for a
fraction of the cost: this is what a 1 kHz backend or controller builds every cycle. The layout
is checked once at import: if a class gains slots, a ``__post_init__`` or other fields, the
builders call its constructor instead. The arguments are not checked (the callers' own checks
come first).
"""

from cpython.object cimport PyObject, PyObject_GenericSetAttr, PyTypeObject

from machaon.types import CommandMode, JointCommand, JointState

cdef extern from "Python.h":
    PyTypeObject PyBaseObject_Type
    ctypedef object (*newfunc)(PyTypeObject*, PyObject*, PyObject*)

cdef tuple _EMPTY = ()


cdef inline object _alloc(object cls):
    """``object.__new__(cls)`` without the Python-level call (what a dataclass constructor starts from)."""
    return (<newfunc>PyBaseObject_Type.tp_new)(<PyTypeObject*>cls, <PyObject*>_EMPTY, NULL)

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
    cdef object st = _alloc(_JointState)
    PyObject_GenericSetAttr(st, "t", t)
    PyObject_GenericSetAttr(st, "q", q)
    PyObject_GenericSetAttr(st, "dq", dq)
    PyObject_GenericSetAttr(st, "tau", tau)
    PyObject_GenericSetAttr(st, "wrench_tool", wrench_tool)
    PyObject_GenericSetAttr(st, "faults", faults)
    PyObject_GenericSetAttr(st, "ok", ok)
    return st


cdef object torque_command_c(object tau, object info):
    if not _plain_command:
        return _JointCommand(_TORQUE, tau=tau, info=info)
    cdef object cmd = _alloc(_JointCommand)
    PyObject_GenericSetAttr(cmd, "mode", _TORQUE)
    PyObject_GenericSetAttr(cmd, "tau", tau)
    PyObject_GenericSetAttr(cmd, "q", None)
    PyObject_GenericSetAttr(cmd, "dq", None)
    PyObject_GenericSetAttr(cmd, "info", info)
    return cmd


def joint_state(t, q, dq, tau, wrench_tool=None, faults=(), ok=True):
    """``JointState(t, q, dq, tau, wrench_tool, faults, ok)``, built without the dataclass ``__init__``."""
    return joint_state_c(t, q, dq, tau, wrench_tool, faults, ok)


def torque_command(tau, dict info):
    """``JointCommand(CommandMode.TORQUE, tau=tau, info=info)``, built without the dataclass ``__init__``."""
    return torque_command_c(tau, info)
