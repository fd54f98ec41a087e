"""Session set-up shared by every test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels_built_first():
    """Build (or load) the compiled loop kernels before any test runs: on a fresh machine
    the first use compiles them (about 20 s), and `backend="auto"` now reaches them from
    any GRU or Elman layer, so a test with a wall-clock budget would otherwise pay for the
    build. Whether they load is asserted in test_kernels_ext.py; here a failure only
    leaves the Python kernels to run."""
    from rnnkit.kernels import ext

    ext.available()
    yield
