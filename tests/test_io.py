"""Output paths checked before the work starts, files never left half-written (``machaon._io``)."""

from __future__ import annotations

import os

import pytest

from machaon._io import OutputPathError, atomic_write, check_output_dir, check_writable
from machaon.errors import UsageError


def test_output_dir_may_need_missing_parents(tmp_path):
    # `make demo` on a fresh clone writes out/demo although out/ does not exist yet
    target = tmp_path / "out" / "demo" / "run1"
    assert check_output_dir(target) == target
    assert not (tmp_path / "out").exists()  # creates nothing


def test_output_dir_refuses_files_in_the_way(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_dir(blocker / "a" / "b", what="--out")
    with pytest.raises(OutputPathError, match="--out .*exists and is not a folder"):
        check_output_dir(blocker, what="--out")
    assert issubclass(OutputPathError, UsageError)  # the CLI's bad-input exit code


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_dir_refuses_a_read_only_parent(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(OutputPathError, match="no permission"):
        check_output_dir(ro / "a" / "b")


def test_writable_file_needs_its_folder(tmp_path):
    assert check_writable(tmp_path / "x.json") == tmp_path / "x.json"
    with pytest.raises(OutputPathError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.json")
    with pytest.raises(OutputPathError, match="is a directory"):
        check_writable(tmp_path)


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path):
    p = tmp_path / "report.json"
    with atomic_write(p) as fh:
        fh.write("old")
    with pytest.raises(RuntimeError), atomic_write(p) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["report.json"]  # no temporary left behind
