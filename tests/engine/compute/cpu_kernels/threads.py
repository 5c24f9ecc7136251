"""The kernels split their rows over the threads torch is given: a check that two threads
compute exactly what one does."""

from collections.abc import Callable

import torch


def same_on_one_and_two_threads(run: Callable[[], torch.Tensor]) -> bool:
    """Whether `run()` gives the identical tensor with torch held to one thread, then two."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(before)
    return torch.equal(one, two)
