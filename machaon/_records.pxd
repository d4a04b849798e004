# Fast builders of the shared frozen records (machaon.types), for compiled per-cycle code.
# Same objects as the dataclass constructors give (see _records.pyx); prior validation is assumed.

cdef object joint_state_c(object t, object q, object dq, object tau, object wrench_tool, object faults, object ok)
cdef object torque_command_c(object tau, object info)


from cpython.exc cimport PyErr_Clear
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF

cdef extern from "Python.h":
    PyObject* _getattr_ptr "PyObject_GetAttr" (object o, object name)


cdef inline object attr_or_none(object o, str name):
    """``o.name``, or None where the object lacks it (no exception: a per-cycle fast path then declines)."""
    cdef PyObject* v = _getattr_ptr(o, name)
    if v == NULL:
        PyErr_Clear()
        return None
    r = <object>v     # a second reference ...
    Py_DECREF(r)      # ... back to the one PyObject_GetAttr returned, now held by r
    return r
