"""The public real data of ``benchmarks/_realdata.py`` for the tests: a missing package skips the test."""

from __future__ import annotations

import functools

import pytest

from benchmarks import _realdata as _rd
from benchmarks._realdata import GAITKIT_TO_PIG, OPENSIM_TO_LPS, virtual_shank_imu, write_gaitkit_c3d

__all__ = ["GAITKIT_TO_PIG", "OPENSIM_TO_LPS", "gaitkit_trial", "myo_sim_vertebra", "package_file",
           "virtual_shank_imu", "write_gaitkit_c3d"]


def _skip_if_missing(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _rd.MissingData as exc:
            pytest.skip(str(exc))

    return wrapper


package_file = _skip_if_missing(_rd.package_file)
gaitkit_trial = _skip_if_missing(_rd.gaitkit_trial)
myo_sim_vertebra = _skip_if_missing(_rd.myo_sim_vertebra)
