"""CPU thread control shared by the experiments."""

from __future__ import annotations


class torch_threads:
    """Run torch on ``n`` CPU threads inside the block (0: leave as is).

    On a small machine already busy with other processes, one intra-op thread is often
    several times faster than two (OpenMP threads spin against each other), and timings
    are steadier, which matters for the experiments that measure speed.
    """

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> torch_threads:
        import torch

        self.old = torch.get_num_threads()
        if self.n > 0:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.old)
