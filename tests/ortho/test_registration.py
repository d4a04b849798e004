"""Registration: paired-point (Umeyama), FRE/TRE statistics against the phantom, point-to-plane ICP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from machaon.ortho.anatomy import Vertebra, surface_samples
from machaon.ortho.planning import auto_plan
from machaon.ortho.registration import (
    RegistrationError,
    apply_transform,
    estimate_fle,
    expected_fre,
    icp_point_to_plane,
    predicted_tre,
    register_paired,
    target_registration_error,
)

MM = 1e-3


def _pose(rotvec: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


@pytest.fixture(scope="module")
def l3() -> Vertebra:
    return Vertebra(level="L3")


@pytest.fixture(scope="module")
def targets(l3: Vertebra) -> np.ndarray:
    """Planned entry and tip points of both L3 screws (image frame)."""
    plan = auto_plan(l3)
    return np.array([p for s in plan for p in (s.entry, s.target)])


def _fiducials(l3: Vertebra) -> np.ndarray:
    """Six landmarks a surgeon can touch on the exposed posterior elements (image frame)."""
    ids = np.array(
        [
            [0.0, 0.075, -0.014],  # spinous process tip
            [0.043, 0.029, 0.001],  # left transverse process tip
            [-0.043, 0.029, -0.001],  # right transverse process tip
            [0.012, 0.041, 0.008],  # lamina left
            [-0.012, 0.041, -0.008],  # lamina right
            [0.0, 0.055, 0.0],  # spinous process base
        ]
    )
    # project each landmark onto the bone surface so that they are real surface points
    from machaon.ortho.anatomy import sdf_gradient

    p = ids.copy()
    for _ in range(5):
        p = p - l3.sdf(p)[:, None] * sdf_gradient(l3, p)
    assert np.abs(l3.sdf(p)).max() < 1e-6
    return p


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    rv=st.lists(st.floats(-math.pi / 1.8, math.pi / 1.8), min_size=3, max_size=3),
    t=st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_paired_registration_is_exact_without_noise(rv: list[float], t: list[float], seed: int) -> None:
    T = _pose(np.array(rv), np.array(t))
    src = np.random.default_rng(seed).uniform(-0.05, 0.05, (5, 3))
    r = register_paired(src, apply_transform(T, src))
    assert np.allclose(r.T_dst_src, T, atol=1e-9)
    assert r.fre < 1e-10
    assert np.linalg.det(r.T_dst_src[:3, :3]) == pytest.approx(1.0)


def test_reflection_is_never_returned() -> None:
    src = np.random.default_rng(0).uniform(-0.05, 0.05, (6, 3))
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    r = register_paired(src, mirrored)
    assert np.linalg.det(r.T_dst_src[:3, :3]) == pytest.approx(1.0)
    assert r.fre > 1 * MM  # a mirror image cannot be matched by a rotation


def test_similarity_scale_is_recovered() -> None:
    src = np.random.default_rng(1).uniform(-0.05, 0.05, (8, 3))
    T = _pose(np.array([0.1, -0.2, 0.3]), np.array([0.01, 0.02, 0.03]))
    dst = 1.7 * src @ T[:3, :3].T + T[:3, 3]
    r = register_paired(src, dst, with_scale=True)
    assert r.scale == pytest.approx(1.7)
    assert np.allclose(r.apply(src), dst, atol=1e-12)


def test_bad_point_sets_are_rejected() -> None:
    src = np.random.default_rng(2).uniform(-0.05, 0.05, (4, 3))
    with pytest.raises(RegistrationError, match="points_dst"):
        register_paired(src, src[:3])
    with pytest.raises(RegistrationError, match="collinear"):
        line = np.outer(np.linspace(0, 1, 5), [1.0, 2.0, 3.0])
        register_paired(line, line)
    with pytest.raises(RegistrationError, match="NaN"):
        bad = src.copy()
        bad[1, 2] = np.nan
        register_paired(bad, src)
    with pytest.raises(RegistrationError, match="at least 3"):
        register_paired(src[:2], src[:2])


def test_tre_with_0p1mm_fiducial_noise_on_the_phantom(l3: Vertebra, targets: np.ndarray) -> None:
    """Image-to-patient registration from 6 anatomical landmarks touched with 0.1 mm noise (sigma
    per axis, i.e. RMS FLE 0.17 mm): the error at the planned entries and tips stays <= 0.5 mm
    and the Fitzpatrick prediction matches the Monte-Carlo TRE."""
    fid_image = _fiducials(l3)
    T_ref_image = _pose(np.array([0.3, -0.5, 1.2]), np.array([0.2, -0.1, 0.4]))
    rng = np.random.default_rng(42)
    sigma = 0.1 * MM
    tre, fre = [], []
    for _ in range(400):
        measured = apply_transform(T_ref_image, fid_image) + rng.normal(0.0, sigma, fid_image.shape)
        r = register_paired(fid_image, measured)
        tre.append(target_registration_error(r.T_dst_src, T_ref_image, targets))
        fre.append(r.fre)
    tre = np.array(tre)
    fre = np.array(fre)
    fle_rms = math.sqrt(3) * sigma
    assert np.percentile(tre, 99) <= 0.5 * MM
    assert tre.max() <= 0.5 * MM
    predicted = predicted_tre(fid_image, targets, fle_rms)
    measured_rms = np.sqrt(np.mean(tre**2, axis=0))
    assert np.allclose(measured_rms, predicted, rtol=0.15)
    assert math.sqrt(np.mean(fre**2)) == pytest.approx(expected_fre(fle_rms, len(fid_image)), rel=0.1)
    assert estimate_fle(expected_fre(fle_rms, 6), 6) == pytest.approx(fle_rms)


def test_icp_recovers_a_perturbed_pose_with_outliers(l3: Vertebra, targets: np.ndarray) -> None:
    """Digitised points on the exposed posterior surface (0.1 mm noise, 10 % gross outliers)
    bring a 3 mm / 3 deg wrong pose back to the truth."""
    surf_p, surf_n = surface_samples(l3, 30000, seed=3, spacing=1e-3)
    posterior = lambda p: p[:, 1] > 0.03  # noqa: E731 - lamina, spinous and transverse processes
    dig_image, dig_n = surface_samples(l3, 300, seed=4, mask_fn=posterior)
    rng = np.random.default_rng(5)
    T_ref_image = _pose(np.array([0.2, 0.1, -0.4]), np.array([0.05, 0.3, -0.2]))
    dig_ref = apply_transform(T_ref_image, dig_image + rng.normal(0, 0.1 * MM, dig_image.shape))
    n_out = 30
    dig_ref[:n_out] += rng.normal(0, 1, (n_out, 3)) / math.sqrt(3) * 4 * MM  # gross outliers
    T_image_ref_true = np.linalg.inv(T_ref_image)
    T_init = _pose(np.array([0.03, -0.03, 0.03]) * math.sqrt(1 / 3) * math.radians(3) / 0.03, np.zeros(3))
    T_init[:3, 3] = [2 * MM, -2 * MM, 1 * MM]
    T_init = T_init @ T_image_ref_true
    before = target_registration_error(np.linalg.inv(T_init), T_ref_image, targets).max()
    res = icp_point_to_plane(dig_ref, surf_p, surf_n, T_init=T_init)
    after = target_registration_error(np.linalg.inv(res.T_dst_src), T_ref_image, targets)
    assert before > 2 * MM
    assert res.converged
    assert after.max() < 0.3 * MM
    rot_err = Rotation.from_matrix(res.T_dst_src[:3, :3] @ T_image_ref_true[:3, :3].T).magnitude()
    assert math.degrees(rot_err) < 0.3
    # the outliers are rejected, the true points kept
    assert res.inliers[:n_out].mean() < 0.3
    assert res.inliers[n_out:].mean() > 0.9
    assert res.rms < 0.2 * MM


def test_icp_rejects_hopeless_input(l3: Vertebra) -> None:
    surf_p, surf_n = surface_samples(l3, 2000, seed=1)
    far = surf_p[:50] + np.array([0.5, 0.0, 0.0])  # 50 cm away: no pair within max_distance
    with pytest.raises(RegistrationError, match="inlier"):
        icp_point_to_plane(far, surf_p, surf_n)
    with pytest.raises(RegistrationError, match="normal"):
        icp_point_to_plane(surf_p[:10], surf_p, np.zeros_like(surf_n))


@settings(max_examples=40, deadline=None)
@given(st.floats(1e150, 1e300), st.integers(0, 1000))
def test_registration_of_absurdly_large_coordinates_is_a_clear_error(scale: float, seed: int) -> None:
    """Finite but huge coordinates (a unit mix-up gone wild) never reach the SVD as Inf."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(-1.0, 1.0, (6, 3)) * scale
    try:
        reg = register_paired(src, src)
    except RegistrationError:
        return
    assert np.isfinite(reg.T_dst_src).all() and np.isfinite(reg.fre)


def test_weights_can_switch_off_a_bad_fiducial() -> None:
    rng = np.random.default_rng(8)
    src = rng.uniform(-0.05, 0.05, (6, 3))
    T = _pose(np.array([0.2, 0.1, -0.3]), np.array([0.01, -0.02, 0.03]))
    dst = apply_transform(T, src)
    dst[2] += [0.005, 0.0, 0.0]  # a fiducial touched 5 mm off
    assert not np.allclose(register_paired(src, dst).T_dst_src, T, atol=1e-6)
    w = np.ones(6)
    w[2] = 0.0
    r = register_paired(src, dst, weights=w)
    assert np.allclose(r.T_dst_src, T, atol=1e-12)
    assert r.residuals[2] == pytest.approx(5 * MM)
    with pytest.raises(RegistrationError, match="weights"):
        register_paired(src, dst, weights=-w)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 12))
def test_predicted_tre_at_the_centroid_is_fle_over_sqrt_n(seed: int, n: int) -> None:
    f = np.random.default_rng(seed).uniform(-0.05, 0.05, (n, 3))
    fle = 0.2 * MM
    tre = predicted_tre(f, np.vstack([f.mean(axis=0), f.mean(axis=0) + [0.1, 0, 0]]), fle)
    assert tre[0] == pytest.approx(fle / math.sqrt(n), rel=1e-9)
    assert tre[1] > tre[0]  # farther from the fiducials' centroid, larger error
