"""Shared fixtures."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny nets gain nothing from threads, and OpenMP spin-waits badly when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
