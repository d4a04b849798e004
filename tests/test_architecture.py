"""House rules that a machine can check: imports only point down the layers, and ruff is clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "machaon"

# DESIGN.md's layers; `types`, `_validate` and `errors` sit below them all (shared data types,
# input checks and the exception tree).
LAYER = {
    "types": 0, "_validate": 0, "errors": 0,
    "kinematics": 1, "control": 2, "robot": 3,
    "sim": 4, "hardware": 4, "bridges": 4,
    "ortho": 5, "exo": 5, "teleop": 5,
    "trials": 6,
    "cli": 7,
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py").removesuffix(".pyx")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "machaon" or m.startswith("machaon.")]


def test_imports_only_point_down():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.parent == PKG and path.name in ("__init__.py", "__main__.py"):
            continue
        here = _package_of(path)
        for mod in _imports(path):
            parts = mod.split(".")
            if len(parts) < 2:
                bad.append(f"{path.relative_to(ROOT)} imports the top-level package")
                continue
            there = parts[1]
            if there == here:
                continue
            if LAYER[there] > LAYER[here] or (LAYER[there] == LAYER[here] and there != here):
                bad.append(f"{path.relative_to(ROOT)} (layer {LAYER[here]}) imports {mod} (layer {LAYER[there]})")
    assert not bad, "\n".join(bad)


def test_cython_kernels_cimport_only_down():
    bad = []
    for path in sorted(PKG.rglob("*.pyx")):
        here = _package_of(path)
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith(("from machaon.", "cimport machaon.")):
                there = s.split()[1].split(".")[1]
                if there != here and LAYER[there] >= LAYER[here]:
                    bad.append(f"{path.relative_to(ROOT)}: {s}")
    assert not bad, "\n".join(bad)


@pytest.mark.skipif(shutil.which("ruff", path=str(Path(sys.executable).parent)) is None, reason="ruff not installed")
def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    r = subprocess.run([ruff, "check", "machaon", "tests", "benchmarks", "setup.py"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _imports_ray(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        if any(n == "ray" or n.startswith("ray.") for n in names):
            return True
    return False


def test_only_the_trials_package_imports_ray():
    users = sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if _imports_ray(p))
    assert users, "the trials engine must use Ray"
    outside = [u for u in users if not u.startswith("machaon/trials/")]
    assert not outside, f"only machaon/trials may import ray: {outside}"


def test_the_command_line_does_not_load_ray_until_a_study_runs():
    code = ("import sys, machaon.cli.main as m; m.build_parser(); "
            "import machaon.trials.teleop, machaon.trials.exo, machaon.trials.ortho; print('ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
