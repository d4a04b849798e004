"""``Navigator``: the camera-rate estimate of where the plan is in the robot's base frame.

``T_base_image = T_base_cam @ T_cam_ref @ T_ref_image``, from the tracked reference plate, the
hand-eye calibration ``T_base_cam`` and the registration ``T_ref_image``. The tracked tool plate
closes the loop: the pose of the drill tip seen by the camera is compared with the robot's
forward kinematics and the (low-passed) discrepancy corrects the target, so hand-eye calibration
errors do not reach the bone. The reference pose is filtered with an alpha-beta (constant-velocity)
filter, which also gives the patient's velocity for feed-forward and bump detection. Tracking
dropouts are data: the navigator keeps its prediction and reports ``valid=False`` after
``max_missed`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from machaon._validate import transform


@dataclass
class Navigator:
    """Camera-rate estimate of ``T_base_image`` (see module docstring).

    ``T_flange_plate``: the tool plate in the flange frame (from the hand-eye calibration);
    ``T_flange_tip``: the drill tip in the flange frame (the controlled tool frame).
    ``alpha``/``beta``: alpha-beta filter gains for the reference pose; ``correction_alpha``: the
    exponential-average gain of the tool-plate correction per frame.
    """

    T_base_cam: np.ndarray
    T_ref_image: np.ndarray
    T_flange_plate: np.ndarray
    T_flange_tip: np.ndarray
    rate_hz: float
    alpha: float = 0.25
    beta: float = 0.03
    correction_alpha: float = 0.1
    max_missed: int = 5
    T_base_image: np.ndarray | None = field(init=False, default=None)
    v_image: np.ndarray = field(init=False, default_factory=lambda: np.zeros(3))
    raw_speed: float = field(init=False, default=0.0)
    innovation: float = field(init=False, default=0.0)
    jump_window: int = 3
    _innov: list = field(init=False, default_factory=list)
    missed: int = field(init=False, default=0)
    correction: np.ndarray = field(init=False, default_factory=lambda: np.eye(4))
    _p: np.ndarray | None = field(init=False, default=None)
    _R: np.ndarray | None = field(init=False, default=None)
    _p_raw_prev: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for name in ("T_base_cam", "T_ref_image", "T_flange_plate", "T_flange_tip"):
            setattr(self, name, transform(name, getattr(self, name)).copy())
        if not self.rate_hz > 0:
            raise ValueError("rate_hz: must be > 0")

    @property
    def valid(self) -> bool:
        return self.T_base_image is not None and self.missed <= self.max_missed

    def update(
        self, T_cam_ref: np.ndarray | None, T_cam_toolplate: np.ndarray | None, T_base_flange: np.ndarray
    ) -> bool:
        """One camera frame. ``None`` for a plate not seen. Returns ``valid``."""
        dt = 1.0 / self.rate_hz
        if T_cam_toolplate is not None:
            # where the camera sees the drill tip vs where the robot's kinematics puts it
            T_base_tip_cam = self.T_base_cam @ T_cam_toolplate @ np.linalg.inv(self.T_flange_plate) @ self.T_flange_tip
            T_base_tip_fk = T_base_flange @ self.T_flange_tip
            D = T_base_tip_fk @ np.linalg.inv(T_base_tip_cam)
            a = self.correction_alpha
            C = self.correction
            rv = Rotation.from_matrix(D[:3, :3] @ C[:3, :3].T).as_rotvec()
            C_new = np.eye(4)
            C_new[:3, :3] = Rotation.from_rotvec(a * rv).as_matrix() @ C[:3, :3]
            C_new[:3, 3] = C[:3, 3] + a * (D[:3, 3] - C[:3, 3])
            self.correction = C_new
        if T_cam_ref is None:
            self.missed += 1
            if self._p is not None:
                self._p = self._p + self.v_image * dt  # predict
                self._compose()
            return self.valid
        self.missed = 0
        # the filter runs on the uncorrected estimate so that its innovation measures patient motion
        # only; the tool-plate correction is applied to its output
        T_meas = self.T_base_cam @ T_cam_ref @ self.T_ref_image
        p_meas, R_meas = T_meas[:3, 3], T_meas[:3, :3]
        if self._p_raw_prev is not None:
            self.raw_speed = float(np.linalg.norm(p_meas - self._p_raw_prev) / dt)
        self._p_raw_prev = p_meas.copy()
        if self._p is None:
            self._p, self._R = p_meas.copy(), R_meas.copy()
        else:
            p_pred = self._p + self.v_image * dt
            r = p_meas - p_pred
            # a bump shows as innovations that agree in direction over a few frames; tracker noise
            # does not, so the mean innovation vector separates the two
            self._innov = (self._innov + [r])[-self.jump_window:]
            self.innovation = float(np.linalg.norm(np.mean(self._innov, axis=0)))
            self._p = p_pred + self.alpha * r
            self.v_image = self.v_image + (self.beta / dt) * r
            rv = Rotation.from_matrix(R_meas @ self._R.T).as_rotvec()
            self._R = Rotation.from_rotvec(self.alpha * rv).as_matrix() @ self._R
        self._compose()
        return True

    def _compose(self) -> None:
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self._R, self._p
        self.T_base_image = self.correction @ T

    @property
    def v_image_corrected(self) -> np.ndarray:
        """Velocity of the image origin in the (corrected) base frame, m/s."""
        return self.correction[:3, :3] @ self.v_image

    def axis_base(self, entry_image: np.ndarray, direction_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The planned axis (entry point, unit direction) in the base frame, from the current estimate."""
        if self.T_base_image is None:
            raise ValueError("navigator: no estimate yet")
        T = self.T_base_image
        return T[:3, :3] @ entry_image + T[:3, 3], T[:3, :3] @ direction_image
