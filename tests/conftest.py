"""Test-wide settings. Notebooks run under nbval in the ci profile (GENLAB_PROFILE is inherited by their kernels)."""
import os

import pytest
import torch

os.environ["GENLAB_PROFILE"] = os.environ.get("GENLAB_TEST_PROFILE", "ci")
os.environ.setdefault("GENLAB_THREADS", "2")

# fixture notebooks are inputs of the runner/grader tests, not notebooks to validate with nbval
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module of tiny networks: many small ops run fastest on one thread, and a busy
    2-core machine cannot stall them in OpenMP spin-waits (benchmarks/RESULTS.md). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def cores() -> int:
    """Threads a test of large batched ops may use: 2 on a multi-core machine, 1 under pytest-xdist (every worker
    already keeps a core busy; two OpenMP teams on two cores stall each other)."""
    return 1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1))
