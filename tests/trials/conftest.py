"""One local Ray session (2 CPUs) for every test of the trials package: Ray starts in seconds, once."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """``ray`` initialised with 2 CPUs in this process; the engine reuses it (and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=128 * 1024 * 1024)
    yield ray
    ray.shutdown()
