# Fast builders of the shared frozen records (machaon.types), for compiled per-cycle code.
# Same objects as the dataclass constructors give (see _records.pyx); prior validation is assumed.

cdef object joint_state_c(object t, object q, object dq, object tau, object wrench_tool, object faults, object ok)
cdef object torque_command_c(object tau, object info)
