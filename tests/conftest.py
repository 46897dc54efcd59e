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
