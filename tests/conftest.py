"""Test-session settings and shared fixtures.

Idle OpenMP threads sleep rather than spin (set before importing torch). The ``device`` fixture
runs a test on the CPU and on CUDA; the CUDA case is skipped, with its reason shown in the
summary (``pytest -rs``), on a machine without a GPU.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

NO_CUDA = "no CUDA device on this machine: the GPU path of this test did not run"


@pytest.fixture(
    params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
)
def device(request) -> torch.device:
    """``torch.device("cpu")``, then ``torch.device("cuda")`` where a GPU is present."""
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """One intra-op thread (the machine is shared; restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
