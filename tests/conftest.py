"""Pytest configuration: GPU tests are skipped cleanly when CUDA is absent."""
import pytest
import torch


def has_cuda() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs CUDA; none is present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Every test runs torch on one intra-op thread: the suite's tensors are small, and on a
    shared 2-core machine thread hand-offs cost far more than they give (measured 5-20x slower
    with 2 threads while another process held a core)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def restore_threads():
    """For tests of commands that set torch's thread count (``--threads``): put it back."""
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)
