"""Scenes: table, bone phantom meshes, marker plates seen by OpenCV, cameras, collision checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import trimesh

from machaon.sim import ArmSim, Camera, CollisionChecker, mesh_arrays, primitive_bone_mesh


def _look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_world_cam in OpenCV convention (z forward, y down)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.c_[x, y, z]
    T[:3, 3] = eye
    return T


K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def test_camera_projection_matches_intrinsics(arm_desc):
    with ArmSim(arm_desc) as sim:
        sim.scene.add_floor()
        pts = np.array([[1.2, 0.15, 0.2], [1.4, -0.2, 0.35], [1.0, 0.0, 0.1]])
        for i, pt in enumerate(pts):
            T = np.eye(4)
            T[:3, 3] = pt
            sim.scene.add_sphere(f"s{i}", 0.012, T, rgba=(1.0, 0.0, 0.0, 1.0))
        cam = Camera(K, 640, 480, _look_at((2.2, 0.3, 0.9), (1.2, 0.0, 0.2)))
        img = cam.render(sim.client)
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
        red = (img[:, :, 0] > 100) & (img[:, :, 1] < 40) & (img[:, :, 2] < 40)  # any shade of pure red
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(red.astype(np.uint8))
        found = centroids[1:][stats[1:, cv2.CC_STAT_AREA] > 20]
        expected = cam.project(pts)
        assert len(found) == 3
        for uv in expected:
            assert np.min(np.linalg.norm(found - uv, axis=1)) < 1.0
        # depth of the sphere centre pixel is the distance along the optical axis minus the radius
        _, depth = cam.render(sim.client, depth=True)
        u, v = np.round(expected[0]).astype(int)
        z_cam = (np.linalg.inv(cam.T_world_cam) @ np.r_[pts[0], 1])[2]
        assert depth[v, u] == pytest.approx(z_cam - 0.012, abs=3e-3)
        bgr = cam.render(sim.client, bgr=True)
        np.testing.assert_array_equal(bgr[:, :, ::-1], img)


def test_aruco_marker_plate_is_detected_where_it_is(arm_desc):
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    marker = cv2.aruco.generateImageMarker(dictionary, 7, 200)
    marker = cv2.copyMakeBorder(marker, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)  # white margin
    size = 0.08  # plate edge, m; the black marker is 200/280 of it
    with ArmSim(arm_desc) as sim:
        T_plate = np.eye(4)
        T_plate[:3, 3] = (1.0, 0.2, 0.3)
        sim.scene.add_marker_plate("tracker", marker, size, T_plate)
        cam = Camera(K, 640, 480, _look_at((1.05, 0.22, 0.85), (1.0, 0.2, 0.3), up=(1.0, 0.0, 0.0)))
        gray = cv2.cvtColor(cam.render(sim.client), cv2.COLOR_RGB2GRAY)
        det = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())
        corners, ids, _ = det.detectMarkers(gray)
        assert ids is not None and ids.ravel().tolist() == [7]
        # ArUco corner order: top-left, top-right, bottom-right, bottom-left of the image,
        # i.e. plate (-x,+y), (+x,+y), (+x,-y), (-x,-y) at half the black square's size.
        h = size * 200 / 280 / 2
        local = np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]])
        expected = cam.project(local + T_plate[:3, 3])
        assert np.abs(corners[0][0] - expected).max() < 1.5


def test_marker_plate_follows_an_arm_link(arm_desc):
    marker = np.zeros((64, 64), np.uint8)
    marker[16:48, 16:48] = 255
    with ArmSim(arm_desc) as sim:
        T_link_plate = np.eye(4)
        T_link_plate[:3, 3] = (0.0, 0.05, 0.1)
        sim.scene.add_marker_plate("fa", marker, 0.05, T_link_plate, parent="arm", parent_link="forearm_link")
        sim.step(200)  # unpowered: the arm moves
        expected = sim.T_world_link("forearm_link") @ T_link_plate
        np.testing.assert_allclose(sim.scene.pose("fa"), expected, atol=1e-3)
        with pytest.raises(ValueError, match="image"):
            sim.scene.add_marker_plate("bad", marker.astype(np.float32), 0.05, np.eye(4))
        with pytest.raises(ValueError, match="name"):
            sim.scene.add_marker_plate("fa", marker, 0.05, np.eye(4))


def test_bone_phantom_from_arrays_file_or_primitive(arm_desc, tmp_path):
    V, F = primitive_bone_mesh()
    assert trimesh.Trimesh(V, F).is_volume or len(F) > 100
    box = trimesh.creation.box((0.1, 0.04, 0.03))
    stl = tmp_path / "bone.stl"
    box.export(stl)
    with ArmSim(arm_desc) as sim:
        sim.scene.add_bone_phantom()  # primitive
        T = np.eye(4)
        T[:3, 3] = (1.0, 0.5, 0.2)
        sim.scene.add_bone_phantom((box.vertices, box.faces), T, name="bone_arrays")
        T2 = T.copy()
        T2[1, 3] = -0.5
        sim.scene.add_bone_phantom(stl, T2, name="bone_stl")
        assert {"bone", "bone_arrays", "bone_stl"} <= set(sim.scene.objects)
        cam = Camera(K, 320, 240, _look_at((1.6, 0.0, 0.9), (1.0, 0.0, 0.2)))
        img = cam.render(sim.client)
        assert img.std() > 5  # something was drawn
    with pytest.raises(ValueError, match="faces"):
        mesh_arrays((V, F[:, :2]))
    with pytest.raises(ValueError, match="range"):
        mesh_arrays((V, F + len(V)))
    with pytest.raises(ValueError, match="NaN"):
        mesh_arrays((np.full_like(V, np.nan), F))
    with pytest.raises(ValueError, match="not found"):
        mesh_arrays(tmp_path / "missing.obj")


def test_collision_checker_arm_vs_scene(arm_desc):
    with ArmSim(arm_desc, tool="drill_guide") as sim:
        sim.scene.add_floor()
        sim.scene.add_operating_table()
        sim.scene.add_bone_phantom()
        cc = CollisionChecker(sim)
        before = sim.read()
        assert not cc.in_collision()  # home is clear, the base standing on the floor is ignored
        assert cc.min_distance() > 0.01
        q_table = np.array(arm_desc.q_home)
        q_table[1] = np.radians(80)  # shoulder down: the forearm goes through the table
        assert cc.in_collision(q_table)
        hits = {c.other for c in cc.closest_points(q_table) if c.distance < 0}
        assert "table" in hits
        # the query leaves the simulation where it was
        after = sim.read()
        np.testing.assert_array_equal(before.q, after.q)
        np.testing.assert_array_equal(before.dq, after.dq)
        # ignoring the table clears that pose of table contacts
        cc2 = CollisionChecker(sim, ignore=["table", "bone", "floor"], self_collision=False)
        assert not cc2.in_collision(q_table)
        # self-collision: shoulder forward and elbow folded bring the wrist down onto the base
        q_fold = np.radians([-5, 90, 126, -47, 16, -61])
        self_hits = [c for c in CollisionChecker(sim, obstacles=[]).closest_points(q_fold) if c.distance < 0]
        assert self_hits and all(c.other.startswith("self:") for c in self_hits)
        with pytest.raises(ValueError):
            cc.in_collision(np.full(6, np.nan))
