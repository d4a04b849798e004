"""The exception tree: one root, :class:`MachaonError`, and one documented base per layer.

Every exception class in the package derives from :class:`MachaonError`, so a caller (the CLI
above all, which catches it in one place) can catch everything Machaon raises on purpose and
tell it apart from a bug. Each layer's errors derive from that layer's base here, so a caller
can also catch "anything the hardware layer raised" (:class:`HardwareError`). Classes that
callers also catch as a built-in keep that built-in as a second base (a bad argument is a
``MachaonError`` and a ``ValueError``; a simulator that cannot start is a ``RuntimeError``).

The tree (layer bases here, leaves in their modules)::

    MachaonError
      InputError (ValueError)          _validate: a NaN, an Inf, a wrong shape, a bad transform
      UsageError (ValueError)          cli: bad command-line input; the command exits 2
      KinematicsError                  kinematics/
      ControlError                     control/
      RobotError                       robot/: DescriptionError, RunLogError, HomingError, CrtkError (RuntimeError)
      SimError (RuntimeError)          sim/: ScenarioError, SimAppError
      HardwareError                    hardware/: BusProtocolError > BusFrameError > CRCError,
                                       CommunicationTimeout, PortError, StatusError,
                                       PortNotFound (FileNotFoundError)
      BridgeError                      bridges/: BridgeSetupError (ValueError)
      OrthoError                       ortho/: AnatomyError, PlanError, RegistrationError,
                                       TrackingError, PlanningFailed, ProcedureError, ReportError
      ExoError                         exo/: RecordingError, BoardFrameError, AcquisitionError
      TeleopError                      teleop/: LinkProtocolError > MalformedError, BoundsError,
                                       AuthError, ReplayError, StaleError, SessionError;
                                       ConnectError, ProfileError, ScriptError, KeyFileError
      TrialError                       trials/: StudyError (ValueError), ClusterError (RuntimeError)

Device faults met inside the control loop are never exceptions: the loop sees them as
:class:`machaon.types.DeviceFault` data in the state (house rule 6). These classes are for
callers: bad input, a device that cannot be opened, a plan or a calibration that failed.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ControlError",
    "ExoError",
    "HardwareError",
    "InputError",
    "KinematicsError",
    "MachaonError",
    "OrthoError",
    "RobotError",
    "SimError",
    "TeleopError",
    "TrialError",
    "UsageError",
]


class MachaonError(Exception):
    """Base of every exception Machaon raises on purpose (bad input, device faults, failed plans)."""


class InputError(MachaonError, ValueError):
    """An argument failed a shared input check (``machaon._validate``): the message names it."""


class UsageError(MachaonError, ValueError):
    """Bad command-line input, or a file or port it names: the ``machaon`` command exits 2."""


class KinematicsError(MachaonError):
    """Base of the kinematics layer's errors (``machaon.kinematics``)."""


class ControlError(MachaonError):
    """Base of the control layer's errors (``machaon.control``)."""


class RobotError(MachaonError):
    """Base of the robot layer's errors (``machaon.robot``): descriptions, run logs, homing."""


class SimError(MachaonError, RuntimeError):
    """Base of the simulation layer's errors (``machaon.sim``).

    Raised as itself when the simulator cannot start (no display for a GUI, PyBullet refused a
    model) or is used after ``close()``.
    """


class HardwareError(MachaonError):
    """Base of the hardware layer's errors (``machaon.hardware``): the bus, its packets, its ports.

    Not to be confused with the servos' Hardware Error Status register, whose bits are
    ``machaon.hardware.protocol.HardwareErrorStatus``.
    """


class BridgeError(MachaonError):
    """Base of the bridges' errors (``machaon.bridges``)."""


class OrthoError(MachaonError):
    """Base of the orthopedic application's errors (``machaon.ortho``)."""


class ExoError(MachaonError):
    """Base of the exoskeleton application's errors (``machaon.exo``)."""


class TeleopError(MachaonError):
    """Base of the teleoperation application's errors (``machaon.teleop``)."""


class TrialError(MachaonError):
    """Base of the studies' errors (``machaon.trials``)."""
