import functools
import threading

import pytest

from inferplane.engine.compute.torch_thread import TorchThread


def test_every_job_runs_on_one_thread_in_order() -> None:
    worker = TorchThread()
    seen: list[tuple[int, int]] = []

    def note(index: int) -> None:
        seen.append((index, threading.get_ident()))

    for index in range(3):
        worker.run(functools.partial(note, index))
    assert worker.call(threading.get_ident) != threading.get_ident()
    worker.join()
    assert [index for index, _ in seen] == [0, 1, 2]
    assert len({ident for _, ident in seen}) == 1


def test_call_returns_the_result_and_raises_the_error() -> None:
    worker = TorchThread()
    assert worker.call(lambda: 41 + 1) == 42
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda: 1 / 0)
    worker.join()


def test_join_without_jobs_returns() -> None:
    TorchThread().join()
