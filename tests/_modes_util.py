"""Shared by the mode-collapse tests (schemes ebgan/madgan/mrgan/mdgan, tricks minibatch-*/pacgan)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These tests train tiny nets, where a second intra-op thread only adds synchronisation
    (measured 10-20x slower on a busy 2-core machine); restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
