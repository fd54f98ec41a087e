"""Session set-up shared by every test module."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# The fuzz tests draw the same examples on every run (a red CI means a change broke a case,
# not that a new random draw found an old bug); RNNKIT_FUZZ_RANDOM=1 explores new ones.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("RNNKIT_FUZZ_RANDOM") else "fixed")


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
