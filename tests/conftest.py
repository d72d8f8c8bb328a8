import pytest
import torch

torch.set_num_threads(1)   # tiny nets: one thread is faster than two


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_nets(data_dim: int = 2, z_dim: int = 2, width: int = 16, outputs: int = 1):
    """A small G and D for fast tests (plain nn.Sequential, no gantricks code)."""
    G = torch.nn.Sequential(torch.nn.Linear(z_dim, width), torch.nn.ReLU(), torch.nn.Linear(width, data_dim))
    D = torch.nn.Sequential(torch.nn.Linear(data_dim, width), torch.nn.LeakyReLU(0.2),
                            torch.nn.Linear(width, width), torch.nn.LeakyReLU(0.2), torch.nn.Linear(width, outputs))
    return G, D
