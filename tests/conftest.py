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


def main_in_process(args: list[str], capsys) -> tuple[int, list[str]]:
    """The CLI's main in this process: its exit status and its stderr lines, bench progress bars left out.
    A warning counts as a line ("warning: ..."): pytest records warnings rather than letting them reach
    stderr, so they are caught here and added before the lines."""
    import warnings

    from gantricks.cli import main
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(args)
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("bench:")]
    return rc, [f"warning: {w.message}" for w in caught] + lines
