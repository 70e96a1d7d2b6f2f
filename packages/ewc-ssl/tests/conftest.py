import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run on one thread: fast on a shared 2-core machine, and the same floats on every run."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
