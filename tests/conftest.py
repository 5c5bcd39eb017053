"""Fixtures shared by several test files."""

import os

import pytest
import torch

# Under pytest-xdist two workers share the machine's two cores: with torch's default of one
# thread per core each, four OpenMP threads spin-wait for two cores and every parallel region
# (the compiled engine opens one per step) waits for a descheduled thread. One thread per
# worker keeps the suite's wall time honest; tests that need more set it themselves.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and a CI box may be shared); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
